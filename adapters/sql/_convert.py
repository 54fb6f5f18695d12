"""Conversions between protobuf fields and database values, for the SQL adapter.

Pure functions from descriptors to converters, built once per column or
parameter when the adapter loads; a call only runs the converters. Two
exceptions stay inside the package: `Unsupported` (a field the adapter cannot
map, raised at load or start and turned into a `ConfigError` naming the field)
and `Unconvertible` (a database value that does not fit its field, raised per
call and turned into `Internal`, details to the operator's log only).

Column value -> field: integers, floats, decimals, booleans (also 0/1 and
"true"/"false"), strings (numbers, dates and times become their ISO text),
bytes, enums (by number, by value name, or by value name without the enum's
prefix, case-insensitive: "car" -> VEHICLE_TYPE_CAR),
google.protobuf.Timestamp and date messages shaped like google.type.Date from
dates, date-times and ISO 8601 strings (a naive date-time is in the mapping's
zone; a bare date becomes midnight UTC, so it reads back as the same day
anywhere). NULL leaves the field unset (the caller of `field_writer` skips it).

Request field -> parameter: scalars as they are, enums as their value name,
Timestamps as naive date-times in the mapping's zone, date messages as dates,
unset optional fields as NULL, repeated scalars as lists.

Column type -> field, at start: where the database reports a column's type
(`ColumnKind`, learnt by `spean.adapters.sql._engines.column_kinds`), `accepts`
says whether the field can ever hold a value of that type, so that a mapping
bound to fail on every row is refused at start-up rather than per call. Text
does not fill number fields at start-up even though a numeric string would
convert: the statement then says so with a CAST. SQLite reports no types, so
there only the values themselves are checked, per call.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, LargeBinary, String
from sqlalchemy.types import TypeEngine

from spean.adapters.sql._mapping import config_error
from spean.gateway.errors import InvalidArgument

__all__ = [
    "ColumnKind",
    "Unconvertible",
    "Unsupported",
    "accepts",
    "bind_type",
    "field_writer",
    "is_leaf_message",
    "message_class",
    "param_reader",
    "resolve",
]


def resolve(
    message: Descriptor, dotted: str, source: Path, where: str, what: str
) -> tuple[FieldDescriptor, ...]:
    """Field descriptors along `dotted`; every step but the last is a singular message."""
    path: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for step in dotted.split("."):
        if current is None or is_leaf_message(current):
            raise config_error(
                source, where, f"{what}: {path[-1].name!r} has no fields to select with {dotted!r}"
            )
        field = current.fields_by_name.get(step)
        if field is None:
            fields = ", ".join(f.name for f in current.fields)
            raise config_error(
                source,
                where,
                f"{what}: {current.full_name} has no field {step!r} (it has {fields})",
            )
        if path and path[-1].is_repeated:
            raise config_error(
                source, where, f"{what}: cannot select inside repeated field {path[-1].name!r}"
            )
        path.append(field)
        current = field.message_type
    return tuple(path)


_T = TypeVar("_T")
_TIMESTAMP = "google.protobuf.Timestamp"
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE})
_BOOLEAN_WORDS = {
    "true": True,
    "t": True,
    "yes": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "0": False,
}


class Unsupported(Exception):
    """A field whose type the adapter cannot map (raised at start-up only)."""


class Unconvertible(Exception):
    """A database value that does not fit its field (raised per call)."""

    def __init__(self, field: str, value_type: str, reason: str) -> None:
        super().__init__(f"{field}: {value_type}: {reason}")
        self.field, self.value_type, self.reason = field, value_type, reason


class ColumnKind(enum.Enum):
    """What a database reports a result column to be, as far as conversion cares."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "floating-point"
    BOOLEAN = "boolean"
    TEXT = "text"
    BYTES = "binary"
    DATE = "date"
    DATETIME = "date-time"
    TIME = "time-of-day or interval"


_K = ColumnKind
_NUMBERS = frozenset({_K.INTEGER, _K.DECIMAL})
_CALENDAR = frozenset({_K.DATE, _K.DATETIME, _K.TEXT})  # text: ISO 8601


