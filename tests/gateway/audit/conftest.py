"""Shared audit fixtures: backends (SQLite and PostgreSQL) and checkpoint signers.

`store_url` is parametrised over both backends, so every test that takes it
runs against a real SQLite file and a real PostgreSQL schema of its own
(tests/support/databases.py, dropped afterwards); the PostgreSQL half follows
the `postgres_url` policy of tests/conftest.py (skipped when unreachable,
mandatory in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from spean.gateway.audit.checkpoint import CheckpointSigner
from tests.support.databases import postgres_schema
from tests.support.pki import MEMBER, self_signed


@pytest.fixture(params=["ec", "ed25519"])
def signer_and_cert(request: pytest.FixtureRequest) -> tuple[CheckpointSigner, x509.Certificate]:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if request.param == "ec"
        else (ed25519.Ed25519PrivateKey.generate())
    )
    cert = self_signed(key)
    return CheckpointSigner(MEMBER, key, cert), cert


@pytest.fixture
def ec_signer() -> CheckpointSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    return CheckpointSigner(MEMBER, key, self_signed(key))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "audit.db")
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url
