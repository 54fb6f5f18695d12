"""The .proto a table is published as: what a caller reads, and that protoc accepts it."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from spean.gateway.publish.contract import Numbering, Options, build_contract
from spean.gateway.publish.io.protoc import compile_proto, main_file
from spean.gateway.publish.proto_text import proto_text
from spean.gateway.publish.typemap import ColumnShape, SqlKind, TableShape

F = descriptor_pb2.FieldDescriptorProto


def col(
    name: str, kind: SqlKind, sql_type: str, *, nullable: bool = False, **extra: object
) -> ColumnShape:
    return ColumnShape(name, name, sql_type, kind, nullable, **extra)  # type: ignore[arg-type]


VEHICLES = TableShape(
    name="vehicles",
    quoted="vehicles",
    dialect="postgresql",
    columns=(
        col("plate", SqlKind.TEXT, "VARCHAR(12)"),
        col("engine_cc", SqlKind.INTEGER, "INTEGER", nullable=True),
        col("registered_on", SqlKind.DATE, "DATE"),
        col("inspected", SqlKind.DATETIME, "TIMESTAMP", nullable=True),
        col("fee", SqlKind.DECIMAL, "NUMERIC(10, 2)"),
        col("tax", SqlKind.ENUM, "tax_status", enum_values=("paid", "due")),
    ),
    primary_key=("plate",),
)
PREVIOUS = Numbering(fields={"plate": 1, "colour": 2, "engine_cc": 3}, reserved_names=frozenset())


def published() -> descriptor_pb2.FileDescriptorProto:
    contract = build_contract(VEHICLES, Options("KH/GOV/MPWT/vehicles"), PREVIOUS)
    file = main_file(compile_proto(proto_text(contract), contract.proto_file).descriptor_set)
    assert file is not None
    return file


def test_the_text_compiles_into_the_service_a_caller_expects() -> None:
    file = published()
    assert file.name == "vehicles/v1/vehicles.proto"
    assert file.package == "vehicles.v1"
    assert list(file.dependency) == ["google/protobuf/timestamp.proto"]
    (service,) = file.service
    assert service.name == "VehiclesRegistry"
    shapes = {m.name: (m.input_type, m.output_type, m.server_streaming) for m in service.method}
    assert shapes == {
        "Get": (".vehicles.v1.GetRequest", ".vehicles.v1.Record", False),
        "List": (".vehicles.v1.ListRequest", ".vehicles.v1.ListResponse", False),
        "Export": (".vehicles.v1.ExportRequest", ".vehicles.v1.Record", True),
    }


def test_the_record_has_a_field_per_column_with_stable_numbers_and_the_gone_reserved() -> None:
    record = next(m for m in published().message_type if m.name == "Record")
    fields = {f.name: f for f in record.field}
    assert {name: f.number for name, f in fields.items()} == {
        "plate": 1, "engine_cc": 3, "registered_on": 4, "inspected": 5, "fee": 6, "tax": 7,
    }  # fmt: skip
    assert fields["engine_cc"].proto3_optional
    assert not fields["plate"].proto3_optional
    assert fields["registered_on"].type_name == ".vehicles.v1.Date"
    assert fields["inspected"].type_name == ".google.protobuf.Timestamp"
    assert fields["fee"].type == F.TYPE_STRING
    assert fields["tax"].type_name == ".vehicles.v1.Record.Tax"
    assert [(r.start, r.end) for r in record.reserved_range] == [(2, 3)]
    assert list(record.reserved_name) == ["colour"]
    (tax,) = record.enum_type
    assert [(v.name, v.number) for v in tax.value] == [
        ("TAX_UNSPECIFIED", 0), ("TAX_PAID", 1), ("TAX_DUE", 2)
    ]  # fmt: skip


def test_the_get_request_holds_the_key_and_list_documents_its_page_size() -> None:
    file = published()
    get = next(m for m in file.message_type if m.name == "GetRequest")
    assert [(f.name, f.type, f.proto3_optional) for f in get.field] == [
        ("plate", F.TYPE_STRING, False)
    ]
    text = proto_text(build_contract(VEHICLES, Options("KH/GOV/MPWT/vehicles"), PREVIOUS))
    assert "at most 1000" in text
    assert "0 means 100" in text


def test_comments_reach_the_descriptor_set() -> None:
    file = published()
    comments = [loc.leading_comments.strip() for loc in file.source_code_info.location]
    assert "Column fee (NUMERIC(10, 2), NOT NULL); the exact decimal digits." in comments
    assert "Column engine_cc (INTEGER, NULL-able: unset when NULL)." in comments
    assert "The record whose key (plate) is given; NOT_FOUND when there is none." in comments


def test_the_same_contract_gives_the_same_text() -> None:
    def text() -> str:
        return proto_text(build_contract(VEHICLES, Options("KH/GOV/MPWT/vehicles"), PREVIOUS))

    assert text() == text()
