"""The contract `publish-table` publishes for one table, and the files that serve it (pure).

`build_contract` takes the table's shape, the operator's choices and the
numbering of the previous contract (`Numbering`, read from the descriptor set
the previous run wrote) and returns a `Contract`: package, service, the
`Record` message's fields with their numbers, the key, the enums. From it
come the SQL adapter's mapping document (`mapping_document`) and the
provider's `services` and `access` entries (`server_entries`), as plain data.

Guarantees:
- a column present in the previous contract keeps its field number, and an
  enum value its number; a field or value that disappears leaves its number
  and name reserved, so no later run reuses them;
- a new field takes the next number above every number ever used;
- every statement selects the columns by their quoted SQL names and, where
  the field's name differs from the column's or the value is cast to text,
  under the field's name: the result's column names are the field names;
- two columns whose names convert to one field name are refused, naming both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2

from spean.gateway.errors import ConfigError
from spean.gateway.identifiers import SubsystemId
from spean.gateway.publish.typemap import (
    ColumnShape,
    FieldType,
    SqlKind,
    TableShape,
    Unmappable,
    camel_case,
    enum_value_prefix,
    field_type,
    proto_name,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "RECORD",
    "Contract",
    "EnumPlan",
    "FieldPlan",
    "Numbering",
    "Options",
    "build_contract",
    "mapping_document",
    "numbering_of",
    "server_entries",
    "statements",
]

RECORD = "Record"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")
_SERVICE = re.compile(r"[A-Z][A-Za-z0-9]*\Z")


@dataclass(frozen=True, slots=True)
class Options:
    """What the operator chose on the command line."""

    subsystem: str
    key: tuple[str, ...] = ()
    package: str | None = None
    service: str | None = None
    exclude: frozenset[str] = frozenset()
    clients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Numbering:
    """Numbers the previous contract used: fields of `Record` and values of its enums."""

    fields: Mapping[str, int] = field(default_factory=dict)
    reserved: frozenset[int] = frozenset()
    reserved_names: frozenset[str] = frozenset()
    enum_values: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    enum_reserved: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One field of `Record`: its name, number and type, and the column it comes from."""

    name: str
    number: int
    type: FieldType
    column: ColumnShape

    @property
    def optional(self) -> bool:
        """A NULL-able scalar is `optional`; a message field has presence anyway."""
        return self.column.nullable and not self.type.is_message

    @property
    def selected_as(self) -> str:
        """The column's name in the statements' results."""
        renamed = self.type.cast_text or self.name != self.column.name
        return self.name if renamed else self.column.name


@dataclass(frozen=True, slots=True)
class EnumPlan:
    """An enum nested in `Record`, for an enum column."""

    name: str
    values: tuple[tuple[str, int], ...]  # (value name, number), UNSPECIFIED = 0 first
    reserved: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Contract:
    """Everything the .proto, the mapping and the server entries are written from."""

    table: TableShape
    subsystem: SubsystemId
    package: str
    service: str
    stem: str
    fields: tuple[FieldPlan, ...]
    key: tuple[FieldPlan, ...]
    enums: tuple[EnumPlan, ...]
    reserved: tuple[int, ...]
    reserved_names: tuple[str, ...]
    excluded: tuple[str, ...]
    clients: tuple[str, ...]

    @property
    def proto_file(self) -> str:
        """The .proto's path inside --out, which is also its name in the descriptor set."""
        return f"{self.package.replace('.', '/')}/{self.stem}.proto"

    @property
    def module(self) -> str:
        return f"{self.package}.{self.stem}_pb2"

    @property
    def full_service(self) -> str:
        return f"{self.package}.{self.service}"

    def method(self, name: str) -> str:
        return f"/{self.full_service}/{name}"

    @property
    def methods(self) -> tuple[tuple[str, bool], ...]:
        """(path, server-streaming) of Get, List and Export."""
        return ((self.method("Get"), False), (self.method("List"), False),
                (self.method("Export"), True))  # fmt: skip

    @property
    def uses_dates(self) -> bool:
        return any(f.type.proto == "Date" for f in self.fields)

    @property
    def uses_timestamps(self) -> bool:
        return any(f.type.proto == "google.protobuf.Timestamp" for f in self.fields)