def accepts(field: FieldDescriptor) -> frozenset[ColumnKind]:
    """The column kinds whose values `field_writer(field)` can convert (some values may
    still fail: a fraction into an integer, a name that is not one of the enum's)."""
    if field.message_type is not None:
        return _CALENDAR  # Timestamp or date message; field_writer refuses other messages
    if field.enum_type is not None:
        return _NUMBERS | {_K.TEXT}  # by number or by value name
    if field.type == FieldDescriptor.TYPE_BYTES:
        return frozenset({_K.BYTES, _K.TEXT})
    if field.cpp_type in _INTEGER_TYPES:
        return _NUMBERS | {_K.BOOLEAN}
    if field.cpp_type in _FLOAT_TYPES:
        return _NUMBERS | {_K.FLOAT}
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return frozenset({_K.BOOLEAN, _K.INTEGER, _K.TEXT})  # 0/1, 'true'/'false'
    # string: numbers and dates become their ISO text, bytes are decoded as UTF-8
    return frozenset(ColumnKind) - {_K.BOOLEAN, _K.TIME}


def field_label(field: FieldDescriptor) -> str:
    """How an operator would name the field's type: ``int32 field 'fleettest.v1.Row.small'``."""
    if field.message_type is not None:
        kind = field.message_type.full_name
    elif field.enum_type is not None:
        kind = f"enum {field.enum_type.full_name}"
    else:
        kind = _TYPE_NAMES.get(field.type, "scalar")
    return f"{kind} field {field.full_name!r}"


_TYPE_NAMES = {
    getattr(FieldDescriptor, name): name[len("TYPE_") :].lower()
    for name in dir(FieldDescriptor)
    if name.startswith("TYPE_") and isinstance(getattr(FieldDescriptor, name), int)
}


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def _is_date_message(descriptor: Descriptor) -> bool:
    """True for google.type.Date and messages of the same shape (int32 year, month, day)."""
    fields = descriptor.fields_by_name
    return set(fields) == {"year", "month", "day"} and all(
        f.cpp_type == FieldDescriptor.CPPTYPE_INT32 and not f.is_repeated for f in fields.values()
    )


def is_leaf_message(descriptor: Descriptor) -> bool:
    """Messages that map to one column or parameter as a whole."""
    return descriptor.full_name == _TIMESTAMP or _is_date_message(descriptor)


def bind_type(field: FieldDescriptor) -> TypeEngine[Any] | None:
    """SQLAlchemy type for a parameter, so each dialect stores dates its own way.

    Repeated scalars get their type too: an empty list renders as an empty
    subquery whose column type must match the column compared (PostgreSQL).
    Other scalars stay untyped, so the database infers their type from where
    they are used (a string bound against a date column, say).
    """
    if field.message_type is None:
        if not field.is_repeated:
            return None
        if field.type == FieldDescriptor.TYPE_BYTES:
            return LargeBinary()
        if field.cpp_type in _INTEGER_TYPES or field.enum_type is not None:
            return String() if field.enum_type is not None else BigInteger()
        if field.cpp_type in _FLOAT_TYPES:
            return Float()
        return Boolean() if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL else String()
    return DateTime() if field.message_type.full_name == _TIMESTAMP else Date()


def param_reader(path: tuple[FieldDescriptor, ...], zone: tzinfo) -> Callable[[Message], object]:
    """Reads one request field as a bindable value (None for an unset optional field)."""
    leaf = path[-1]
    if leaf.message_type is not None and not is_leaf_message(leaf.message_type):
        raise Unsupported(f"{leaf.full_name} is a message; select one of its fields")
    if leaf.is_repeated and leaf.message_type is not None:
        raise Unsupported(f"{leaf.full_name} is a repeated message; only repeated scalars bind")
    convert = _param_converter(leaf, zone)

    def read(request: Message) -> object:
        node = request
        for field in path[:-1]:
            if not node.HasField(field.name):
                return [] if leaf.is_repeated else _unset(leaf, convert)
            node = getattr(node, field.name)
        value = getattr(node, leaf.name)
        if leaf.is_repeated:
            return [convert(item) for item in value]
        if leaf.has_presence and not node.HasField(leaf.name):
            return None
        return convert(value)

    return read


def _unset(leaf: FieldDescriptor, convert: Callable[[object], object]) -> object:
    # A field inside an absent message: NULL where presence is tracked, else its default.
    return None if leaf.has_presence else convert(leaf.default_value)


def _param_converter(field: FieldDescriptor, zone: tzinfo) -> Callable[[object], object]:
    if field.enum_type is not None:
        by_number: dict[object, str] = {v.number: v.name for v in field.enum_type.values}
        # An undefined number (open enums allow them) matches no stored name: bind it as is.
        return lambda number: by_number.get(number, number)
    if field.message_type is None:
        return lambda value: value
    if field.message_type.full_name == _TIMESTAMP:

        def timestamp(value: object) -> object:
            assert isinstance(value, Timestamp)
            return value.ToDatetime(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)

        return timestamp

    def calendar_date(value: object) -> object:
        assert isinstance(value, Message)
        parts = (getattr(value, "year"), getattr(value, "month"), getattr(value, "day"))  # noqa: B009
        try:
            return date(*parts)
        except ValueError as exc:
            raise InvalidArgument(f"{field.name} is not a valid date: {exc}") from exc

    return calendar_date


