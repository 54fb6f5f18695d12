"""The audit log through the management API: traffic, browsing, proofs that verify.

MoH's hospital calls MPWT's vehicle registry; MPWT's auditor sees the calls
counted per service, client and status, finds each record by exchange id or
filter, and downloads an inclusion proof that checks against MPWT's signed
checkpoint with nothing but the proof itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import time

import grpc

from spean.gateway.audit.checkpoint import parse_checkpoint, verify_checkpoint
from spean.gateway.audit.merkle import leaf_hash, verify_inclusion
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo.ministries import GET_VEHICLE, MPWT, NHIS, VEHICLES
from spean.gateway.files import keyfiles
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World


def _calls(world: World, count: int) -> list[str]:
    """`count` successful GetVehicle calls of MoH's hospital; their exchange ids."""
    ids = []
    with world.consumer_channel() as channel:
        for _ in range(count):
            answer = get_vehicle(channel)
            assert answer.code == grpc.StatusCode.OK, answer.details
            ids.append(answer.exchange_id)
    return ids


def test_calls_appear_in_the_traffic_of_their_service(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        before = client.get("/traffic", params={"window": "1h", "side": "provider"}).json()
        _calls(world, 3)
        after = client.get("/traffic", params={"window": "1h", "side": "provider"}).json()
    assert after["bucket_seconds"] == 300
    assert len(after["series"][0]["points"]) == 12

    def calls(answer: dict[str, object]) -> int:
        totals = answer["totals"]
        assert isinstance(totals, list)
        return sum(t["calls"] for t in totals if t["service"] == VEHICLES and t["client"] == NHIS)

    assert calls(after) == calls(before) + 3
    vehicles = next(s for s in after["series"] if s["service"] == VEHICLES)
    assert sum(p["calls"] for p in vehicles["points"]) == calls(after)


def test_records_found_by_exchange_id_and_filters(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    (exchange_id,) = _calls(world, 1)
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        found = client.get("/audit/records", params={"exchange_id": exchange_id}).json()
        page = client.get(
            "/audit/records",
            params={
                "client": NHIS,
                "service": VEHICLES,
                "side": "provider",
                "status": "OK",
                "limit": 1,
                "since": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
            },
        ).json()
        older = client.get(
            "/audit/records",
            params={"client": NHIS, "limit": 1, "before_ns": page["next_before_ns"]},
        ).json()
        injected = client.get("/audit/records", params={"client": "x' OR '1'='1"}).json()
        naive = client.get("/audit/records", params={"since": "2026-01-01T00:00:00"})
    (record,) = found["records"]
    assert (record["method"], record["status"], record["side"]) == (GET_VEHICLE, "OK", "PROVIDER")
    assert page["records"][0]["exchange_id"] == exchange_id
    assert older["records"][0]["received_at_ns"] < page["records"][0]["received_at_ns"]
    assert injected["records"] == []
    assert naive.status_code == 400
    assert "time zone" in naive.json()["detail"]


def test_an_inclusion_proof_verifies_against_the_signed_checkpoint(
    managed: tuple[World, Admin],
) -> None:
    world, admin = managed
    (exchange_id,) = _calls(world, 1)
    with admin.client(cert=admin.auditor_cert) as client:
        (record,) = client.get("/audit/records", params={"exchange_id": exchange_id}).json()[
            "records"
        ]
        params = {"origin": record["origin"], "index": record["index"]}
        deadline = time.monotonic() + 10
        answer = client.get("/audit/proof", params=params)
        while answer.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)  # the next checkpoint is signed within a second
            answer = client.get("/audit/proof", params=params)
        foreign = client.get("/audit/proof", params={"origin": "KH/GOV/MOH/ss1#w0", "index": 0})
    assert answer.status_code == 200, answer.text
    proof = answer.json()
    data = base64.b64decode(proof["record"])
    assert AuditRecord.from_bytes(data).exchange_id == exchange_id
    checkpoint = parse_checkpoint(proof["checkpoint"].encode())
    assert checkpoint.size == proof["tree_size"]
    # The checkpoint is MPWT's: signed with the signing certificate its server uses.
    config = world.server(MPWT).config
    signing = keyfiles.load_certificate(config.resolve(config.keys.signing_certificate))
    assert verify_checkpoint(checkpoint, [signing]) == signing
    verify_inclusion(
        leaf_hash(data),
        proof["index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        checkpoint.root,
    )
    assert foreign.status_code == 404
    assert "not a log of this server" in foreign.json()["detail"]


def test_the_audit_log_is_closed_to_a_service_administrator(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        assert client.get("/traffic").status_code == 200
        refused = client.get("/audit/records")
    assert refused.status_code == 403
    assert grpc.StatusCode.PERMISSION_DENIED.name.lower() in refused.json()["type"]