def build_contract(table: TableShape, options: Options, previous: Numbering) -> Contract:
    """The contract for `table`; `ConfigError` names every column it cannot publish."""
    subsystem = SubsystemId.parse(options.subsystem)
    stem = proto_name(table.name)
    package = options.package or f"{stem}.v1"
    if not _PACKAGE.match(package):
        raise ConfigError(
            f"--package {package!r} is not a protobuf package: lower-case words joined by dots,"
            " e.g. patients.v1"
        )
    service = options.service or f"{camel_case(stem)}Registry"
    if not _SERVICE.match(service):
        raise ConfigError(
            f"--service {service!r} is not a service name: letters and digits starting with a"
            " capital, e.g. PatientRegistry"
        )
    unknown = sorted(options.exclude - {c.name for c in table.columns})
    if unknown:
        raise ConfigError(f"--exclude {unknown[0]!r}: {table.name} has no such column")
    columns = [c for c in table.columns if c.name not in options.exclude]
    if not columns:
        raise ConfigError(f"{table.name}: no column is left to publish")
    types = _types(columns, table)
    names = _names(columns)
    fields, reserved, reserved_names = _number(columns, names, types, previous)
    key = _key(table, options, fields)
    return Contract(
        table=table,
        subsystem=subsystem,
        package=package,
        service=service,
        stem=stem,
        fields=fields,
        key=key,
        enums=tuple(_enum(f, previous) for f in fields if f.type.is_enum),
        reserved=reserved,
        reserved_names=reserved_names,
        excluded=tuple(c.name for c in table.columns if c.name in options.exclude),
        clients=tuple(str(SubsystemId.parse(c, "client subsystem")) for c in options.clients),
    )


def _types(columns: Sequence[ColumnShape], table: TableShape) -> list[FieldType]:
    types, problems = [], []
    for column in columns:
        try:
            types.append(field_type(column, table.dialect))
        except Unmappable as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(f"{table.name}: " + "; ".join(problems))
    return types


def _names(columns: Sequence[ColumnShape]) -> list[str]:
    seen: dict[str, str] = {}
    for column in columns:
        name = proto_name(column.name)
        if name in seen:
            raise ConfigError(
                f"columns {seen[name]!r} and {column.name!r} both become field {name!r}: leave"
                f" one out with --exclude, or publish a view that renames it (AS ...)"
            )
        seen[name] = column.name
    return list(seen)


def _number(
    columns: Sequence[ColumnShape],
    names: Sequence[str],
    types: Sequence[FieldType],
    previous: Numbering,
) -> tuple[tuple[FieldPlan, ...], tuple[int, ...], tuple[str, ...]]:
    used = set(previous.fields.values()) | set(previous.reserved)
    following = max(used, default=0) + 1
    fields = []
    for column, name, kind in zip(columns, names, types, strict=True):
        number = previous.fields.get(name)
        if number is None:
            number, following = following, following + 1
        fields.append(FieldPlan(name, number, kind, column))
    gone = {name: n for name, n in previous.fields.items() if name not in names}
    reserved = tuple(sorted(set(previous.reserved) | set(gone.values())))
    reserved_names = tuple(sorted((set(previous.reserved_names) | set(gone)) - set(names)))
    return tuple(fields), reserved, reserved_names


def _key(table: TableShape, options: Options, fields: Sequence[FieldPlan]) -> tuple[FieldPlan, ...]:
    names = options.key or table.primary_key
    if not names:
        what = "view" if table.is_view else "table"
        raise ConfigError(
            f"{what} {table.name} has no primary key: name the column(s) that identify a row"
            " with --key COLUMN (repeat it for a composite key)"
        )
    by_column = {f.column.name: f for f in fields}
    key = []
    for name in names:
        plan = by_column.get(name)
        if plan is None:
            where = "is excluded" if name in options.exclude else f"is not a column of {table.name}"
            raise ConfigError(f"key column {name!r} {where}")
        if plan.column.kind is SqlKind.JSON:
            raise ConfigError(
                f"key column {name!r} is JSON, which cannot be compared: choose another"
            )
        key.append(plan)
    return tuple(key)


def _enum(plan: FieldPlan, previous: Numbering) -> EnumPlan:
    name = plan.type.proto
    prefix = enum_value_prefix(name)
    before = previous.enum_values.get(name, {})
    used = set(before.values()) | set(previous.enum_reserved.get(name, frozenset()))
    following = max(used, default=0) + 1
    values = [(f"{prefix}UNSPECIFIED", 0)]
    for value in plan.type.enum_values:
        value_name = f"{prefix}{value.upper()}"
        number = before.get(value_name)
        if number is None:
            number, following = following, following + 1
        values.append((value_name, number))
    names = {n for n, _ in values}
    gone = {n for value_name, n in before.items() if value_name not in names}
    reserved = tuple(sorted(gone | set(previous.enum_reserved.get(name, frozenset()))))
    return EnumPlan(name, tuple(values), reserved)


