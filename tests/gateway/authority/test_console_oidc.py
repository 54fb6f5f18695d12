"""The authority's console through the identity provider: a registration officer logs in
with the authorization code flow (tests/support/oidc.py) and lands on the requests page."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx
import yaml

from spean.gateway.authority.listener import AuthorityManagementListener, load_settings
from tests.support.authority_desk import prepare_desk
from tests.support.oidc import identity_provider


def test_a_registration_officer_logs_in_through_the_identity_provider(tmp_path: Path) -> None:
    desk = prepare_desk(tmp_path)
    with identity_provider() as idp:
        document = yaml.safe_load(desk.settings.read_text())
        section = idp.oidc_section(role_map={"officers": "registration-officer"})
        del section["subject_claim"]
        document["management"]["oidc"] = section
        desk.settings.write_text(yaml.safe_dump(document))
        listener = AuthorityManagementListener(desk.authority, load_settings(desk.settings), None)
        listener.start()
        try:
            desk.port = desk.access.port = listener.port
            idp.user = {"sub": "officer-1", "roles": ["officers"]}
            with desk.access.client() as browser:
                browser.base_url = httpx.URL(desk.base_url)
                login = browser.get("/console/login")
                assert 'href="/console/login/oidc"' in login.text
                start = browser.get("/console/login/oidc")
                assert start.status_code == 303
                assert start.headers["location"].startswith(f"{idp.url}/authorize?")
                with httpx.Client() as provider:
                    back = provider.get(start.headers["location"])
                callback = urllib.parse.urlsplit(back.headers["location"])
                landed = browser.get(f"{callback.path}?{callback.query}")
                assert landed.status_code == 200, landed.text
                assert 'url=/console/requests"' in landed.text
                page = browser.get("/console/requests")
                assert page.status_code == 200
                assert "oidc:officer-1" in page.text
        finally:
            listener.stop()
