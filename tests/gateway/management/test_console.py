"""The console over real HTTPS, as a browser without scripts would use it.

An administrator logs in with an API key, reads the pages in English and
Khmer, grants and revokes with the page's CSRF token; forms without it,
sessions whose key was revoked and roles that may only look are refused.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from spean.gateway.demo.ministries import GET_VEHICLE, MPWT, VEHICLES
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World

CLIENT = "KH/GOV/MOI/idreg"


def _console(admin: Admin, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    client = admin.client(cert=cert)
    client.base_url = httpx.URL(admin.url.removesuffix("/api/v1"))
    return client


@contextlib.contextmanager
def _login(admin: Admin, key: str) -> Iterator[httpx.Client]:
    with _console(admin) as client:
        answer = client.post("/console/login", data={"api_key": key})
        assert answer.status_code == 303, answer.text
        yield client


def _form_fields(page: str, form_id: str) -> dict[str, str]:
    form = page[page.index(f'id="{form_id}"') :]
    form = form[: form.index("</form>")]
    return _hidden(form)


def _hidden(form: str) -> dict[str, str]:
    """The hidden fields of a form, their values as a browser would send them."""
    found = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form)
    return {name: html.unescape(value) for name, value in found}


def test_pages_need_a_login_and_the_cookie_is_locked_down(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _console(admin) as client:
        for path in ("/console/status", "/console/services", "/console/access", "/console/traffic"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/login"
        refused = client.post("/console/login", data={"api_key": admin.revoked_key})
        assert refused.status_code == 401
        assert "was revoked" in refused.text
        accepted = client.post("/console/login", data={"api_key": admin.keys[Role.AUDITOR]})
    cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" in cookie
    assert "path=/console" in cookie


def test_the_pages_speak_khmer(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _login(admin, admin.keys[Role.AUDITOR]) as client:
        page = client.get("/console/status", params={"lang": "km"})
        again = client.get("/console/services")  # the choice is remembered
    assert '<html lang="km">' in page.text
    assert "ស្ថានភាពម៉ាស៊ីនមេ" in page.text
    assert "<svg" in page.text
    assert "កាលវិភាគផុតកំណត់នៃវិញ្ញាបនបត្រ" in page.text
    assert "សេវាកម្មដែលបានផ្សព្វផ្សាយ" in again.text
    assert VEHICLES in again.text
    assert "គ្មានប្រព័ន្ធរងអតិថិជនណាហៅតាមម៉ាស៊ីនមេនេះទេ។" in again.text  # MPWT has none


def test_grant_and_revoke_need_the_pages_csrf_token(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _login(admin, admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        page = client.get("/console/access").text
        fields = _form_fields(page, "grant")
        target = f"{VEHICLES}|{GET_VEHICLE}"
        forged = client.post(
            "/console/access/grant",
            data={"etag": fields["etag"], "client": CLIENT, "target": target},
        )
        assert forged.status_code == 403
        assert "did not come from this console" in forged.text
        granted = client.post(
            "/console/access/grant", data={**fields, "client": CLIENT, "target": target}
        )
        assert granted.status_code == 200, granted.text
        assert f"Granted {GET_VEHICLE} to {CLIENT}." in granted.text
        stale = client.post(
            "/console/access/grant", data={**fields, "client": CLIENT, "target": target}
        )
        assert stale.status_code == 412
        assert "changed since you read them" in stale.text
        rules = yaml.safe_load(admin.config.read_text())["provider"]["access"]
        assert any(r["client"] == CLIENT and GET_VEHICLE in r["methods"] for r in rules)
        revoke = re.search(
            r'<form method="post" action="/console/access/revoke".*?</form>',
            stale.text,
            flags=re.DOTALL,
        )
        assert revoke is not None
        revoked = client.post(
            "/console/access/revoke", data=_hidden(revoke.group(0)), headers={"HX-Request": "true"}
        )
    assert revoked.status_code == 200
    assert revoked.text.startswith('<div id="access"')  # a fragment for htmx to swap in
    assert "Revoked" in revoked.text


def test_an_auditor_may_look_but_not_change(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _console(admin, cert=admin.auditor_cert) as client:
        assert client.post("/console/login/certificate").status_code == 303
        page = client.get("/console/access")
        assert page.status_code == 200
        assert "may look at the access rights but not change them" in page.text
        assert 'id="grant"' not in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        refused = client.post(
            "/console/access/grant",
            data={"csrf_token": csrf.group(1), "client": CLIENT, "target": f"{VEHICLES}|*"},
        )
    assert refused.status_code == 403


def test_revoking_the_key_ends_its_sessions(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    store = ApiKeyStore(world.folder(MPWT) / "state" / "management-keys.json")
    key, entry = store.create("short-lived", Role.AUDITOR)
    with _login(admin, key) as client:
        assert client.get("/console/status").status_code == 200
        store.revoke(entry.id)
        after = client.get("/console/status")
    assert after.status_code == 303
    assert after.headers["location"] == "/console/login"


def test_no_script_or_style_from_elsewhere(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with _login(admin, admin.keys[Role.AUDITOR]) as client:
        page = client.get("/console/traffic")
        script = client.get("/console/static/vendor/htmx-2.0.11.min.js")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r'(src|href)="https?://', page.text)
    assert script.status_code == 200
    assert "htmx" in script.text[:2000]


def test_an_auditor_finds_a_call_and_downloads_its_proof(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with world.consumer_channel() as channel:
        exchange_id = get_vehicle(channel).exchange_id
    with _login(admin, admin.keys[Role.AUDITOR]) as client:
        page = client.get("/console/audit", params={"exchange_id": exchange_id, "status": ""})
        assert page.status_code == 200, page.text
        assert exchange_id in page.text
        link = re.search(r'href="(/console/audit/proof\?[^"]+)"', page.text)
        assert link is not None
        deadline = time.monotonic() + 10
        proof = client.get(html.unescape(link.group(1)))
        while proof.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)  # the checkpoint covering the record is signed within a second
            proof = client.get(html.unescape(link.group(1)))
    assert proof.status_code == 200
    assert proof.headers["content-disposition"].startswith("attachment;")
    assert proof.json()["tree_size"] > proof.json()["index"]


def test_pages_a_role_may_not_see_are_refused_and_not_offered(
    managed: tuple[World, Admin],
) -> None:
    _, admin = managed
    with _login(admin, admin.keys[Role.SERVICE_ADMINISTRATOR]) as client:
        status = client.get("/console/status")
        refused = client.get("/console/audit")
    assert 'href="/console/audit"' not in status.text
    assert refused.status_code == 403
    assert "Your role may not do this" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
