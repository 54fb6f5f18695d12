"""The authority's console over real HTTPS, as a browser without scripts would use it.

The registration officer logs in, reads a pending request, rejects one and
approves another with the page's CSRF token; the system administrator
uploads nothing but publishes and revokes; forms without the token, roles
that may only look and stale pages are refused. English and Khmer.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.identifiers import parse_server
from spean.gateway.server.reflection import file_descriptor_set
from spean.gateway.web.roles import Role
from tests.support.authority_desk import Desk, authority_desk, join

MOE, MOE_SS1, MOE_PORTAL = "KH/GOV/MOE", "KH/GOV/MOE/ss1", "KH/GOV/MOE/portal"
MOJ, MOJ_SS1, MOJ_PORTAL = "KH/GOV/MOJ", "KH/GOV/MOJ/ss1", "KH/GOV/MOJ/portal"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with authority_desk(tmp_path_factory.mktemp("authority-console")) as running:
        yield running


def _console(desk: Desk, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    client = desk.client(cert=cert)
    client.base_url = httpx.URL(desk.base_url)
    return client


@contextlib.contextmanager
def _login(desk: Desk, key: str) -> Iterator[httpx.Client]:
    with _console(desk) as client:
        answer = client.post("/console/login", data={"api_key": key})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/console/requests"
        yield client


def _form(page: str, action: str, server: str | None = None) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (for `server`'s request)."""
    for match in re.finditer(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
        if match.group(1) != action:
            continue
        found = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', match.group(2))
        fields = {name: html.unescape(value) for name, value in found}
        if server is None or fields.get("server") == server:
            return fields
    raise AssertionError(f"no form posting to {action} for {server} in the page")


def _submit(desk: Desk, folder: Path, member: str, name: str, client: str) -> None:
    request = join(desk, folder, member, name, client)
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        etag = officer.get("/registration-requests").headers["etag"]
        answer = officer.post(
            "/registration-requests",
            json={"join_request": request.read_text()},
            headers={"If-Match": etag},
        )
        assert answer.status_code == 200, answer.text


def test_pages_need_a_login(desk: Desk) -> None:
    with _console(desk) as client:
        for path in ("/console/requests", "/console/registry", "/console/publication"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/login"
        login = client.get("/console/login")
        refused = client.post("/console/login", data={"api_key": "spk_nonsense"})
    assert "spean authority api-key create issues one" in login.text
    assert refused.status_code == 401
    assert "malformed" in refused.text


def test_the_officer_rejects_one_request_and_approves_another(desk: Desk, tmp_path: Path) -> None:
    _submit(desk, tmp_path / "moe", MOE, "Ministry of Education", MOE_PORTAL)
    _submit(desk, tmp_path / "moj", MOJ, "Ministry of Justice", MOJ_PORTAL)
    with _login(desk, desk.keys[Role.REGISTRATION_OFFICER]) as client:
        page = client.get("/console/requests").text
        assert "Ministry of Education" in page
        assert "127.0.0.1:" in page
        assert MOE_PORTAL in page
        rejected = client.post(
            "/console/requests/reject",
            data={**_form(page, "/console/requests/reject", MOJ_SS1), "reason": "unknown ministry"},
        )
        assert rejected.status_code == 200, rejected.text
        assert f"Rejected the request of {MOJ_SS1}." in rejected.text
        # The page after the change carries the new ETag: the approval goes through.
        approved = client.post(
            "/console/requests/approve", data=_form(rejected.text, "/console/requests/approve")
        )
    assert approved.status_code == 200, approved.text
    assert f"Approved the request of {MOE_SS1}; published version" in approved.text
    published = desk.published()
    assert published.server(parse_server(MOE_SS1)) is not None
    assert published.server(parse_server(MOJ_SS1)) is None


def test_a_form_without_the_csrf_token_is_refused(desk: Desk, tmp_path: Path) -> None:
    with _login(desk, desk.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        page = client.get("/console/publication").text
        fields = _form(page, "/console/publication/publish")
        before = desk.published().version
        forged = client.post(
            "/console/publication/publish", data={"etag": fields["etag"], "validity_hours": "24"}
        )
        wrong = client.post(
            "/console/publication/publish", data={**fields, "csrf_token": "not-the-token"}
        )
    assert forged.status_code == 403
    assert wrong.status_code == 403
    assert "did not come from this console" in forged.text
    assert desk.published().version == before


def test_a_stale_page_is_refused_and_a_fresh_one_publishes(desk: Desk) -> None:
    with _login(desk, desk.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        page = client.get("/console/publication").text
        stale = _form(page, "/console/publication/publish")
        first = client.post("/console/publication/publish", data=stale)
        assert first.status_code == 200, first.text
        version = desk.published().version
        assert f"Published global configuration version {version}." in first.text
        again = client.post("/console/publication/publish", data=stale)
    assert again.status_code == 412
    assert "the registry changed since you read it" in again.text
    assert desk.published().version == version


def test_roles_see_only_their_forms(desk: Desk) -> None:
    with _login(desk, desk.keys[Role.AUDITOR]) as client:
        requests = client.get("/console/requests").text
        publication = client.get("/console/publication").text
        page = client.get("/console/registry").text
        refused = client.post("/console/publication/publish", data=_form(page, "/console/logout"))
    assert "/console/requests/approve" not in requests
    assert "/console/publication/publish" not in publication
    assert "/console/registry/service-descriptions" not in page
    assert refused.status_code == 403
    assert "role auditor" in refused.text


def test_the_officer_registers_a_service_description_by_upload(desk: Desk) -> None:
    with _login(desk, desk.keys[Role.REGISTRATION_OFFICER]) as client:
        page = client.get("/console/registry").text
        assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in page  # expiry timeline
        answer = client.post(
            "/console/registry/service-descriptions",
            data={
                **_form(page, "/console/registry/service-descriptions"),
                "subsystem": f"{MOE}/schools",
                "name": "schools",
                "servers": MOE_SS1,
            },
            files={"descriptor_set": ("schools.pb", file_descriptor_set(vehicles_pb2.DESCRIPTOR))},
        )
    assert answer.status_code == 200, answer.text
    assert f"Registered {MOE}/schools with" in answer.text
    with desk.client(desk.keys[Role.AUDITOR]) as auditor:
        subsystems = {s["id"]: s for s in auditor.get("/subsystems").json()}
    assert subsystems[f"{MOE}/schools"]["servers"] == [MOE_SS1]


def test_the_pages_speak_khmer(desk: Desk) -> None:
    with _login(desk, desk.keys[Role.AUDITOR]) as client:
        page = client.get("/console/requests", params={"lang": "km"})
        again = client.get("/console/publication")
    assert '<html lang="km">' in page.text
    assert "សំណើចុះឈ្មោះ" in page.text
    assert "ការកំណត់រចនាសម្ព័ន្ធសកល" in again.text
