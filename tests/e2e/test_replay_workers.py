"""A replayed request token is refused by every process of a provider, and after a crash.

MPWT's provider runs as ``spean server run`` in real subprocesses. One
genuine request token (MoH's real signing key and TLS identity, crafted with
tests/support/rogue.py) is sent again and again, each time over a new TCP
connection so that SO_REUSEPORT hands it to either worker: exactly one
attempt is served, every other is refused UNAUTHENTICATED as a replay,
whichever worker took it. The provider's audit store says which worker
answered each attempt, so the test goes on until the worker that did NOT
serve the original has refused the token too (each attempt reaches it with
probability 1/2; 40 attempts leave a chance of 2**-39 of not getting there).
A token served just before the provider was SIGKILLed is refused by the
restarted provider, with the SQLite audit store and with a PostgreSQL one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.audit.backends import open_store
from spean.gateway.audit.backends.urls import parse_postgres_url
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.identifiers import parse_server
from tests.support import rogue
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow

BODY = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
MAX_ATTEMPTS = 40


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    federation = build_demo(tmp_path / "federation")
    try:
        yield federation
    finally:
        federation.stop_all()


def _token(federation: Federation) -> tuple[str, str]:
    """A genuine request token of MoH's nhis for GetVehicle, and its exchange id."""
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY, lifetime=120)
    folder = federation.configs[MOH].parent
    return rogue.signer_of(folder).sign_request(claims), claims.exchange_id


def _send_over_a_new_connection(federation: Federation, token: str) -> tuple[grpc.StatusCode, str]:
    key, cert = rogue.tls_identity(federation.configs[MOH].parent)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.certificate_pem(federation.authority.ca_certificate),
        private_key=key,
        certificate_chain=cert,
    )
    provider = federation.config(MPWT).provider
    assert provider is not None
    options = [
        ("grpc.ssl_target_name_override", parse_server(f"{MPWT}/ss1").dns_name()),
        # A private subchannel pool: a new TCP connection every time, which the
        # kernel may hand to any of the workers sharing the port.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    with grpc.secure_channel(provider.listen, credentials, options=options) as channel:
        answer = rogue.send(channel, GET_VEHICLE, BODY, token, timeout=20)
    return answer.code, answer.details


def _answered_by(
    federation: Federation, exchange_id: str, store: str | None = None
) -> list[tuple[str, str]]:
    """(origin, status) of every provider audit record of `exchange_id`, in answer order."""
    url = store or str(federation.configs[MPWT].parent / "state" / "audit.db")
    with open_store(url, "reader") as audit:
        records = [
            AuditRecord.from_bytes(stored.record_bytes)
            for origin in audit.origins()
            for stored in audit.read(origin=origin)
        ]
    records.sort(key=lambda r: r.answered_at_ns)
    return [(r.origin, r.status) for r in records if r.exchange_id == exchange_id]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def audit_store(request: pytest.FixtureRequest, federation: Federation) -> Iterator[str | None]:
    """MPWT's audit store: the demo's SQLite file (None), or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"spean_replay_e2e_{uuid.uuid4().hex[:10]}"
    url = f"{base}?schema={schema}"
    config = federation.configs[MPWT]
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["audit"]["store"] = url
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    yield url
    conninfo, _ = parse_postgres_url(base)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_token_replayed_to_either_worker_is_refused(
    federation: Federation, tmp_path: Path
) -> None:
    mpwt = ServerProcess(federation.configs[MPWT], tmp_path / "mpwt.log", workers=2)
    try:
        mpwt.wait_for("server.workers_ready")
        token, exchange_id = _token(federation)
        answers = [_send_over_a_new_connection(federation, token)]
        assert answers[0][0] is grpc.StatusCode.OK, answers[0]
        ((served_by, status),) = _answered_by(federation, exchange_id)
        assert status == "OK"
        refused_by: set[str] = set()
        while len(answers) < MAX_ATTEMPTS:
            answers.append(_send_over_a_new_connection(federation, token))
            origin, status = _answered_by(federation, exchange_id)[-1]
            assert status == "UNAUTHENTICATED"
            refused_by.add(origin)
            if refused_by - {served_by}:
                break
    finally:
        mpwt.kill()
    # Exactly one attempt served; every other refused as a replay, by both workers.
    assert answers[0][0] is grpc.StatusCode.OK
    for code, details in answers[1:]:
        assert code is grpc.StatusCode.UNAUTHENTICATED, details
        assert "replay" in details
    assert refused_by - {served_by}, f"every attempt reached {served_by}"
    statuses = Counter(status for _, status in _answered_by(federation, exchange_id))
    assert statuses == {"OK": 1, "UNAUTHENTICATED": len(answers) - 1}


def test_a_token_replayed_after_the_provider_crashed_is_refused(
    federation: Federation, audit_store: str | None, tmp_path: Path
) -> None:
    token, exchange_id = _token(federation)
    first = ServerProcess(federation.configs[MPWT], tmp_path / "first.log")
    try:
        first.wait_for("server.started")
        code, details = _send_over_a_new_connection(federation, token)
        assert code is grpc.StatusCode.OK, details
    finally:
        first.kill()  # SIGKILL: no drain, no close; the memory layer is gone
    second = ServerProcess(federation.configs[MPWT], tmp_path / "second.log")
    try:
        second.wait_for("server.started")
        code, details = _send_over_a_new_connection(federation, token)
        # A fresh token still passes: the restarted provider serves, it only remembers.
        fresh, _ = _token(federation)
        fresh_code, fresh_details = _send_over_a_new_connection(federation, fresh)
    finally:
        second.kill()
    assert code is grpc.StatusCode.UNAUTHENTICATED, details
    assert "replay" in details
    assert fresh_code is grpc.StatusCode.OK, fresh_details
    assert [status for _, status in _answered_by(federation, exchange_id, audit_store)] == [
        "OK",
        "UNAUTHENTICATED",
    ]
