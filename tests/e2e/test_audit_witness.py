"""Cross-witnessing: MoH's log holds MPWT's signed checkpoints, and MPWT can no longer lie.

MoH calls MPWT's GetVehicle; once MPWT's writer has signed a checkpoint, every
answer carries it and MoH records it. After the traffic both logs are
exported: the witnessed checkpoints verify against MPWT's bundle (consistency
proofs), and an MPWT that rewrites its log afterwards, re-signing every
checkpoint with its own key, is caught by reconcile.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import grpc
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.backends.sqlite import SqliteAuditStore
from spean.gateway.audit.bundle import export_bundle, read_bundle, write_bundle
from spean.gateway.audit.checkpoint import CheckpointError, CheckpointSigner, parse_checkpoint
from spean.gateway.audit.reconcile import Kind, reconcile
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.witness import TRAILER, accept_witnessed, check_witnessed
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, VEHICLES, build_demo, call
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import MemberId
from tests.support.pki import self_signed

BEFORE = 3  # calls before MPWT's first checkpoint
AFTER = 4  # calls after it: each answer carries a checkpoint


@dataclasses.dataclass
class Witnessed:
    federation: Federation
    consumer: Path
    provider: Path
    before: list[str]
    after: list[str]
    conf: GlobalConfiguration
    provider_origin: str


def _calls(channel: grpc.Channel, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
        _, exchange_id, code, details = call(
            channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle
        )
        assert code is grpc.StatusCode.OK, details
        ids.append(exchange_id)
    return ids


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Witnessed:
    root = tmp_path_factory.mktemp("witness-federation")
    federation = build_demo(root / "federation")
    with federation.running():
        provider_store = federation.servers[MPWT].audit
        assert provider_store.latest_checkpoint() is None
        conf = federation.servers[MOH].current_configuration()
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            before = _calls(channel, BEFORE)
            # The writer signs a checkpoint at most every_ms after the oldest
            # uncovered record: wait for that event, not for a fixed time.
            deadline = time.monotonic() + 30
            while provider_store.latest_checkpoint() is None:
                assert time.monotonic() < deadline, "MPWT signed no checkpoint"
                time.sleep(0.02)
            after = _calls(channel, AFTER)
        provider_origin = provider_store.origin
    out = root / "bundles"
    out.mkdir()
    for member, name in ((MOH, "consumer"), (MPWT, "provider")):
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(out / f"{name}.zip")]) == 0
    return Witnessed(
        federation, out / "consumer.zip", out / "provider.zip", before, after, conf, provider_origin
    )


def _consumer_records(w: Witnessed) -> dict[str, AuditRecord]:
    records = (AuditRecord.from_bytes(r) for r in read_bundle(w.consumer).records)
    return {r.exchange_id: r for r in records if r.side is Side.CONSUMER}


def test_answers_after_the_first_checkpoint_carry_it_into_the_consumers_log(
    witnessed: Witnessed,
) -> None:
    records = _consumer_records(witnessed)
    for exchange_id in witnessed.after:
        note = records[exchange_id].witnessed_checkpoint
        assert note, f"exchange {exchange_id} holds no witnessed checkpoint"
        signed = check_witnessed(note, witnessed.conf, MemberId.parse("KH/GOV/MPWT"))
        assert signed.origin == witnessed.provider_origin
        # A checkpoint covers a prefix of the log, signed before this exchange ended.
        assert signed.size >= 1
    for exchange_id in witnessed.before:
        assert records[exchange_id].witnessed_checkpoint == b""
    # The provider's own records never hold a witness: it is the consumer's evidence.
    provider = [AuditRecord.from_bytes(r) for r in read_bundle(witnessed.provider).records]
    assert all(not r.witnessed_checkpoint for r in provider)


def test_both_logs_verify_and_reconcile_checks_every_witness(
    witnessed: Witnessed, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (witnessed.consumer, witnessed.provider):
        assert main(["audit", "verify", str(path)]) == 0
    capsys.readouterr()
    code = main(["audit", "reconcile", str(witnessed.consumer), str(witnessed.provider), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["matched"] == BEFORE + AFTER
    assert result["witnessed"] == AFTER


def test_a_provider_that_rewrites_its_witnessed_log_is_caught(
    witnessed: Witnessed, tmp_path: Path
) -> None:
    original = read_bundle(witnessed.provider)
    config = witnessed.federation.config(MPWT)
    # MPWT hides which security server called it first (a field no token
    # binds) and rebuilds its whole log with its real key: a self-consistent
    # log, signed checkpoints and all, that verifies on its own.
    records = [AuditRecord.from_bytes(r) for r in original.records]
    records[0] = dataclasses.replace(records[0], peer_certificate_sha256="0" * 64)
    path = tmp_path / "rewritten.db"
    with SqliteAuditStore(
        path, original.origin, checkpoints=server_checkpoint_policy(config)
    ) as store:
        for record in records:
            store.append(record)
    with SqliteAuditStore(path, f"{original.origin}.export") as store:
        forged = export_bundle(
            store,
            globalconf=original.globalconf,
            anchor_pem=original.anchor_pem,
            origin=original.origin,
        )
    write_bundle(forged, tmp_path / "forged.zip")
    assert main(["audit", "verify", str(tmp_path / "forged.zip")]) == 0
    result = reconcile(read_bundle(witnessed.consumer), forged)
    assert {f.kind for f in result.findings} == {Kind.WITNESS_CONTRADICTED}
    assert {f.exchange_id for f in result.findings} == set(witnessed.after)
    code = main(["audit", "reconcile", str(witnessed.consumer), str(tmp_path / "forged.zip")])
    assert code == 2  # differences found
    # Given the other way round, the bundles' own records decide who is who.
    code = main(["audit", "reconcile", str(tmp_path / "forged.zip"), str(witnessed.consumer)])
    assert code == 2


def test_an_invalid_checkpoint_is_logged_and_recorded_as_absent(witnessed: Witnessed) -> None:
    mpwt = MemberId.parse("KH/GOV/MPWT")
    note = read_bundle(witnessed.provider).checkpoints[-1]
    assert accept_witnessed([(TRAILER, note)], witnessed.conf, mpwt, "x1") == note
    signed = parse_checkpoint(note)
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = CheckpointSigner(signed.key_name, key, self_signed(key)).sign(signed.checkpoint)
    cases = {
        "foreign key": [(TRAILER, foreign.note)],
        "another member's log": [(TRAILER, note)],
        "two checkpoints": [(TRAILER, note), (TRAILER, note)],
        "garbage": [(TRAILER, b"not a checkpoint")],
    }
    for what, trailing in cases.items():
        provider = MemberId.parse("KH/GOV/MOH") if what == "another member's log" else mpwt
        with structlog.testing.capture_logs() as logs:
            accepted = accept_witnessed(trailing, witnessed.conf, provider, "x2")
        assert accepted == b"", what
        assert [e["event"] for e in logs] == ["audit.witness_invalid"], what
    assert accept_witnessed([], witnessed.conf, mpwt, "x3") == b""
    with pytest.raises(CheckpointError, match="not a signing certificate"):
        check_witnessed(foreign.note, witnessed.conf, mpwt)
