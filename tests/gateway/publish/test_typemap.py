"""Column types to field types, and SQL names to protobuf names: the table of docs/adapters.md."""

from __future__ import annotations

import pytest

from spean.gateway.publish.typemap import (
    ColumnShape,
    FieldType,
    SqlKind,
    Unmappable,
    camel_case,
    enum_value_prefix,
    field_type,
    proto_name,
)


def column(kind: SqlKind, **extra: object) -> ColumnShape:
    return ColumnShape(
        name="c",
        quoted="c",
        sql_type="T",
        kind=kind,
        nullable=False,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("bits", "unsigned", "dialect", "expected"),
    [
        (16, False, "postgresql", "int32"),
        (32, False, "postgresql", "int32"),
        (64, False, "postgresql", "int64"),
        (32, True, "mysql", "uint32"),
        (24, True, "mysql", "uint32"),
        (64, True, "mysql", "uint64"),
        (8, False, "mysql", "int32"),
        # SQLite keeps every integer in up to 8 bytes, whatever its declaration says.
        (32, False, "sqlite", "int64"),
    ],
)
def test_integers_map_by_width_and_sign(
    bits: int, unsigned: bool, dialect: str, expected: str
) -> None:
    kind = field_type(column(SqlKind.INTEGER, bits=bits, unsigned=unsigned), dialect)
    assert kind == FieldType(expected)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (SqlKind.BOOLEAN, FieldType("bool")),
        (SqlKind.FLOAT, FieldType("double")),
        (SqlKind.DECIMAL, FieldType("string")),  # exact digits, never a rounded double
        (SqlKind.TEXT, FieldType("string")),
        (SqlKind.BYTES, FieldType("bytes")),
        (SqlKind.DATE, FieldType("Date")),
        (SqlKind.DATETIME, FieldType("google.protobuf.Timestamp")),
        (SqlKind.TIME, FieldType("string", cast_text=True)),
        (SqlKind.JSON, FieldType("string", cast_text=True)),
        (SqlKind.UUID, FieldType("string", cast_text=True)),
    ],
)
def test_each_kind_has_its_field_type(kind: SqlKind, expected: FieldType) -> None:
    assert field_type(column(kind), "postgresql") == expected


def test_dates_and_timestamps_are_messages_that_track_presence_themselves() -> None:
    assert field_type(column(SqlKind.DATE), "sqlite").is_message
    assert field_type(column(SqlKind.DATETIME), "sqlite").is_message
    assert not field_type(column(SqlKind.TEXT), "sqlite").is_message


def test_an_enum_column_becomes_an_enum_named_after_the_column() -> None:
    shape = ColumnShape(
        "tax_status", "tax_status", "tax", SqlKind.ENUM, True, enum_values=("paid", "due")
    )
    kind = field_type(shape, "postgresql")
    assert kind == FieldType("TaxStatus", enum_values=("paid", "due"))
    assert kind.is_enum


def test_an_enum_named_like_a_message_of_the_file_does_not_hide_it() -> None:
    shape = ColumnShape("date", "date", "e", SqlKind.ENUM, False, enum_values=("a", "b"))
    assert field_type(shape, "mysql").proto == "DateValue"


@pytest.mark.parametrize(
    "values",
    [
        ("tuk-tuk", "car"),  # not a name part
        ("Car", "CAR"),  # the adapter matches values case-insensitively
        ("unspecified", "x"),  # would collide with the zero value
    ],
)
def test_an_enum_whose_values_make_no_distinct_names_stays_text(values: tuple[str, ...]) -> None:
    kind = field_type(column(SqlKind.ENUM, enum_values=values), "mysql")
    assert kind == FieldType("string")


def test_an_unknown_type_is_refused_with_the_way_out() -> None:
    shape = ColumnShape("span", '"span"', "INTERVAL", SqlKind.OTHER, False)
    with pytest.raises(Unmappable) as refused:
        field_type(shape, "postgresql")
    message = str(refused.value)
    assert "column 'span' (INTERVAL) has no protobuf type" in message
    assert "--exclude span" in message
    assert "view that casts it" in message


@pytest.mark.parametrize(
    ("sql", "proto"),
    [
        ("plate", "plate"),
        ("Date of Birth", "date_of_birth"),
        ("OwnerID", "ownerid"),
        ("2nd-line", "c_2nd_line"),
        ("__weird__name__", "weird_name"),
        ("ប្រភេទ", "c"),
        ("a--b", "a_b"),
    ],
)
def test_sql_names_convert_by_one_rule(sql: str, proto: str) -> None:
    assert proto_name(sql) == proto


def test_camel_case_and_the_adapters_enum_prefix_agree() -> None:
    assert camel_case("tax_status") == "TaxStatus"
    assert camel_case("patients") == "Patients"
    assert enum_value_prefix("TaxStatus") == "TAX_STATUS_"
    assert enum_value_prefix("Level2Code") == "LEVEL2_CODE_"
