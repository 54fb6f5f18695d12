"""The management service on another server: MoH's, a consumer that publishes one report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway import pki
from spean.gateway.audit.backends import open_store
from spean.gateway.demo.ministries import MOH, MONTHLY_REPORT, MPWT, NHIS, VEHICLES
from spean.gateway.errors import NotFound
from spean.gateway.files import keyfiles
from spean.gateway.management import models
from spean.gateway.management.admin_log import AdminLog
from spean.gateway.management.audit_view import AuditView
from spean.gateway.management.service import ManagementService
from spean.gateway.management.traffic_index import TrafficIndex
from spean.gateway.web.roles import Principal, Role
from tests.support.management import Admin
from tests.support.world import World

ADMIN = Principal("api-key:0123456789ab:test", Role.SYSTEM_ADMINISTRATOR, "api-key")


@pytest.fixture
def moh(managed: tuple[World, Admin], tmp_path: Path) -> Iterator[ManagementService]:
    world, _ = managed
    server = world.server(MOH)
    log = AdminLog(
        open_store(str(tmp_path / "admin.sqlite"), f"{server.config.server_id}#management")
    )
    index = TrafficIndex(tmp_path / "index.sqlite", server.audit, server.config.server_id)
    yield ManagementService(server, log, AuditView(server.audit, index, server.config.server_id))
    index.close()
    log.close()


def test_without_a_management_section_there_is_no_listener(managed: tuple[World, Admin]) -> None:
    world, _ = managed
    assert world.server(MOH).management_port is None
    assert world.server(MPWT).management_port is not None


def test_moh_lists_its_client_and_what_it_publishes(moh: ManagementService) -> None:
    (client,) = moh.clients()
    assert (client.subsystem, client.certificate_sha256) == (NHIS, None)
    (service,) = moh.services()
    assert service.subsystem == NHIS
    assert [m.method for m in service.methods] == [MONTHLY_REPORT]


def test_another_members_service_cannot_be_granted_here(moh: ManagementService) -> None:
    change = models.AccessChangeRequest(client=NHIS, service=VEHICLES, methods=["*"])
    with pytest.raises(NotFound, match="not a service published by this server"):
        moh.grant(ADMIN, change, moh.access().etag)
    assert moh.admin_actions(10) == []


def test_its_consumer_calls_are_its_traffic(moh: ManagementService) -> None:
    traffic = moh.audit.traffic("1h", "consumer")
    assert all(t.client == NHIS for t in traffic.totals)
    assert moh.audit.traffic("1h", "provider").totals == []


def test_a_change_the_server_cannot_reload_is_undone_in_the_file(
    managed: tuple[World, Admin],
) -> None:
    world, admin = managed
    mpwt = world.server(MPWT).config
    certificate = mpwt.resolve(mpwt.keys.tls_certificate)
    good = certificate.read_bytes()
    before = admin.config.read_bytes()
    certificate.write_bytes(b"not a certificate")  # the next reload fails on it
    try:
        with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
            etag = client.get("/access").headers["etag"]
            answer = client.post(
                "/access/grants",
                headers={"If-Match": etag},
                json={"client": "KH/GOV/MOI/idreg", "service": VEHICLES, "methods": ["*"]},
            )
            assert client.get("/access").headers["etag"] == etag
    finally:
        certificate.write_bytes(good)
    assert answer.status_code == 409
    assert "tls" in answer.json()["detail"].lower()
    assert admin.config.read_bytes() == before
    with admin.client(admin.keys[Role.AUDITOR]) as client:
        failed, applied = client.get("/admin-log", params={"limit": 2}).json()
    assert (failed["status"], applied["status"]) == ("FAILED", "APPLIED")
    assert failed["action_id"] == applied["action_id"]
    assert "not applied" in failed["description"]


def test_a_reload_is_the_system_administrators_and_is_recorded(
    managed: tuple[World, Admin],
) -> None:
    world, admin = managed
    server = world.server(MPWT)
    with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        assert client.post("/reload").status_code == 403  # a system administrator's job
    with admin.client(cert=admin.admin_cert) as client:
        answer = client.post("/reload")
        log = client.get("/admin-log", params={"limit": 1}).json()
    assert answer.status_code == 200, answer.text
    tls = next(c for c in answer.json() if c["name"] == "tls")
    assert tls["sha256"] == pki.thumbprint(
        keyfiles.load_certificate(server.config.resolve(server.config.keys.tls_certificate))
    )
    assert (log[0]["action"], log[0]["status"]) == ("server.reload", "APPLIED")
    assert log[0]["principal"] == "certificate:admin.mpwt.gov.kh"
