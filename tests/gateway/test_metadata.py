"""Spean header parsing: exactly once, printable, bounded."""

from __future__ import annotations

import pytest

from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.metadata import (
    CLIENT,
    PURPOSE,
    REQUEST_TOKEN,
    SERVICE,
    SUBJECT,
    USER,
    parse_consumer_headers,
    parse_subject,
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


def test_the_data_subject_is_optional_and_kept_apart_from_the_user() -> None:
    headers = parse_consumer_headers([*BASE, (USER, "dr.sokha"), (SUBJECT, "KH-NID:0102/03")])
    assert (headers.user, headers.subject) == ("dr.sokha", "KH-NID:0102/03")
    assert parse_consumer_headers(BASE).subject == ""
    assert parse_subject([(SUBJECT, "0102")]) == "0102"
    assert parse_subject(BASE) == ""


@pytest.mark.parametrize(
    "subject",
    ["", " 0102", "01 02", "-0102", "x" * 65, "0102\n", "\u17e0\u17e1", "01;02", "01*"],
)
def test_a_malformed_subject_is_refused_without_being_quoted(subject: str) -> None:
    for parse in (lambda m: parse_consumer_headers([*BASE, *m]), parse_subject):
        with pytest.raises(InvalidArgument) as info:
            parse([(SUBJECT, subject)])
        assert info.value.code.name == "INVALID_ARGUMENT"
        assert "header spean-subject must be 1 to 64 characters" in info.value.message
        if subject.strip():
            assert subject not in info.value.message


def test_the_subject_may_be_sent_once_only() -> None:
    with pytest.raises(InvalidArgument, match="spean-subject appears more than once"):
        parse_subject([(SUBJECT, "0102"), (SUBJECT, "0103")])
    with pytest.raises(InvalidArgument, match="spean-subject must be text"):
        parse_subject([(SUBJECT, b"0102")])
