"""Digests and base64url: the byte-exact parts of the token contract."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spean.gateway.digests import (
    DIGEST_SIZE,
    ResponseDigest,
    b64url,
    b64url_decode,
    decode_digest,
    request_digest,
    response_digest,
)
from spean.gateway.errors import InvalidArgument, ResourceExhausted

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_request_digest_is_sha256_of_the_message_bytes() -> None:
    body = b"\x0a\x07ABC-123"
    assert request_digest(body) == hashlib.sha256(body).digest()
    assert len(request_digest(b"")) == DIGEST_SIZE


def test_response_digest_of_no_messages_is_sha256_of_nothing() -> None:
    accumulator = ResponseDigest()
    assert accumulator.digest() == hashlib.sha256(b"").digest()
    assert (accumulator.count, accumulator.size) == (0, 0)
    assert response_digest([]) == hashlib.sha256(b"").digest()


def test_response_digest_prefixes_each_message_with_its_big_endian_length() -> None:
    expected = hashlib.sha256(b"\x00\x00\x00\x03abc" + b"\x00\x00\x01\x00" + b"x" * 256).digest()
    accumulator = ResponseDigest()
    accumulator.update(b"abc")
    accumulator.update(b"x" * 256)
    assert accumulator.digest() == expected
    assert (accumulator.count, accumulator.size) == (2, 259)


def test_unary_response_is_the_one_message_case() -> None:
    assert response_digest([b"abc"]) == hashlib.sha256(b"\x00\x00\x00\x03abc").digest()
    assert response_digest([b"abc"]) != request_digest(b"abc")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([b"ab", b"c"], [b"a", b"bc"]),
        ([b""], []),
        ([b"", b""], [b""]),
        ([b"abc"], [b"abc", b""]),
    ],
)
def test_message_boundaries_are_bound(left: list[bytes], right: list[bytes]) -> None:
    assert response_digest(left) != response_digest(right)


def test_digest_can_be_read_midway_without_finalizing() -> None:
    accumulator = ResponseDigest()
    accumulator.update(b"one")
    first = accumulator.digest()
    assert accumulator.digest() == first
    accumulator.update(b"two")
    assert accumulator.digest() == response_digest([b"one", b"two"]) != first


def test_a_message_too_long_for_the_length_prefix_is_refused() -> None:
    class Huge(bytes):
        # Stands in for a 4 GiB message without allocating one.
        def __len__(self) -> int:
            return 2**32

    accumulator = ResponseDigest()
    with pytest.raises(ResourceExhausted, match="4294967296 bytes"):
        accumulator.update(Huge(b"x"))
    assert (accumulator.count, accumulator.size) == (0, 0)
    assert accumulator.digest() == hashlib.sha256(b"").digest()


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_incremental_equals_the_definition(messages: list[bytes]) -> None:
    framed = b"".join(len(m).to_bytes(4, "big") + m for m in messages)
    accumulator = ResponseDigest()
    for message in messages:
        accumulator.update(message)
    assert accumulator.digest() == hashlib.sha256(framed).digest()
    assert accumulator.count == len(messages)
    assert accumulator.size == sum(map(len, messages))


@pytest.mark.parametrize(
    ("data", "text"),
    [  # RFC 4648 section 10, unpadded; then the two characters base64url changes.
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
        (b"\xfb\xff", "-_8"),
    ],
)
def test_b64url_known_vectors(data: bytes, text: str) -> None:
    assert b64url(data) == text
    assert b64url_decode(text) == data


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Zg==", "padding"),
        ("Zm8=", "padding"),
        ("Zm9v+A", "outside"),
        ("Zm9v/A", "outside"),
        (" Zm9v", "outside"),
        ("Zm9v\n", "outside"),
        ("Zm9v\x00", "outside"),
        ("Zm9vé", "outside"),
        ("Zm9vY", "impossible length"),
        ("Zh", "not canonical"),  # 'Zg' is the one spelling of b"f"
        ("Zm9", "not canonical"),  # 'Zm8' is the one spelling of b"fo"
    ],
)
def test_b64url_decode_is_strict(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        b64url_decode(text)


def test_b64url_decode_wants_text() -> None:
    with pytest.raises(InvalidArgument, match="must be a string, got bytes"):
        b64url_decode(b"Zg")  # type: ignore[arg-type]


def test_decode_digest_wants_exactly_32_bytes() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert decode_digest(b64url(digest)) == digest
    for wrong in (digest[:31], digest + b"\x00"):
        with pytest.raises(InvalidArgument, match="32 bytes take 43"):
            decode_digest(b64url(wrong))


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text
    assert b64url_decode(text) == data
    assert text == base64.urlsafe_b64encode(data).decode().rstrip("=")


@given(st.text(alphabet=ALPHABET, max_size=12))
def test_every_accepted_text_is_the_canonical_spelling(text: str) -> None:
    try:
        data = b64url_decode(text)
    except InvalidArgument:
        # A refused text is one a lenient decoder would not map back to itself.
        padded = text + "=" * (-len(text) % 4)
        assert len(text) % 4 == 1 or b64url(base64.urlsafe_b64decode(padded)) != text
    else:
        assert b64url(data) == text
