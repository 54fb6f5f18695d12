"""From a table's columns to protobuf field types, and from SQL names to protobuf names (pure).

`publish-table` describes a table as plain values (`TableShape`, `ColumnShape`:
the introspection edge, `spean.gateway.publish.io.introspect`, fills them in
from SQLAlchemy) and this module decides, per column, the field type of the
published contract. The rules are the table in docs/adapters.md
("Publishing a table"); each one is chosen so that the SQL adapter fills the
field from the column's values without loss:

- integers by width (`int32`, `int64`, `uint32`, `uint64` for MySQL's unsigned
  types); SQLite stores every integer in 8 bytes, so its integers are `int64`;
- floating-point as `double`; `NUMERIC`/`DECIMAL` as `string`, the exact
  digits, since a `double` would round money and identifiers;
- dates as the file's own `Date` message (year, month, day: the shape of
  `google.type.Date`, which the adapter recognises), date-times as
  `google.protobuf.Timestamp`, times of day as ISO `string` (cast in SQL);
- JSON and UUID as `string` (cast to text in SQL), binary as `bytes`;
- an enum column as a protobuf enum named after the column (``DateValue``
  for a column whose name is one of the file's messages, ``date``) whose
  values are the column's, when each value makes a distinct enum value name;
  otherwise as `string`;
- a column that may be NULL as proto3 `optional` (messages track presence
  by themselves).

Any other type is `Unmappable`, with what to do (exclude it, or cast it in a
view). Names: `proto_name` is the one conversion rule for columns and
tables; it never silently merges two columns (the caller checks clashes).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "ColumnShape",
    "FieldType",
    "SqlKind",
    "TableShape",
    "Unmappable",
    "camel_case",
    "enum_value_prefix",
    "field_type",
    "proto_name",
]


class SqlKind(enum.Enum):
    """What a column holds, as far as choosing its field type cares."""

    INTEGER = "integer"
    BOOLEAN = "boolean"
    FLOAT = "floating-point"
    DECIMAL = "decimal"
    TEXT = "text"
    BYTES = "binary"
    DATE = "date"
    DATETIME = "date-time"
    TIME = "time of day"
    ENUM = "enum"
    JSON = "JSON"
    UUID = "UUID"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ColumnShape:
    """One column as the database describes it.

    `quoted` is the name as the database's SQL needs it (quoted where the
    dialect requires); `sql_type` is the type as the database names it, for
    messages and comments. `bits` is the storage width of an integer.
    """

    name: str
    quoted: str
    sql_type: str
    kind: SqlKind
    nullable: bool
    bits: int = 32
    unsigned: bool = False
    enum_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TableShape:
    """A table or view: its columns in order and its primary key (empty for most views).

    `dialect` is ``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included).
    """

    name: str
    quoted: str
    dialect: str
    columns: tuple[ColumnShape, ...]
    primary_key: tuple[str, ...]
    is_view: bool = False

    def column(self, name: str) -> ColumnShape | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True, slots=True)
class FieldType:
    """The protobuf type chosen for a column.

    `proto` is the type as written in the .proto (``int64``,
    ``google.protobuf.Timestamp``, ``Date``, or the enum's name);
    `cast_text` says the statement selects the column cast to text;
    `enum_values` are the database values of an enum, in order.
    """

    proto: str
    cast_text: bool = False
    enum_values: tuple[str, ...] = ()

    @property
    def is_message(self) -> bool:
        return self.proto in (TIMESTAMP, DATE)

    @property
    def is_enum(self) -> bool:
        return bool(self.enum_values)


class Unmappable(Exception):
    """A column with no protobuf type; the message says what to do."""


TIMESTAMP = "google.protobuf.Timestamp"
DATE = "Date"
MESSAGE_NAMES = frozenset(
    {"Record", DATE, "GetRequest", "ListRequest", "ListResponse", "ExportRequest"}
)
"""The messages of every published file; an enum column is never named like one."""

_SCALARS = {
    SqlKind.BOOLEAN: "bool",
    SqlKind.FLOAT: "double",
    SqlKind.DECIMAL: "string",
    SqlKind.TEXT: "string",
    SqlKind.BYTES: "bytes",
    SqlKind.DATE: DATE,
    SqlKind.DATETIME: TIMESTAMP,
}
# Values the adapter cannot convert as the driver returns them, so the
# statement selects them as text.
_AS_TEXT = frozenset({SqlKind.TIME, SqlKind.JSON, SqlKind.UUID})


def field_type(column: ColumnShape, dialect: str) -> FieldType:
    """The field type of `column`, or `Unmappable` naming the column and the way out."""
    if column.kind is SqlKind.INTEGER:
        return FieldType(_integer(column, dialect))
    if column.kind in _AS_TEXT:
        return FieldType("string", cast_text=True)
    if column.kind is SqlKind.ENUM:
        if _enum_names_distinct(column.enum_values):
            name = camel_case(proto_name(column.name))
            # A nested enum named like a message of the file would hide that message.
            name = f"{name}Value" if name in MESSAGE_NAMES else name
            return FieldType(name, enum_values=column.enum_values)
        return FieldType("string")  # values that make no distinct names stay as they are
    scalar = _SCALARS.get(column.kind)
    if scalar is None:
        raise Unmappable(
            f"column {column.name!r} ({column.sql_type}) has no protobuf type: leave it out with"
            f" --exclude {column.name}, or publish a view that casts it"
            f" (CAST({column.name} AS VARCHAR(...)) AS {column.name}) and name the view"
        )
    return FieldType(scalar)


def _integer(column: ColumnShape, dialect: str) -> str:
    if dialect == "sqlite":
        return "int64"  # SQLite keeps every integer in up to 8 bytes, whatever the declaration
    if column.unsigned:
        return "uint64" if column.bits > 32 else "uint32"
    return "int64" if column.bits > 32 else "int32"


_NOT_NAME = re.compile(r"[^a-z0-9_]+")
_UNDERSCORES = re.compile(r"_+")


def proto_name(sql_name: str) -> str:
    """The protobuf name of a column or table: lower case, every run of other characters
    than letters, digits and ``_`` becomes one ``_``, no ``_`` at either end, and
    ``c_`` in front of a name that would start with a digit or be empty.

    ``"Date of Birth"`` -> ``date_of_birth``; ``"2nd-line"`` -> ``c_2nd_line``.
    """
    name = _UNDERSCORES.sub("_", _NOT_NAME.sub("_", sql_name.lower())).strip("_")
    if not name or name[0].isdigit():
        name = f"c_{name}".rstrip("_")
    return name


def camel_case(name: str) -> str:
    """``tax_status`` -> ``TaxStatus``; the message, enum and service name rule."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def enum_value_prefix(enum_name: str) -> str:
    """``TaxStatus`` -> ``TAX_STATUS_``: the same prefix the SQL adapter strips when it
    matches a database value to an enum value (spean.adapters.sql._convert)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


_ENUM_VALUE = re.compile(r"[A-Za-z0-9_]+\Z")


def _enum_names_distinct(values: tuple[str, ...]) -> bool:
    """True when every value is a name part on its own and no two differ by case only:
    the adapter matches values to names case-insensitively."""
    upper = [value.upper() for value in values]
    return (
        bool(values)
        and all(_ENUM_VALUE.match(value) for value in values)
        and len(set(upper)) == len(upper)
        and "UNSPECIFIED" not in upper
    )
