"""The authority's management API over real TLS: registration, registry, revocation, publication.

The Ministry of Education runs the real `spean join`; the authority's
registration officer takes the join request through the API, reads what it
asks for, approves it, and the new member's server is in the published
configuration. Roles, credentials and ETags are enforced, and every change
is in the signed admin log, before the change.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.audit.backends import open_store
from spean.gateway.audit.record import AuditRecord
from spean.gateway.authority.admin import admin_origin
from spean.gateway.authority.listener import load_settings
from spean.gateway.identifiers import SubsystemId, parse_server
from spean.gateway.server.reflection import file_descriptor_set
from spean.gateway.web.roles import Role
from tests.support.authority_desk import Desk, authority_desk, join

PROBLEM = "application/problem+json"
MOE, MOE_SS1, MOE_PORTAL = "KH/GOV/MOE", "KH/GOV/MOE/ss1", "KH/GOV/MOE/portal"
MOH, MOH_SS1, MOH_PORTAL = "KH/GOV/MOH", "KH/GOV/MOH/ss1", "KH/GOV/MOH/portal"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with authority_desk(tmp_path_factory.mktemp("authority-desk")) as running:
        yield running


def _etag(client: httpx.Client) -> str:
    answer = client.get("/registration-requests")
    assert answer.status_code == 200, answer.text
    return answer.headers["etag"]


def _spki_sha256(pem: bytes, csr: bool) -> str:
    loaded = (
        x509.load_pem_x509_csr(pem) if csr else x509.load_pem_x509_certificate(pem)
    ).public_key()
    spki = loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _admin_log(desk: Desk) -> list[AuditRecord]:
    settings = load_settings(desk.settings)
    store = open_store(settings.audit_store, admin_origin("KH"))
    try:
        rows = store.read(0, store.size())
        return [AuditRecord.from_bytes(row.record_bytes) for row in rows]
    finally:
        store.close()


def test_every_route_refuses_a_caller_without_credentials(desk: Desk) -> None:
    with desk.client() as client:
        schema = client.get("/openapi.json").json()
        assert schema["openapi"].startswith("3.1")
        for path, operations in schema["paths"].items():
            for verb in operations:
                answer = client.request(verb, path.removeprefix("/api/v1"), json={})
                assert answer.status_code == 401, (verb, path)
                assert answer.headers["content-type"] == PROBLEM
                assert "no credentials" in answer.json()["detail"]


def test_a_join_request_from_spean_join_is_approved_and_its_server_published(
    desk: Desk, tmp_path: Path
) -> None:
    request_file = join(desk, tmp_path / "moe", MOE, "Ministry of Education", MOE_PORTAL)
    csr = (tmp_path / "moe" / "keys" / "tls.csr").read_bytes()
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        submitted = officer.post(
            "/registration-requests",
            json={"join_request": request_file.read_text()},
            headers={"If-Match": _etag(officer)},
        )
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["pending"] is True
        waiting = officer.get("/registration-requests")
        listed = next(r for r in waiting.json() if r["server"] == MOE_SS1)
        # The officer sees what is asked: who, where, and the keys to compare by telephone.
        assert listed["member_name"] == "Ministry of Education"
        assert listed["clients"] == [MOE_PORTAL]
        assert listed["server_key_sha256"] == _spki_sha256(csr, csr=True)
        assert MOE_SS1 not in {s["id"] for s in officer.get("/servers").json()}
        before = officer.get("/global-configuration").json()["published"]["version"]

        approved = officer.post(
            "/registration-requests/approvals",
            json={"server": MOE_SS1},
            headers={"If-Match": waiting.headers["etag"]},
        )
    assert approved.status_code == 200, approved.text
    admission = approved.json()
    assert admission["version"] == before + 1
    certified = _spki_sha256(admission["server_certificate"].encode(), csr=False)
    assert certified == _spki_sha256(csr, csr=True)
    published = desk.published()
    assert published.version == admission["version"]
    server = published.server(parse_server(MOE_SS1))
    assert server is not None
    assert published.subsystem(SubsystemId.parse(MOE_PORTAL)) is not None
    with desk.client(desk.keys[Role.AUDITOR]) as auditor:
        assert auditor.get("/registration-requests").json() == []
        servers = {s["id"]: s for s in auditor.get("/servers").json()}
    certificate = servers[MOE_SS1]["certificates"][0]
    assert certificate["days_left"] > 0
    assert certificate["sha256"] == pki.thumbprint(
        pki.parse_certificate_pem(admission["server_certificate"].encode())
    )
    # The admin log has the decision, applied, by the officer's key.
    record = next(r for r in _admin_log(desk) if r.method == "registration.approve")
    assert (record.client, record.status, record.purpose) == (
        MOE_SS1,
        "APPLIED",
        "registration-officer",
    )


def test_a_rejected_request_admits_nothing_and_keeps_the_reason(desk: Desk, tmp_path: Path) -> None:
    request_file = join(desk, tmp_path / "moh", MOH, "Ministry of Health", MOH_PORTAL)
    with desk.client(cert=desk.officer_cert) as officer:
        submitted = officer.post(
            "/registration-requests",
            json={"join_request": request_file.read_text()},
            headers={"If-Match": _etag(officer)},
        )
        assert submitted.status_code == 200, submitted.text
        rejected = officer.post(
            "/registration-requests/rejections",
            json={"server": MOH_SS1, "reason": "the address is not the ministry's"},
            headers={"If-Match": _etag(officer)},
        )
        assert rejected.status_code == 200, rejected.text
        assert MOH not in {m["id"] for m in officer.get("/members").json()}
        again = officer.post(
            "/registration-requests/approvals",
            json={"server": MOH_SS1},
            headers={"If-Match": _etag(officer)},
        )
    assert again.status_code == 404
    assert "no join request for KH/GOV/MOH/ss1 is pending" in again.json()["detail"]
    record = next(r for r in _admin_log(desk) if r.method == "registration.reject")
    assert "the address is not the ministry's" in record.message
    assert record.user == "certificate:officer.authority.gov.kh"


def test_wrong_roles_are_refused_with_403(desk: Desk) -> None:
    with desk.client(desk.keys[Role.AUDITOR]) as auditor:
        etag = _etag(auditor)
        publish = auditor.post("/publications", json={}, headers={"If-Match": etag})
    assert publish.status_code == 403
    assert "role auditor" in publish.json()["detail"]
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        revoke = officer.post(
            "/revocations", json={"serial": "01", "reason": "x"}, headers={"If-Match": etag}
        )
        log_read = officer.get("/admin-log")
    assert revoke.status_code == 403
    assert "system-administrator" in revoke.json()["detail"]
    assert log_read.status_code == 403
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        approve = sysadmin.post(
            "/registration-requests/approvals", json={"server": MOE_SS1}, headers={"If-Match": etag}
        )
    assert approve.status_code == 403
    assert "registration-officer" in approve.json()["detail"]


def test_bad_credentials_are_refused_with_401(desk: Desk) -> None:
    for key, reason in {
        "spk_000000000000_" + "A" * 43: "not known",
        "spk_nonsense": "malformed",
    }.items():
        with desk.client(key) as client:
            answer = client.get("/members")
        assert answer.status_code == 401
        assert reason in answer.json()["detail"]
    with desk.client(cert=desk.access.auditor_cert) as unmapped:
        answer = unmapped.get("/members")
    assert answer.status_code == 401
    assert "has no role here" in answer.json()["detail"]


def test_a_stale_etag_is_412_and_a_missing_one_428(desk: Desk) -> None:
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        stale = _etag(sysadmin)
        policy = sysadmin.get("/registration-policy").json()
        changed = sysadmin.put(
            "/registration-policy",
            json={"approval_required": not policy["approval_required"]},
            headers={"If-Match": stale},
        )
        assert changed.status_code == 200, changed.text
        assert changed.headers["etag"] != stale
        lost = sysadmin.post("/publications", json={}, headers={"If-Match": stale})
        missing = sysadmin.post("/publications", json={})
        restored = sysadmin.put(
            "/registration-policy", json=policy, headers={"If-Match": changed.headers["etag"]}
        )
    assert lost.status_code == 412
    assert "the registry changed since you read it" in lost.json()["detail"]
    assert missing.status_code == 428
    assert restored.status_code == 200
    assert restored.json() == policy


def test_publish_revoke_and_register_a_service_description(desk: Desk) -> None:
    descriptors = base64.b64encode(file_descriptor_set(vehicles_pb2.DESCRIPTOR)).decode()
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        member_key = pki.generate_key("ec-p256")
        admitted = officer.post(
            "/members",
            json={
                "id": "KH/GOV/MPWT",
                "name": "Ministry of Public Works and Transport",
                "csr": pki.csr_pem(pki.make_csr(member_key, "KH/GOV/MPWT", "member")).decode(),
            },
            headers={"If-Match": _etag(officer)},
        )
        assert admitted.status_code == 200, admitted.text
        described = officer.post(
            "/service-descriptions",
            json={"subsystem": "KH/GOV/MPWT/vehicles", "file_descriptor_set": descriptors},
            headers={"If-Match": admitted.headers["etag"]},
        )
        assert described.status_code == 200, described.text
        assert described.json()["created"] is True
        methods = {m["path"] for m in described.json()["subsystem"]["methods"]}
        assert "/vehicles.v1.VehicleRegistry/GetVehicle" in methods
        again = officer.post(
            "/service-descriptions",
            json={"subsystem": "KH/GOV/MPWT/vehicles", "file_descriptor_set": descriptors},
            headers={"If-Match": described.headers["etag"]},
        )
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False
        bad = officer.post(
            "/service-descriptions",
            json={"subsystem": "KH/GOV/MPWT/other", "file_descriptor_set": "bm90IGEgc2V0"},
            headers={"If-Match": again.headers["etag"]},
        )
    assert bad.status_code in (400, 409), bad.text
    serial = admitted.json()["serial"]
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        revoked = sysadmin.post(
            "/revocations",
            json={"serial": serial, "reason": "the key left the ministry on a laptop"},
            headers={"If-Match": _etag(sysadmin)},
        )
        assert revoked.status_code == 200, revoked.text
        published = sysadmin.post(
            "/publications", json={"validity_hours": 2}, headers={"If-Match": _etag(sysadmin)}
        )
        assert published.status_code == 200, published.text
        listed = sysadmin.get("/revocations").json()
        log_entries = sysadmin.get("/admin-log", params={"limit": 5}).json()
    assert published.json()["version"] == desk.published().version
    assert desk.published().is_revoked(int(serial, 16))
    entry = next(r for r in listed if r["serial"] == serial)
    assert entry["reason"] == "the key left the ministry on a laptop"
    assert log_entries[0]["action"] == "configuration.publish"
    assert log_entries[0]["status"] == "APPLIED"


def test_a_failed_change_is_recorded_before_and_after(desk: Desk) -> None:
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        unknown = sysadmin.post(
            "/revocations",
            json={"serial": "ABCDEF", "reason": "typo"},
            headers={"If-Match": _etag(sysadmin)},
        )
    assert unknown.status_code == 404
    assert "issued no certificate" in unknown.json()["detail"]
    member = "KH/GOV/MOT"

    def admission(name: str) -> dict[str, str]:
        csr = pki.csr_pem(pki.make_csr(pki.generate_key("ec-p256"), member, "member"))
        return {"id": member, "name": name, "csr": csr.decode()}

    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        first = officer.post(
            "/members", json=admission("Ministry of Tourism"), headers={"If-Match": _etag(officer)}
        )
        assert first.status_code == 200, first.text
        duplicate = officer.post(
            "/members", json=admission("Another name"), headers={"If-Match": _etag(officer)}
        )
    assert duplicate.status_code == 409, duplicate.text
    records = [r for r in _admin_log(desk) if r.method == "member.admit" and r.client == member]
    assert [r.status for r in records] == ["APPLIED", "APPLIED", "FAILED"]
    assert records[1].exchange_id == records[2].exchange_id
    assert "already admitted" in records[2].message


def test_an_oversized_body_is_refused_before_it_is_read(desk: Desk) -> None:
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        answer = officer.post(
            "/registration-requests",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"If-Match": _etag(officer), "Content-Type": "application/json"},
        )
    assert answer.status_code == 413


def test_hostile_uploads_and_refusals_are_refused_clearly_and_logged(desk: Desk) -> None:
    laughs = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n'
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer, capture_logs() as logs:
        bomb = officer.post(
            "/registration-requests",
            json={"join_request": laughs},
            headers={"If-Match": _etag(officer)},
        )
        garbage = officer.post(
            "/registration-requests",
            json={"join_request": "format: 1\nmember: [unclosed"},
            headers={"If-Match": _etag(officer)},
        )
        forbidden = officer.post("/publications", json={}, headers={"If-Match": _etag(officer)})
    assert bomb.status_code == 400
    assert "anchors or aliases" in bomb.json()["detail"]
    assert garbage.status_code == 400
    assert "not valid YAML" in garbage.json()["detail"]
    assert forbidden.status_code == 403
    refused = [entry for entry in logs if entry["event"] == "management.refused"]
    assert [(e["status"], e["path"]) for e in refused] == [(403, "/api/v1/publications")]


def test_two_changes_from_one_read_one_wins_and_the_other_is_412(desk: Desk) -> None:
    def admission(member: str) -> dict[str, str]:
        csr = pki.csr_pem(pki.make_csr(pki.generate_key("ec-p256"), member, "member"))
        return {"id": member, "name": f"Ministry {member[-3:]}", "csr": csr.decode()}

    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        etag = _etag(officer)
        bodies = [admission("KH/GOV/MRD"), admission("KH/GOV/MLV")]
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(
                pool.map(
                    lambda body: officer.post("/members", json=body, headers={"If-Match": etag}),
                    bodies,
                )
            )
        admitted = {m["id"] for m in officer.get("/members").json()}
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = bodies[[a.status_code for a in answers].index(200)]["id"]
    loser = ({"KH/GOV/MRD", "KH/GOV/MLV"} - {winner}).pop()
    assert winner in admitted
    assert loser not in admitted


def test_a_change_made_with_the_command_line_makes_the_read_stale(desk: Desk) -> None:
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        etag = _etag(sysadmin)
        desk.authority.set_auditor_key(
            bytes(range(32))
        )  # what spean authority set-auditor-key does
        stale = sysadmin.post("/publications", json={}, headers={"If-Match": etag})
    assert stale.status_code == 412


def test_a_servers_tls_key_is_rotated_through_the_api(desk: Desk) -> None:
    member, server = "KH/GOV/MLVT", "KH/GOV/MLVT/ss1"

    def csr(kind: str, identifier: str) -> str:
        key = pki.generate_key("ec-p256")
        return pki.csr_pem(pki.make_csr(key, identifier, kind)).decode()  # type: ignore[arg-type]

    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        joined = officer.post(
            "/members",
            json={"id": member, "name": "Ministry of Labour", "csr": csr("member", member)},
            headers={"If-Match": _etag(officer)},
        )
        assert joined.status_code == 200, joined.text
        first = officer.post(
            "/servers/certificates",
            json={"server": server, "address": "127.0.0.1:9443", "csr": csr("server", server)},
            headers={"If-Match": joined.headers["etag"]},
        )
        assert first.status_code == 201, first.text
        second = officer.post(
            "/servers/certificates",
            json={
                "server": server,
                "address": "127.0.0.1:9443",
                "csr": csr("server", server),
                "mode": "rotate",
            },
            headers={"If-Match": first.headers["etag"]},
        )
        assert second.status_code == 201, second.text
        listed = {s["id"]: s for s in officer.get("/servers").json()}[server]
        assert {c["serial"] for c in listed["certificates"]} >= {
            first.json()["serial"],
            second.json()["serial"],
        }
        refused = officer.post(
            "/servers/certificate-retirements",
            json={"server": server, "serial": first.json()["serial"]},
            headers={"If-Match": _etag(officer)},
        )
        assert refused.status_code == 403
    with desk.client(desk.keys[Role.SYSTEM_ADMINISTRATOR]) as sysadmin:
        retired = sysadmin.post(
            "/servers/certificate-retirements",
            json={"server": server, "serial": first.json()["serial"]},
            headers={"If-Match": _etag(sysadmin)},
        )
        assert retired.status_code == 200, retired.text
        published = sysadmin.post(
            "/publications", json={"validity_hours": 2}, headers={"If-Match": _etag(sysadmin)}
        )
        assert published.status_code == 200, published.text
    conf = desk.published()
    info = conf.server(parse_server(server))
    assert info is not None
    listed_serials = {pki.serial_hex(c.serial_number) for c in info.tls_certificates}
    assert listed_serials == {second.json()["serial"]}