def numbering_of(file: descriptor_pb2.FileDescriptorProto) -> Numbering:
    """The numbers a previously published contract used (its `Record` message)."""
    record = next((m for m in file.message_type if m.name == RECORD), None)
    if record is None:
        return Numbering()
    reserved = {n for r in record.reserved_range for n in range(r.start, r.end)}
    enums = {e.name: {v.name: v.number for v in e.value} for e in record.enum_type}
    enum_reserved = {
        e.name: frozenset(n for r in e.reserved_range for n in range(r.start, r.end + 1))
        for e in record.enum_type
    }
    return Numbering(
        fields={f.name: f.number for f in record.field},
        reserved=frozenset(reserved),
        reserved_names=frozenset(record.reserved_name),
        enum_values=enums,
        enum_reserved=enum_reserved,
    )


# ---------------------------------------------------------------- the files that serve it


def _quote(name: str, dialect: str) -> str:
    """An alias, always quoted (a field name may be a reserved word: order, user)."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _sql_name(text: str) -> str:
    # A colon in a quoted identifier would read as a bound parameter.
    return text.replace(":", r"\:")


_AS_TEXT = {"postgresql": "CAST({} AS TEXT)", "mysql": "CAST({} AS CHAR)", "sqlite": "{}"}


def _select_list(contract: Contract) -> str:
    dialect = contract.table.dialect
    parts = []
    for plan in contract.fields:
        column = _sql_name(plan.column.quoted)
        expression = _AS_TEXT[dialect].format(column) if plan.type.cast_text else column
        if plan.selected_as != plan.column.name or expression != column:
            expression = f"{expression} AS {_quote(plan.selected_as, dialect)}"
        parts.append(expression)
    return ", ".join(parts)


def statements(contract: Contract) -> dict[str, str]:
    """The SQL of Get, List and Export (List is paged by the adapter around it)."""
    # Built from the database's own column and table names, quoted; no request value.
    source = f"SELECT {_select_list(contract)} FROM {_sql_name(contract.table.quoted)}"  # noqa: S608
    keys = [_sql_name(plan.column.quoted) for plan in contract.key]
    match = " AND ".join(f"{k} = :{plan.name}" for k, plan in zip(keys, contract.key, strict=True))
    # Rows without a key cannot be paged through in one order on every engine.
    present = " AND ".join(
        f"{k} IS NOT NULL"
        for k, plan in zip(keys, contract.key, strict=True)
        if plan.column.nullable
    )
    listed = f"{source} WHERE {present}" if present else source
    return {
        "Get": f"{source} WHERE {match}",
        "List": listed,
        "Export": f"{listed} ORDER BY {', '.join(keys)}",
    }


def mapping_document(
    contract: Contract, database: object, timezone: str = "UTC"
) -> dict[str, object]:
    """The SQL adapter's mapping (docs/adapters.md, section 3); `database` is its entry,
    `timezone` the zone of the naive date-times the database stores."""
    sql = statements(contract)
    return {
        "service": contract.full_service,
        "descriptor": contract.module,
        "python_path": ".",
        "database": database,
        "timezone": timezone,
        "methods": {
            "Get": {"sql": sql["Get"], "result": "one"},
            "List": {
                "sql": sql["List"],
                "result": "many",
                "into": "records",
                "page": {
                    "key": [plan.selected_as for plan in contract.key],
                    "size": "page_size",
                    "token": "page_token",
                    "next": "next_page_token",
                    "default": DEFAULT_PAGE_SIZE,
                    "max": MAX_PAGE_SIZE,
                },
            },
            "Export": {"sql": sql["Export"], "result": "many"},
        },
    }


def server_entries(contract: Contract, mapping_path: str) -> dict[str, list[dict[str, object]]]:
    """The provider's `services` entry and one `access` entry per client, for server.yaml."""
    subsystem = str(contract.subsystem)
    return {
        "services": [{"subsystem": subsystem, "adapter": {"type": "sql", "mapping": mapping_path}}],
        "access": [
            {"client": client, "service": subsystem, "methods": [p for p, _ in contract.methods]}
            for client in contract.clients
        ],
    }
