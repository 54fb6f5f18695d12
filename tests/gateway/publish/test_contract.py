"""A table's contract: names, key, field numbers kept across runs, and the files that serve it."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.publish.contract import (
    Numbering,
    Options,
    build_contract,
    mapping_document,
    numbering_of,
    server_entries,
    statements,
)
from spean.gateway.publish.typemap import ColumnShape, SqlKind, TableShape

SUBSYSTEM = "KH/GOV/MOH/patients"


def col(
    name: str, kind: SqlKind = SqlKind.TEXT, *, nullable: bool = False, **extra: object
) -> ColumnShape:
    return ColumnShape(name, f'"{name}"', kind.value.upper(), kind, nullable, **extra)  # type: ignore[arg-type]


PATIENTS = TableShape(
    name="patients",
    quoted="patients",
    dialect="postgresql",
    columns=(
        col("id", SqlKind.INTEGER, bits=64),
        col("Full Name"),
        col("born", SqlKind.DATE, nullable=True),
        col("code", SqlKind.UUID, nullable=True),
        col("ward", SqlKind.ENUM, nullable=True, enum_values=("north", "south")),
    ),
    primary_key=("id",),
)


def test_a_first_run_numbers_the_columns_in_order_and_names_after_the_table() -> None:
    contract = build_contract(PATIENTS, Options(SUBSYSTEM), Numbering())
    assert contract.package == "patients.v1"
    assert contract.full_service == "patients.v1.PatientsRegistry"
    assert contract.proto_file == "patients/v1/patients.proto"
    assert contract.module == "patients.v1.patients_pb2"
    assert [(f.name, f.number) for f in contract.fields] == [
        ("id", 1), ("full_name", 2), ("born", 3), ("code", 4), ("ward", 5)
    ]  # fmt: skip
    assert [f.name for f in contract.key] == ["id"]
    assert contract.methods == (
        ("/patients.v1.PatientsRegistry/Get", False),
        ("/patients.v1.PatientsRegistry/List", False),
        ("/patients.v1.PatientsRegistry/Export", True),
    )


def test_null_able_scalars_are_optional_and_messages_are_not() -> None:
    fields = {f.name: f for f in build_contract(PATIENTS, Options(SUBSYSTEM), Numbering()).fields}
    assert not fields["id"].optional
    assert fields["code"].optional  # a string
    assert not fields["born"].optional  # a Date message: presence of its own


def test_an_enum_gets_its_values_after_an_unspecified_zero() -> None:
    (ward,) = build_contract(PATIENTS, Options(SUBSYSTEM), Numbering()).enums
    assert ward.name == "Ward"
    assert ward.values == (("WARD_UNSPECIFIED", 0), ("WARD_NORTH", 1), ("WARD_SOUTH", 2))


def test_a_rerun_keeps_numbers_reserves_the_gone_and_appends_the_new() -> None:
    previous = Numbering(
        fields={"id": 1, "full_name": 2, "born": 3, "height": 4, "code": 5, "ward": 6},
        reserved=frozenset({7}),
        reserved_names=frozenset({"old"}),
        enum_values={"Ward": {"WARD_UNSPECIFIED": 0, "WARD_SOUTH": 1, "WARD_EAST": 2}},
    )
    table = TableShape(
        "patients", "patients", "postgresql", (*PATIENTS.columns, col("email")), ("id",)
    )
    contract = build_contract(table, Options(SUBSYSTEM), previous)
    numbers = {f.name: f.number for f in contract.fields}
    assert numbers == {"id": 1, "full_name": 2, "born": 3, "code": 5, "ward": 6, "email": 8}
    assert contract.reserved == (4, 7)
    assert contract.reserved_names == ("height", "old")
    (ward,) = contract.enums
    assert dict(ward.values) == {"WARD_UNSPECIFIED": 0, "WARD_NORTH": 3, "WARD_SOUTH": 1}
    assert ward.reserved == (2,)


def test_numbering_is_read_back_from_a_published_file() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="p.proto", package="p.v1")
    record = file.message_type.add(name="Record")
    record.field.add(name="id", number=1)
    record.field.add(name="name", number=3)
    record.reserved_range.add(start=2, end=3)
    record.reserved_name.append("gone")
    ward = record.enum_type.add(name="Ward")
    ward.value.add(name="WARD_UNSPECIFIED", number=0)
    ward.value.add(name="WARD_NORTH", number=2)
    ward.reserved_range.add(start=1, end=1)  # enum ranges are inclusive
    numbering = numbering_of(file)
    assert numbering.fields == {"id": 1, "name": 3}
    assert numbering.reserved == {2}
    assert numbering.reserved_names == {"gone"}
    assert numbering.enum_values == {"Ward": {"WARD_UNSPECIFIED": 0, "WARD_NORTH": 2}}
    assert numbering.enum_reserved == {"Ward": {1}}


def test_statements_quote_rename_and_cast_and_bind_the_key() -> None:
    sql = statements(build_contract(PATIENTS, Options(SUBSYSTEM), Numbering()))
    select = (
        'SELECT "id", "Full Name" AS "full_name", "born", CAST("code" AS TEXT) AS "code", "ward"'
        " FROM patients"
    )
    assert sql["Get"] == f'{select} WHERE "id" = :id'
    assert sql["List"] == select
    assert sql["Export"] == f'{select} ORDER BY "id"'


def test_a_null_able_view_key_skips_rows_without_one_and_mysql_quotes_its_own_way() -> None:
    view = TableShape(
        "v", "`v`", "mysql", (col("a", nullable=True), col("b", SqlKind.JSON)), (), is_view=True
    )
    sql = statements(build_contract(view, Options(SUBSYSTEM, key=("a",)), Numbering()))
    assert sql["List"] == 'SELECT "a", CAST("b" AS CHAR) AS `b` FROM `v` WHERE "a" IS NOT NULL'


def test_a_colon_in_a_column_name_is_not_read_as_a_parameter() -> None:
    table = TableShape("t", "t", "sqlite", (col("id", SqlKind.INTEGER), col("a:b")), ("id",))
    sql = statements(build_contract(table, Options(SUBSYSTEM), Numbering()))
    assert '"a\\:b" AS "a_b"' in sql["Get"]


def test_the_mapping_pages_list_by_the_key_and_streams_export() -> None:
    contract = build_contract(PATIENTS, Options(SUBSYSTEM), Numbering())
    document = mapping_document(contract, "sqlite:///registry.db")
    assert document["service"] == "patients.v1.PatientsRegistry"
    assert document["descriptor"] == "patients.v1.patients_pb2"
    assert document["python_path"] == "."
    methods = document["methods"]
    assert isinstance(methods, dict)
    assert methods["Get"]["result"] == "one"
    assert methods["List"]["into"] == "records"
    assert methods["List"]["page"] == {
        "key": ["id"], "size": "page_size", "token": "page_token", "next": "next_page_token",
        "default": 100, "max": 1000,
    }  # fmt: skip
    assert methods["Export"]["result"] == "many"


def test_server_entries_publish_the_subsystem_and_let_each_client_call_every_method() -> None:
    options = Options(SUBSYSTEM, clients=("KH/GOV/MPWT/app",))
    entries = server_entries(
        build_contract(PATIENTS, options, Numbering()), "patients-mapping.yaml"
    )
    assert entries["services"] == [
        {"subsystem": SUBSYSTEM, "adapter": {"type": "sql", "mapping": "patients-mapping.yaml"}}
    ]
    assert entries["access"] == [
        {
            "client": "KH/GOV/MPWT/app",
            "service": SUBSYSTEM,
            "methods": [
                "/patients.v1.PatientsRegistry/Get",
                "/patients.v1.PatientsRegistry/List",
                "/patients.v1.PatientsRegistry/Export",
            ],
        }
    ]


@pytest.mark.parametrize(
    ("table", "options", "message"),
    [
        (
            TableShape("t", "t", "sqlite", (col("a"), col("A")), ("a",)),
            Options(SUBSYSTEM),
            "columns 'a' and 'A' both become field 'a'",
        ),
        (
            TableShape("v", "v", "sqlite", (col("a"),), (), is_view=True),
            Options(SUBSYSTEM),
            "view v has no primary key: name the column(s) that identify a row with --key",
        ),
        (
            PATIENTS,
            Options(SUBSYSTEM, key=("nope",)),
            "key column 'nope' is not a column of patients",
        ),
        (
            PATIENTS,
            Options(SUBSYSTEM, exclude=frozenset({"id"})),
            "key column 'id' is excluded",
        ),
        (
            PATIENTS,
            Options(SUBSYSTEM, exclude=frozenset({"x"})),
            "--exclude 'x': patients has no such column",
        ),
        (
            PATIENTS,
            Options(SUBSYSTEM, package="Patients"),
            "--package 'Patients' is not a protobuf package",
        ),
        (
            PATIENTS,
            Options(SUBSYSTEM, service="registry"),
            "--service 'registry' is not a service name",
        ),
        (
            TableShape("t", "t", "mysql", (col("doc", SqlKind.JSON),), ("doc",)),
            Options(SUBSYSTEM),
            "key column 'doc' is JSON",
        ),
        (
            TableShape(
                "t",
                "t",
                "mysql",
                (col("id"), col("a", SqlKind.OTHER), col("b", SqlKind.OTHER)),
                ("id",),
            ),
            Options(SUBSYSTEM),
            "t: column 'a' (OTHER) has no protobuf type",
        ),
    ],
)
def test_what_cannot_be_published_is_refused_with_what_to_do(
    table: TableShape, options: Options, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        build_contract(table, options, Numbering())
    assert message in refused.value.message


def test_every_unmappable_column_is_named_at_once() -> None:
    table = TableShape(
        "t", "t", "mysql", (col("id"), col("a", SqlKind.OTHER), col("b", SqlKind.OTHER)), ("id",)
    )
    with pytest.raises(ConfigError) as refused:
        build_contract(table, Options(SUBSYSTEM), Numbering())
    assert "--exclude a" in refused.value.message
    assert "--exclude b" in refused.value.message


def test_a_malformed_subsystem_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        build_contract(PATIENTS, Options("KH/GOV/MOH"), Numbering())
