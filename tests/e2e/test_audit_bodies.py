"""Encrypted bodies: MPWT keeps GetVehicle's bodies sealed to the federation's auditors.

The demo authority registers an auditor key (`spean authority set-auditor-key
--generate`); MPWT's service is configured with `audit_bodies: encrypted`.
After real exchanges, the exported bundle holds sealed bodies that the
auditor decrypts and checks against the signed records' digests
(`spean audit verify --auditor-key`), and that nobody else can open.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.bodies import BodiesError, open_for
from spean.gateway.audit.bundle import Bundle, read_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import Check, verify_bundle
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, VEHICLES, build_demo, call
from spean.gateway.files.keyfiles import load_auditor_key

CALLS = 3


@dataclasses.dataclass
class Sealed:
    federation: Federation
    provider: Path
    consumer: Path
    auditor_key: Path
    answers: list[bytes]


def encrypt_bodies(config: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    for service in document["provider"]["services"]:
        service["audit_bodies"] = "encrypted"
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    root = tmp_path_factory.mktemp("bodies-federation")
    federation = build_demo(root / "federation")
    encrypt_bodies(federation.configs[MPWT])
    answers: list[bytes] = []
    with federation.running(), grpc.insecure_channel(federation.consumer_addresses[MOH]) as ch:
        for _ in range(CALLS):
            request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
            messages, _, code, details = call(
                ch, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle
            )
            assert code is grpc.StatusCode.OK, details
            answers.extend(m.SerializeToString() for m in messages)
    out = root / "bundles"
    out.mkdir()
    for member, name in ((MOH, "consumer"), (MPWT, "provider")):
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(out / f"{name}.zip")]) == 0
    key = root / "federation" / "auditor" / "auditor.key"
    return Sealed(federation, out / "provider.zip", out / "consumer.zip", key, answers)


def test_the_auditor_decrypts_every_body_and_it_matches_the_signed_record(
    sealed: Sealed, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["audit", "verify", str(sealed.provider), "--json"]
    assert main([*args, "--auditor-key", str(sealed.auditor_key)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["bodies"], report["bodies_verified"]) == (CALLS, CALLS)
    bundle = read_bundle(sealed.provider)
    key = load_auditor_key(sealed.auditor_key)
    for index, blob in bundle.bodies:
        record = AuditRecord.from_bytes(bundle.records[index - bundle.start])
        bodies = open_for(record, blob, key)
        request = vehicles_pb2.GetVehicleRequest.FromString(bodies.request)
        assert request.plate == demo_data.SAMPLE_PLATE
        assert list(bodies.responses) == [sealed.answers[0]]
    # Without the key the bodies are counted, not checked; the log still verifies.
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["bodies"], report["bodies_verified"]) == (CALLS, 0)


def test_bodies_are_kept_only_where_configured_and_never_in_clear(sealed: Sealed) -> None:
    assert read_bundle(sealed.consumer).bodies == ()  # MoH's consumer side keeps digests only
    database = sealed.federation.root / "mpwt" / "state" / "audit.db"
    assert demo_data.SAMPLE_PLATE.encode() not in database.read_bytes()


def test_no_other_key_opens_them(sealed: Sealed) -> None:
    bundle = read_bundle(sealed.provider)
    index, blob = bundle.bodies[0]
    record = AuditRecord.from_bytes(bundle.records[index - bundle.start])
    with pytest.raises(BodiesError):
        open_for(record, blob, X25519PrivateKey.generate())


def swap_bodies(bundle: Bundle) -> Bundle:
    (i, a), (j, b), *rest = bundle.bodies
    return dataclasses.replace(bundle, bodies=((i, b), (j, a), *rest))


def test_moved_or_foreign_bodies_are_caught_at_their_record(sealed: Sealed) -> None:
    bundle = read_bundle(sealed.provider)
    key = load_auditor_key(sealed.auditor_key)
    report = verify_bundle(swap_bodies(bundle), auditor_key=key)
    first = report.first
    assert first is not None
    assert (first.index, first.check) == (bundle.bodies[0][0], Check.BODIES)
    assert "do not decrypt" in first.reason
    outside = dataclasses.replace(bundle, bodies=((bundle.stop + 5, b"x"),))
    report = verify_bundle(outside, auditor_key=key)
    assert [p.check for p in report.problems] == [Check.BODIES]
    report = verify_bundle(bundle, auditor_key=X25519PrivateKey.generate())
    assert {p.check for p in report.problems} == {Check.BODIES}
    assert report.bodies_verified == 0
