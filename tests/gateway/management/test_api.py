"""The management API of a running security server, over real TLS.

MPWT's IT team reads its server's state and changes who may call what,
with API keys and client certificates; MoH's hospital application feels the
change on its next call. Every refusal is a problem document that says what
is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
import yaml

from spean.gateway.demo.ministries import GET_VEHICLE, LIST_VEHICLES, MPWT, NHIS, VEHICLES
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World

PROBLEM = "application/problem+json"


def grant_body(*methods: str) -> dict[str, object]:
    return {"client": NHIS, "service": VEHICLES, "methods": list(methods)}


def test_every_route_refuses_a_caller_without_credentials(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client() as client:
        schema = client.get("/openapi.json").json()
        for path, operations in schema["paths"].items():
            for verb in operations:
                answer = client.request(verb, path.removeprefix("/api/v1"), json={})
                assert answer.status_code == 401, (verb, path)
                assert answer.headers["content-type"] == PROBLEM
                assert "no credentials" in answer.json()["detail"]


def test_openapi_document_is_3_1_and_lists_the_routes(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client() as client:
        schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert {"bearer"} == set(schema["components"]["securitySchemes"])
    assert {"/api/v1/access", "/api/v1/access/grants", "/api/v1/health"} <= set(schema["paths"])


def test_status_reads_with_an_auditor_key(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        answer = client.get("/health")
        health = answer.json()
        conf = client.get("/global-configuration").json()
        certificates = client.get("/certificates").json()
        services = client.get("/services").json()
        clients = client.get("/clients").json()
    assert health["status"] == "serving"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert health["provider_port"] == world.server(MPWT).provider_port
    assert conf["valid"]
    assert conf["version"] == world.server(MPWT).globalconf.current().version
    assert {c["name"] for c in certificates} == {"tls", "signing"}
    assert all(c["days_left"] > 0 for c in certificates)
    # MPWT's server only provides: it registers no client subsystem.
    assert clients == []
    vehicles = next(s for s in services if s["subsystem"] == VEHICLES)
    assert GET_VEHICLE in {m["method"] for m in vehicles["methods"]}


def test_client_certificate_logs_in_and_a_stranger_is_refused(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(cert=admin.admin_cert) as client:
        assert client.get("/admin-log").status_code == 200
    with admin.client(cert=admin.auditor_cert) as client:
        refused = client.post("/access/grants", json=grant_body(GET_VEHICLE))
    assert refused.status_code == 403
    assert "auditor" in refused.json()["detail"]
    with admin.client(cert=admin.stranger_cert) as client, pytest.raises(httpx.TransportError):
        client.get("/health")


def test_revoked_wrong_and_misplaced_credentials_are_refused(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    cases = {
        admin.revoked_key: "revoked",
        "spk_000000000000_" + "A" * 43: "not known",
        "spk_nonsense": "malformed",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln": "not configured",
    }
    for key, reason in cases.items():
        with admin.client(key) as client:
            answer = client.get("/health")
        assert answer.status_code == 401
        assert reason in answer.json()["detail"]
    with admin.client(admin.keys[Role.REGISTRATION_OFFICER]) as client:
        answer = client.get("/access")
    assert answer.status_code == 403


def test_revoke_then_grant_takes_effect_without_restart(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.OK
    with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        etag = client.get("/access").headers["etag"]
        revoked = client.post(
            "/access/revocations", json=grant_body(GET_VEHICLE), headers={"If-Match": etag}
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["changed"]
        with world.consumer_channel() as channel:
            answer = get_vehicle(channel)
        assert answer.code == grpc.StatusCode.PERMISSION_DENIED
        # The file says what the server does, and keeps the operator's comment.
        text = admin.config.read_text()
        assert text.startswith("# MPWT's security server, kept by the IT team")
        rules = yaml.safe_load(text)["provider"]["access"]
        rule = next(r for r in rules if r["client"] == NHIS and r["service"] == VEHICLES)
        assert rule["methods"] == [LIST_VEHICLES]
        assert rule["granted_by"].endswith("test service-administrator")
        granted = client.post(
            "/access/grants",
            json=grant_body(GET_VEHICLE),
            headers={"If-Match": revoked.headers["etag"]},
        )
        assert granted.status_code == 200, granted.text
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.OK
    with admin.client(cert=admin.admin_cert) as client:
        log = client.get("/admin-log").json()
    assert [e["action"] for e in log[:2]] == ["access.grant", "access.revoke"]
    assert log[0]["status"] == "APPLIED"
    assert log[0]["role"] == "service-administrator"


def test_writes_need_a_current_etag(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        missing = client.post("/access/grants", json=grant_body(GET_VEHICLE))
        stale = client.post(
            "/access/grants",
            json=grant_body(GET_VEHICLE),
            headers={"If-Match": '"0123456789abcdef0123456789abcdef"'},
        )
    assert missing.status_code == 428
    assert "If-Match" in missing.json()["detail"]
    assert stale.status_code == 412
    assert "changed since you read them" in stale.json()["detail"]


def test_hostile_bodies_are_refused_clearly(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        etag = {"If-Match": client.get("/access").headers["etag"]}
        injected = client.post(
            "/access/grants",
            headers=etag,
            json={"client": "KH/GOV/MOH/nhis' OR 1=1 --", "service": VEHICLES, "methods": ["*"]},
        )
        unknown = client.post(
            "/access/grants",
            headers=etag,
            json=grant_body("/vehicles.v1.VehicleRegistry/DropTable"),
        )
        extra = client.post(
            "/access/grants", headers=etag, json={**grant_body(GET_VEHICLE), "admin": True}
        )
        huge = client.post("/access/grants", headers=etag, json=grant_body(*[GET_VEHICLE] * 2000))
        garbage = client.post(
            "/access/grants",
            headers={**etag, "content-type": "application/json"},
            content=b"{not json",
        )
    assert injected.status_code == 422
    assert "client" in injected.json()["detail"]
    assert unknown.status_code == 404
    assert "does not publish" in unknown.json()["detail"]
    assert extra.status_code == 422
    assert "admin" in extra.json()["detail"]
    assert huge.status_code == 413
    assert "larger than 8192 bytes" in huge.json()["detail"]
    assert garbage.status_code == 422
    for answer in (injected, unknown, extra, huge, garbage):
        assert answer.headers["content-type"] == PROBLEM
        assert "Traceback" not in answer.text


def test_a_chunked_body_is_cut_off_at_the_limit(managed: tuple[World, Admin]) -> None:
    _, admin = managed

    def chunks() -> Iterator[bytes]:
        yield b'{"client": "KH/GOV/MOH/nhis", "service": "KH/GOV/MPWT/vehicles", "methods": ["'
        for _ in range(100):
            yield b"x" * 1000  # no Content-Length: the server counts as it reads

    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        answer = client.post(
            "/access/grants",
            content=chunks(),
            headers={"If-Match": '"x"', "content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert "larger than 8192 bytes" in answer.json()["detail"]