def field_writer(field: FieldDescriptor, zone: tzinfo) -> Callable[[Message, object], None]:
    """Sets `field` on its parent message from a database value (never None)."""
    name = field.name
    if field.is_repeated:
        raise Unsupported("repeated fields are filled with 'into', not from one column")
    if field.message_type is not None:
        if field.message_type.full_name == _TIMESTAMP:

            def set_timestamp(parent: Message, value: object) -> None:
                stamp = _checked(field, value, lambda v: _as_datetime(v, zone))
                getattr(parent, name).FromDatetime(stamp)

            return set_timestamp
        if _is_date_message(field.message_type):

            def set_date(parent: Message, value: object) -> None:
                day = _checked(field, value, lambda v: _as_date(v, zone))
                target = getattr(parent, name)
                target.year, target.month, target.day = day.year, day.month, day.day

            return set_date
        raise Unsupported(f"{field.message_type.full_name} is a message; map its fields instead")
    convert = _scalar_converter(field)

    def set_scalar(parent: Message, value: object) -> None:
        converted = _checked(field, value, convert)
        try:
            setattr(parent, name, converted)
        except (TypeError, ValueError) as exc:  # out of range for the field's width
            raise Unconvertible(field.full_name, type(value).__name__, str(exc)) from exc

    return set_scalar


def _checked(field: FieldDescriptor, value: object, convert: Callable[[object], _T]) -> _T:
    try:
        return convert(value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise Unconvertible(field.full_name, type(value).__name__, str(exc)) from exc


def _scalar_converter(field: FieldDescriptor) -> Callable[[object], object]:
    if field.enum_type is not None:
        return _enum_converter(field.enum_type)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _as_bytes
    if field.cpp_type in _INTEGER_TYPES:
        return _as_int
    if field.cpp_type in _FLOAT_TYPES:
        return _as_float
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return _as_bool
    return _as_text


def _enum_converter(enum: EnumDescriptor) -> Callable[[object], object]:
    # "car" -> VEHICLE_TYPE_CAR: databases keep their own short codes.
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    numbers = {value.number for value in enum.values}
    names: dict[str, int] = {}
    for value in enum.values:
        names[value.name.lower()] = value.number
        if value.name.startswith(prefix):
            names.setdefault(value.name[len(prefix) :].lower(), value.number)

    def convert(value: object) -> object:
        if isinstance(value, str):
            number = names.get(value.strip().lower())
            if number is None:
                raise ValueError(f"{value!r} is not a value of {enum.full_name}")
            return number
        number = _as_int(value)
        if number not in numbers:
            raise ValueError(f"{number} is not a value of {enum.full_name}")
        return number

    return convert


def _as_int(value: object) -> int:
    if isinstance(value, int):  # bool included: True -> 1
        return int(value)
    if isinstance(value, Decimal | float):
        if value != int(value):  # int() of inf or NaN raises, as it should
            raise ValueError("has a fractional part")
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError("not a number")


def _as_float(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int | float | Decimal | str):
        return float(value)
    raise TypeError("not a number")


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        word = _BOOLEAN_WORDS.get(value.strip().lower())
        if word is None:
            raise ValueError("not a boolean word")
        return word
    number = _as_int(value)
    if number not in (0, 1):
        raise ValueError("a boolean must be 0 or 1")
    return bool(number)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    raise TypeError("not text")


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("not bytes")


def _parse_iso(text: str) -> date:
    """An ISO 8601 date ("2024-06-01") or date-time ("2024-06-01 08:30:00+07:00")."""
    text = text.strip()
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)


def _as_datetime(value: object, zone: tzinfo) -> datetime:
    """An aware date-time. Naive date-times are in the mapping's zone; a bare date,
    which has no zone, becomes midnight UTC of that day (so it reads back as the same day)."""
    if isinstance(value, str):
        value = _parse_iso(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError("not a date or time")


def _as_date(value: object, zone: tzinfo) -> date:
    if isinstance(value, str):
        value = _parse_iso(value)
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo is not None else value).date()
    if isinstance(value, date):
        return value
    raise TypeError("not a date")
