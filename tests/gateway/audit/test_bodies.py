"""Sealed bodies: only the auditors' key opens them, bound to their record, checked by digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from spean.gateway.audit.bodies import (
    Bodies,
    BodiesError,
    RetainingDigest,
    check_bodies,
    open_for,
    seal_exchange,
)
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import ConfigError
from spean.gateway.files.keyfiles import (
    generate_auditor_key,
    load_auditor_key,
    load_auditor_public_key,
)

ORIGIN = "KH/GOV/MPWT/ss1#w0"


def exchange(request: bytes, responses: list[bytes], exchange_id: str = "e1") -> AuditRecord:
    digest = ResponseDigest()
    for message in responses:
        digest.update(message)
    return AuditRecord(
        exchange_id=exchange_id,
        side=Side.PROVIDER,
        origin=ORIGIN,
        received_at_ns=1,
        status="OK",
        request_sha256=request_digest(request),
        request_size=len(request),
        response_sha256=digest.digest(),
        response_size=digest.size,
        response_messages=digest.count,
    )


def sealed_for(record: AuditRecord, bodies: Bodies, public: bytes) -> bytes:
    return seal_exchange(
        bodies.request,
        bodies.responses,
        public,
        origin=record.origin,
        side=record.side.value,
        exchange_id=record.exchange_id,
    )


@pytest.fixture
def auditor(tmp_path: Path) -> tuple[X25519PrivateKey, bytes]:
    public = generate_auditor_key(tmp_path / "auditor.key")
    return load_auditor_key(tmp_path / "auditor.key"), public


def test_sealed_bodies_open_with_the_auditors_key_and_match_the_record(
    auditor: tuple[X25519PrivateKey, bytes],
) -> None:
    key, public = auditor
    bodies = Bodies(b"\x0a\x03ABC", (b"first", b"", b"third"))
    record = exchange(bodies.request, list(bodies.responses))
    sealed = sealed_for(record, bodies, public)
    assert b"first" not in sealed
    assert b"ABC" not in sealed
    assert open_for(record, sealed, key) == bodies
    assert check_bodies(record, bodies) == ""
    # A fresh data key and ephemeral key every time: the same bodies never seal alike.
    assert sealed_for(record, bodies, public) != sealed


def test_another_key_another_record_or_an_altered_byte_do_not_open(
    auditor: tuple[X25519PrivateKey, bytes],
) -> None:
    key, public = auditor
    bodies = Bodies(b"req", (b"resp",))
    record = exchange(b"req", [b"resp"])
    sealed = sealed_for(record, bodies, public)
    with pytest.raises(BodiesError, match="do not decrypt"):
        open_for(record, sealed, X25519PrivateKey.generate())
    with pytest.raises(BodiesError, match="do not decrypt"):
        open_for(dataclasses.replace(record, exchange_id="e2"), sealed, key)
    for position in (5, 60, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[position] ^= 1
        with pytest.raises(BodiesError):
            open_for(record, bytes(altered), key)
    with pytest.raises(BodiesError, match="not sealed bodies"):
        open_for(record, b"SPB0" + sealed[4:], key)


def test_bodies_that_differ_from_the_records_digests_are_named() -> None:
    record = exchange(b"req", [b"a", b"b"])
    assert "request digest" in check_bodies(record, Bodies(b"REQ", (b"a", b"b")))
    assert "response" in check_bodies(record, Bodies(b"req", (b"ab",)))
    assert check_bodies(record, Bodies(b"req", (b"a", b"b"))) == ""


def test_bodies_round_trip_and_refuse_truncation() -> None:
    bodies = Bodies(b"", (b"x" * 70000, b""))
    assert Bodies.from_bytes(bodies.to_bytes()) == bodies
    with pytest.raises(BodiesError):
        Bodies.from_bytes(bodies.to_bytes()[:-1])
    with pytest.raises(BodiesError):
        Bodies.from_bytes(bodies.to_bytes() + b"\x00")


def test_retaining_digest_keeps_messages_and_the_same_digest() -> None:
    plain, retaining = ResponseDigest(), RetainingDigest()
    for message in (b"one", b"two"):
        plain.update(message)
        retaining.update(message)
    assert retaining.digest() == plain.digest()
    assert retaining.messages == [b"one", b"two"]


def test_key_files(tmp_path: Path) -> None:
    public = generate_auditor_key(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert load_auditor_public_key(tmp_path / "k.pem") == public
    with pytest.raises(ConfigError, match="never overwritten"):
        generate_auditor_key(tmp_path / "k.pem")
    (tmp_path / "bad.pem").write_bytes(b"not a key")
    with pytest.raises(ConfigError, match=r"bad\.pem"):
        load_auditor_key(tmp_path / "bad.pem")
    with pytest.raises(ConfigError, match="cannot read"):
        load_auditor_key(tmp_path / "missing.pem")
