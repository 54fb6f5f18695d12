"""Paging a `many` result: keyset statements around the mapping's own, and page tokens.

A method whose mapping has `page:` answers one page of rows per call. The
adapter wraps the operator's statement (never splices a request value into
it):

    SELECT * FROM (<statement>) AS spean_page
    [WHERE (k1, k2) > (:spean_after_0, :spean_after_1)]
    ORDER BY k1, k2 LIMIT :spean_limit

and reads one row more than the page holds to know whether another page
follows. The next page starts after the last row's key (keyset paging, no
OFFSET): rows added or removed between two pages neither repeat nor hide the
others. The key columns must identify a row (a primary key) and never be
NULL.

A page token is the last row's key values, typed (integer, decimal, text,
date, date-time, time, bytes, UUID, boolean), as JSON in unpadded base64url.
It is opaque to callers; a token that does not decode into as many values as
the key has is `InvalidArgument`. A token only moves the start of a page of
rows the caller may already list, so it needs no signature.

`Paging.plan` checks, when the adapter loads, that the method is a unary
`many` with `into` and that its request and response have the page fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    TextClause,
    bindparam,
    column,
    literal_column,
    select,
)
from sqlalchemy import tuple_ as sql_tuple

from spean.gateway.errors import ConfigError, InvalidArgument

__all__ = ["LIMIT", "PageSpec", "Paging", "decode_token", "encode_token", "page_statements"]

LIMIT = "spean_limit"
"""The bound parameter of the page's LIMIT (names starting spean_ are the adapter's)."""


@dataclass(frozen=True, slots=True)
class PageSpec:
    """A mapping's `page:` entry: key columns, the request and response fields, the sizes."""

    key: tuple[str, ...]
    size: str = "page_size"
    token: str = "page_token"  # noqa: S105 (a field name, not a secret)
    next: str = "next_page_token"
    default: int = 100
    max: int = 1000

    def rows_for(self, asked: int) -> int:
        """Rows in a page for a requested size: 0 is the default, more than `max` is `max`."""
        if asked < 0:
            raise InvalidArgument(f"{self.size} must not be negative (0 asks for {self.default})")
        return min(asked or self.default, self.max)


_INTEGERS = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)


@dataclass(frozen=True, slots=True)
class Paging:
    """A paged method's statements (first page, page after a key) and its request fields."""

    spec: PageSpec
    first: Select[Any]
    after: Select[Any]
    size: FieldDescriptor
    token: FieldDescriptor

    @classmethod
    def plan(
        cls,
        spec: PageSpec,
        method: MethodDescriptor,
        statement: TextClause,
        *,
        paged: bool,
        where: str,
    ) -> Paging:
        """Checks the method against `spec` (`ConfigError` at `where`, the mapping's
        ``file: methods.<Name>.page``); `paged` says it is a unary `many` with `into`."""
        if not paged:
            raise ConfigError(
                f"{where}: only a unary 'many' method with 'into' is paged (a stream is not)"
            )
        request, response = method.input_type, method.output_type
        size = request.fields_by_name.get(spec.size)
        if size is None or size.cpp_type not in _INTEGERS or size.is_repeated:
            raise ConfigError(
                f"{where}.size: {request.full_name} has no integer field {spec.size!r}"
            )
        token = request.fields_by_name.get(spec.token)
        if token is None or token.type != FieldDescriptor.TYPE_STRING or token.is_repeated:
            raise ConfigError(
                f"{where}.token: {request.full_name} has no string field {spec.token!r}"
            )
        following = response.fields_by_name.get(spec.next)
        if following is None or following.type != FieldDescriptor.TYPE_STRING:
            raise ConfigError(
                f"{where}.next: {response.full_name} has no string field {spec.next!r}"
            )
        first, after = page_statements(statement, spec.key)
        return cls(spec, first, after, size, token)


def after_name(index: int) -> str:
    return f"spean_after_{index}"


def page_statements(statement: TextClause, key: Sequence[str]) -> tuple[Select[Any], Select[Any]]:
    """The first page's statement and the statement of a page after a key."""
    page = statement.columns(*(column(name) for name in key)).subquery("spean_page")
    ordered = [page.c[name] for name in key]
    first: Select[Any] = (
        select(literal_column("*"))
        .select_from(page)
        .order_by(*ordered)
        .limit(bindparam(LIMIT, type_=Integer()))
    )
    bounds: list[BindParameter[Any]] = [bindparam(after_name(i)) for i in range(len(key))]
    # One column compares plainly; several as a row value (SQL-92, all three engines).
    after = ordered[0] > bounds[0] if len(key) == 1 else sql_tuple(*ordered) > sql_tuple(*bounds)
    return first, first.where(after)


def encode_token(values: Sequence[object]) -> str:
    """The token of the page after the row whose key is `values`; `TypeError` for a key
    value of a type no key column has (the mapping's key is then wrong)."""
    raw = json.dumps([_tagged(value) for value in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_token(token: str, length: int, field: str) -> tuple[object, ...]:
    """The key values of a token `encode_token` made; `InvalidArgument` otherwise."""
    refused = InvalidArgument(
        f"{field} is not a token this method returned; start again without it"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        items = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise refused from exc
    if not isinstance(items, list) or len(items) != length:
        raise refused
    try:
        return tuple(_untagged(item) for item in items)
    except (TypeError, ValueError, KeyError, InvalidOperation) as exc:
        raise refused from exc


def _tagged(value: object) -> list[object]:
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, time):
        return ["T", value.isoformat()]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["x", base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    raise TypeError(f"a key value of type {type(value).__name__} cannot be kept in a page token")


def _untagged(item: object) -> object:
    if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
        raise ValueError("not a tagged value")
    tag, value = item
    expected = _DECODERS[tag]  # KeyError for an unknown tag
    return expected(value)


def _checked(
    kind: type, convert: Callable[[Any], object] | None = None
) -> Callable[[object], object]:
    def decode(value: object) -> object:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}")
        return value if convert is None else convert(value)

    return decode


_DECODERS: dict[str, Callable[[object], object]] = {
    "b": _checked(bool),
    "i": _checked(int),
    "f": _checked(float),
    "n": _checked(str, Decimal),
    "s": _checked(str),
    "t": _checked(str, datetime.fromisoformat),
    "d": _checked(str, date.fromisoformat),
    "T": _checked(str, time.fromisoformat),
    "x": _checked(str, lambda text: base64.b64decode(text, validate=True)),
    "u": _checked(str, uuid.UUID),
}
