"""The data subject's pseudonym: deterministic per provider key, unlinkable across keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from spean.gateway.errors import ConfigError
from spean.gateway.identifiers import SubsystemId
from spean.gateway.masking import client_key, pseudonym
from spean.gateway.subjects import (
    PSEUDONYM_SIZE,
    is_subject,
    subject_key,
    subject_pseudonym,
)

SECRET = bytes(range(32))


def test_one_key_and_one_subject_always_give_the_same_pseudonym() -> None:
    key = subject_key(SECRET)
    first = subject_pseudonym(key, "KH-NID-010203")
    assert first == subject_pseudonym(subject_key(SECRET), "KH-NID-010203")
    assert len(first) == PSEUDONYM_SIZE
    assert first != subject_pseudonym(key, "KH-NID-010204")


def test_the_pseudonym_is_the_documented_hmac() -> None:
    # docs/protocol.md 4.4: HMAC-SHA256(HMAC-SHA256(secret, "spean-subject-v1" 0x00), subject)
    key = hmac.new(SECRET, b"spean-subject-v1\x00", hashlib.sha256).digest()
    expected = hmac.new(key, b"KH-NID-010203", hashlib.sha256).digest()
    assert subject_pseudonym(subject_key(SECRET), "KH-NID-010203") == expected


def test_another_providers_key_gives_an_unrelated_pseudonym() -> None:
    ours = subject_pseudonym(subject_key(SECRET), "KH-NID-010203")
    theirs = subject_pseudonym(subject_key(b"\x01" + SECRET[1:]), "KH-NID-010203")
    assert ours != theirs


def test_a_subject_pseudonym_never_equals_a_masked_fields_token() -> None:
    client = SubsystemId.parse("KH/GOV/MOH/nhis")
    masked = pseudonym(client_key(SECRET, client), b"KH-NID-010203")
    assert subject_pseudonym(subject_key(SECRET), "KH-NID-010203") != masked


def test_a_short_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="at least 32 secret bytes"):
        subject_key(b"short")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("0102", True),
        ("KH-NID:0102/03", True),
        ("a+b.c_d", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        (".0102", False),
        ("01 02", False),
        ("01\n", False),
    ],
)
def test_what_a_subject_may_be(text: str, valid: bool) -> None:
    assert is_subject(text) is valid
