"""The .proto text of a published table's contract (pure).

`proto_text(contract)` writes the file callers program against: the service
with Get, List and Export, the request and response messages, the `Record`
with one field per column (numbered as `spean.gateway.publish.contract`
decided, removed numbers and names reserved), its enums, and a `Date`
message when a column holds dates. Every element carries a comment (the
column's SQL name and type, what a method answers and when it says
NOT_FOUND, the page size limits), and the descriptor set keeps them, so a
caller reading the catalogue or reflection sees them too. The text is
deterministic: the same contract gives the same bytes.
"""

from __future__ import annotations

from spean.gateway.publish.contract import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RECORD,
    Contract,
    EnumPlan,
    FieldPlan,
)

__all__ = ["proto_text"]


def proto_text(contract: Contract) -> str:
    table = contract.table
    what = "view" if table.is_view else "table"
    lines = [
        f"// The {what} {table.name}, published by spean publish-table as {contract.subsystem}.",
        "// Regenerate it with the same command; field numbers stay stable across runs.",
        'syntax = "proto3";',
        "",
        f"package {contract.package};",
        "",
    ]
    if contract.uses_timestamps:
        lines += ['import "google/protobuf/timestamp.proto";', ""]
    lines += _service(contract)
    lines += _requests(contract)
    lines += _record(contract)
    if contract.uses_dates:
        lines += [
            "",
            "// A calendar date (the shape of google.type.Date).",
            "message Date {",
            "  int32 year = 1;",
            "  // 1 to 12.",
            "  int32 month = 2;",
            "  // 1 to 31.",
            "  int32 day = 3;",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _service(contract: Contract) -> list[str]:
    keys = ", ".join(plan.name for plan in contract.key)
    return [
        f"// The rows of {contract.table.name}.",
        f"service {contract.service} {{",
        f"  // The record whose key ({keys}) is given; NOT_FOUND when there is none.",
        f"  rpc Get(GetRequest) returns ({RECORD});",
        "  // One page of records in key order; page through with next_page_token.",
        "  rpc List(ListRequest) returns (ListResponse);",
        "  // Every record in key order, one message each.",
        f"  rpc Export(ExportRequest) returns (stream {RECORD});",
        "}",
        "",
    ]


def _requests(contract: Contract) -> list[str]:
    lines = ["// The key of the record to get.", "message GetRequest {"]
    for number, plan in enumerate(contract.key, start=1):
        lines += [
            f"  // Column {plan.column.name}.",
            f"  {plan.type.proto} {plan.name} = {number};",
        ]
    lines += [
        "}",
        "",
        "message ListRequest {",
        f"  // Records per page, at most {MAX_PAGE_SIZE} (larger asks get {MAX_PAGE_SIZE});"
        f" 0 means {DEFAULT_PAGE_SIZE}.",
        "  int32 page_size = 1;",
        "  // Empty for the first page, else next_page_token of the previous page.",
        "  string page_token = 2;",
        "}",
        "",
        "message ListResponse {",
        f"  repeated {RECORD} records = 1;",
        "  // Empty on the last page.",
        "  string next_page_token = 2;",
        "}",
        "",
        "message ExportRequest {}",
        "",
    ]
    return lines


def _record(contract: Contract) -> list[str]:
    lines = [f"// One row of {contract.table.name}.", f"message {RECORD} {{"]
    for enum in contract.enums:
        lines += _enum(enum)
    for plan in sorted(contract.fields, key=lambda f: f.number):
        lines += [f"  // {_describe(plan)}", f"  {_declaration(plan)}"]
    if contract.reserved:
        lines.append(f"  reserved {', '.join(str(n) for n in contract.reserved)};")
    if contract.reserved_names:
        names = ", ".join(f'"{name}"' for name in contract.reserved_names)
        lines.append(f"  reserved {names};")
    lines.append("}")
    return lines


def _enum(enum: EnumPlan) -> list[str]:
    lines = [f"  enum {enum.name} {{"]
    lines += [f"    {name} = {number};" for name, number in enum.values]
    if enum.reserved:
        lines.append(f"    reserved {', '.join(str(n) for n in enum.reserved)};")
    return [*lines, "  }", ""]


def _declaration(plan: FieldPlan) -> str:
    label = "optional " if plan.optional else ""
    return f"{label}{plan.type.proto} {plan.name} = {plan.number};"


def _describe(plan: FieldPlan) -> str:
    column = plan.column
    null = "NULL-able: unset when NULL" if column.nullable else "NOT NULL"
    text = f"Column {column.name} ({column.sql_type}, {null})"
    if plan.type.proto == "string" and column.kind.name == "DECIMAL":
        text += "; the exact decimal digits"
    elif plan.type.cast_text:
        text += "; as text"
    return text + "."
