"""Spean header parsing: exactly once, printable, bounded."""

from __future__ import annotations

import pytest

from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.metadata import (
    CLIENT,
    PURPOSE,
    REQUEST_TOKEN,
    SERVICE,
    USER,
    parse_consumer_headers,
    single_token,
)

BASE = [(CLIENT, "KH/GOV/MOH/nhis"), (SERVICE, "KH/GOV/MPWT/vehicles")]


def test_headers_parse_with_optional_user_and_purpose() -> None:
    headers = parse_consumer_headers([*BASE, (USER, "dr.sokha"), (PURPOSE, "case 17")])
    assert str(headers.client) == "KH/GOV/MOH/nhis"
    assert str(headers.service) == "KH/GOV/MPWT/vehicles"
    assert (headers.user, headers.purpose) == ("dr.sokha", "case 17")


def test_other_headers_are_ignored() -> None:
    headers = parse_consumer_headers([("user-agent", "grpc"), *BASE])
    assert headers.user == ""


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ([BASE[1]], "spean-client is missing"),
        ([BASE[0]], "spean-service is missing"),
        ([*BASE, BASE[0]], "appears more than once"),
        ([*BASE, (USER, "a\x00b")], "control characters"),
        ([*BASE, (PURPOSE, "line\nbreak")], "control characters"),
        ([*BASE, (USER, "x" * 2000)], "longer than 1024 bytes"),
        ([(CLIENT, b"KH/GOV/MOH/nhis"), BASE[1]], "must be text"),
    ],
)
def test_bad_headers(metadata: list[tuple[str, str | bytes]], fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_consumer_headers(metadata)
    assert fragment in info.value.message


def test_single_token() -> None:
    assert single_token([(REQUEST_TOKEN, "a.b.c")], REQUEST_TOKEN) == "a.b.c"
    with pytest.raises(Unauthenticated, match="missing"):
        single_token([], REQUEST_TOKEN)
    with pytest.raises(Unauthenticated, match="more than once"):
        single_token([(REQUEST_TOKEN, "a"), (REQUEST_TOKEN, "b")], REQUEST_TOKEN)
    with pytest.raises(Unauthenticated, match="longer than"):
        single_token([(REQUEST_TOKEN, "a" * 9000)], REQUEST_TOKEN)
