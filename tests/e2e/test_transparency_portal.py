"""A citizen, logged in through the ministry's identity provider, sees who looked at them.

The demo federation; MPWT has a pseudonymisation key and its management
listener accepts logins from a loopback OpenID provider (tests/support/oidc.py)
that maps "citizen" to the data-subject role (the person's id in the
``national_id`` claim) and "ombudsman" to the auditor. The hospital asks MPWT
about one citizen twice and about another once. Each citizen sees exactly
their own exchanges, in every log of the server, with proofs that verify
offline against the federation's anchor; the look-ups are themselves
recorded; nobody reaches what their role does not hold.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.subject import TRANSPARENCY, parse_proof, verify_subject_proof
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.files import keyfiles
from spean.gateway.management.api import OWN_VIEW_PURPOSE
from spean.gateway.web.roles import Role
from tests.support.management import Admin, enable_management
from tests.support.oidc import Provider, identity_provider
from tests.support.subjects import CITIZEN, OTHER_CITIZEN, Outcome, call, give_mpwt_a_key
from tests.support.world import World, running

CITIZEN_LOGIN = {"sub": "citizen-1", "roles": ["citizen"], "national_id": CITIZEN}
OTHER_LOGIN = {"sub": "citizen-2", "roles": ["citizen"], "national_id": OTHER_CITIZEN}
OMBUDSMAN = {"sub": "ombudsman-1", "roles": ["ombudsman"]}


@dataclass
class Portal:
    world: World
    admin: Admin
    idp: Provider
    outcomes: dict[str, Outcome]

    @property
    def base(self) -> str:
        return self.admin.url.removesuffix("/api/v1")

    def bearer(self, claims: dict[str, Any]) -> httpx.Client:
        """The API as someone holding an access token of the identity provider."""
        token = self.idp.id_token(claims, "spean-management", nonce="")
        client = self.admin.client()
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    def anchor(self) -> Any:
        config = self.world.federation.config(MPWT)
        return keyfiles.load_certificate(config.resolve(config.global_configuration.anchor))

    def transparency_records(self) -> list[AuditRecord]:
        origin = f"{self.world.federation.config(MPWT).server_id}#{TRANSPARENCY}"
        stored = self.world.server(MPWT).audit.read(origin=origin)
        return [AuditRecord.from_bytes(r.record_bytes) for r in stored]


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    federation = build_demo(tmp_path_factory.mktemp("transparency"))
    config = federation.configs[MPWT]
    give_mpwt_a_key(config)
    admin = enable_management(config)
    with identity_provider() as idp:
        document = yaml.safe_load(config.read_text())
        document["management"]["oidc"] = idp.oidc_section()
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        with running(federation) as world:
            port = world.server(MPWT).management_port
            assert port is not None
            admin.port = port
            vehicle = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
            outcomes = {
                name: call(world, GET_VEHICLE, VEHICLES, vehicle, subject)
                for name, subject in (
                    ("citizen", CITIZEN),
                    ("other", OTHER_CITIZEN),
                    ("citizen again", CITIZEN),
                )
            }
            portal = Portal(world, admin, idp, outcomes)
            _wait_until_proven(portal)
            yield portal


def _wait_until_proven(portal: Portal) -> None:
    """The server signs a checkpoint within a second of a record; wait for the three."""
    deadline = time.monotonic() + 30
    with portal.bearer(CITIZEN_LOGIN) as client:
        while True:
            view = client.get("/transparency/me").json()
            if view["logs"] and all(log["pending"] == 0 for log in view["logs"]):
                return
            assert time.monotonic() < deadline, view
            time.sleep(0.3)


def _exchanges(view: dict[str, Any]) -> set[str]:
    """The exchanges listed in the workers' logs (the look-up log lists the look-ups)."""
    workers = [log for log in view["logs"] if "#w" in log["origin"]]
    return {e["exchange_id"] for log in workers for e in log["exchanges"]}


def test_a_citizen_sees_each_exchange_that_touched_them_and_no_other(portal: Portal) -> None:
    with portal.bearer(CITIZEN_LOGIN) as client:
        answer = client.get("/transparency/me")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    mine = {portal.outcomes["citizen"].exchange_id, portal.outcomes["citizen again"].exchange_id}
    assert _exchanges(view) == mine
    (worker,) = [log for log in view["logs"] if log["origin"].endswith("#w0")]
    for exchange in worker["exchanges"]:
        assert exchange["client"] == NHIS
        assert exchange["service"] == VEHICLES
        assert exchange["user"] == "dr.sokha"
        assert exchange["purpose"] == "admission"
        assert exchange["status"] == "OK"
    with portal.bearer(OTHER_LOGIN) as client:
        other = client.get("/transparency/me").json()
    assert _exchanges(other) == {portal.outcomes["other"].exchange_id}
    assert other["subject_pseudonym"] != view["subject_pseudonym"]


def test_each_logs_proof_verifies_offline_and_names_nobody(portal: Portal) -> None:
    with portal.bearer(CITIZEN_LOGIN) as client:
        view = client.get("/transparency/me").json()
    anchor = portal.anchor()
    proven: set[str] = set()
    for log in view["logs"]:
        proof = parse_proof(log["proof"])
        report = verify_subject_proof(proof, anchor)
        assert report.ok, report.to_dict()
        assert proof.origin == log["origin"]
        assert proof.subject_pseudonym.hex() == view["subject_pseudonym"]
        proven |= {str(e.summary()["exchange_id"]) for e in proof.entries}
        # Neither person's id is in the file, nor the other person's exchange.
        assert CITIZEN not in log["proof"]
        assert OTHER_CITIZEN not in log["proof"]
        assert portal.outcomes["other"].exchange_id not in log["proof"]
    assert portal.outcomes["citizen"].exchange_id in proven


def test_every_look_up_is_recorded_and_shown_to_the_person_next_time(portal: Portal) -> None:
    before = len(portal.transparency_records())
    with portal.bearer(CITIZEN_LOGIN) as client:
        first = client.get("/transparency/me").json()
        recorded = portal.transparency_records()[before:]
        assert {r.exchange_id for r in recorded} == {
            log["lookup_exchange_id"] for log in first["logs"]
        }
        for record in recorded:
            assert record.user == "oidc:citizen-1"
            assert record.purpose == OWN_VIEW_PURPOSE
            assert record.subject_pseudonym.hex() == first["subject_pseudonym"]
        # The look-up log is signed like any other: the next view proves the look-ups too.
        deadline = time.monotonic() + 30
        while True:
            again = client.get("/transparency/me").json()
            lookups = [log for log in again["logs"] if log["origin"].endswith(f"#{TRANSPARENCY}")]
            listed = {e["exchange_id"] for log in lookups for e in log["exchanges"]}
            if {r.exchange_id for r in recorded} <= listed:
                break
            assert time.monotonic() < deadline, again
            time.sleep(0.3)
    assert all(e["user"] == "oidc:citizen-1" for log in lookups for e in log["exchanges"])


def test_an_ombudsman_looks_a_person_up_for_a_stated_purpose(portal: Portal) -> None:
    before = len(portal.transparency_records())
    with portal.bearer(OMBUDSMAN) as client:
        answer = client.post(
            "/transparency/lookups", json={"subject": OTHER_CITIZEN, "purpose": "case 2026/17"}
        )
    assert answer.status_code == 200, answer.text
    assert portal.outcomes["other"].exchange_id in _exchanges(answer.json())
    recorded = portal.transparency_records()[before:]
    assert recorded
    assert all(r.user == "oidc:ombudsman-1" for r in recorded)
    assert all(r.purpose == "case 2026/17" for r in recorded)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "KH NID 0102", "purpose": "case"}, "subject"),
        ({"subject": CITIZEN, "purpose": "   "}, "purpose"),
        ({"subject": CITIZEN}, "purpose"),
        ({"subject": CITIZEN, "purpose": "case", "extra": 1}, "extra"),
    ],
)
def test_a_malformed_look_up_is_refused_naming_the_field(
    portal: Portal, body: dict[str, Any], field: str
) -> None:
    before = len(portal.transparency_records())
    with portal.bearer(OMBUDSMAN) as client:
        answer = client.post("/transparency/lookups", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert len(portal.transparency_records()) == before  # nothing looked up, nothing recorded


def test_each_role_reaches_only_its_own_part(portal: Portal) -> None:
    with portal.bearer(CITIZEN_LOGIN) as client:
        assert client.get("/audit/records").status_code == 403
        assert client.get("/access").status_code == 403
        looked = client.post(
            "/transparency/lookups", json={"subject": OTHER_CITIZEN, "purpose": "x"}
        )
        assert looked.status_code == 403
        assert "may not look-up-subjects" in looked.text
    auditor = portal.admin.keys[Role.AUDITOR]
    with portal.admin.client(auditor) as client:
        answer = client.get("/transparency/me")
        assert answer.status_code == 403
        assert "may not view-own-exchanges" in answer.text
    with portal.admin.client() as client:
        assert client.get("/transparency/me").status_code == 401


def test_a_citizen_token_without_the_persons_id_is_refused(portal: Portal) -> None:
    with portal.bearer({"sub": "citizen-3", "roles": ["citizen"]}) as client:
        answer = client.get("/transparency/me")
    assert answer.status_code == 401
    assert "national_id" in answer.text


# -- the browser login (authorization code with PKCE), driven over HTTP ------------------


def _browser(portal: Portal) -> httpx.Client:
    client = portal.admin.client()
    client.base_url = httpx.URL(portal.base)
    return client


def _log_in(portal: Portal, claims: dict[str, Any]) -> tuple[httpx.Client, httpx.Response]:
    """Follow the redirects a browser follows; returns the client and the callback's answer."""
    portal.idp.user = claims
    browser = _browser(portal)
    start = browser.get("/console/login/oidc")
    assert start.status_code == 303, start.text
    authorize = urllib.parse.urlsplit(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(authorize.query))
    assert query["code_challenge_method"] == "S256"
    assert "code_verifier" not in query  # the verifier never leaves the server
    with httpx.Client() as idp:
        back = idp.get(start.headers["location"])
    assert back.status_code == 302, back.text
    return browser, browser.get(back.headers["location"])


def test_a_citizen_logs_in_through_the_identity_provider_and_sees_their_page(
    portal: Portal,
) -> None:
    browser, landed = _log_in(portal, CITIZEN_LOGIN)
    try:
        assert landed.status_code == 200, landed.text
        assert 'url=/console/transparency"' in landed.text
        page = browser.get("/console/transparency")
        assert page.status_code == 200, page.text
        assert "Exchanges that touched these records: 2" in page.text
        assert "dr.sokha" in page.text
        assert "admission" in page.text
        assert CITIZEN not in page.text
        proof = browser.get("/console/transparency/proof", params={"origin": _worker(portal)})
        assert proof.status_code == 200
        assert "attachment" in proof.headers["content-disposition"]
        assert verify_subject_proof(parse_proof(proof.text), portal.anchor()).ok
        # Staff pages stay shut to a data subject.
        assert browser.get("/console/audit").status_code == 403
    finally:
        browser.close()


def test_a_replayed_or_forged_callback_is_refused(portal: Portal) -> None:
    portal.idp.user = CITIZEN_LOGIN
    with _browser(portal) as browser:
        start = browser.get("/console/login/oidc")
        with httpx.Client() as idp:
            back = idp.get(start.headers["location"])
        callback = urllib.parse.urlsplit(back.headers["location"])
        params = dict(urllib.parse.parse_qsl(callback.query))
        forged = browser.get(
            "/console/login/oidc/callback", params={**params, "state": "not-the-state"}
        )
        assert forged.status_code == 401
        assert "not for this login" in forged.text
        # The pending login was used up by the refusal: the true answer is refused too.
        replayed = browser.get(f"{callback.path}?{callback.query}")
        assert replayed.status_code == 401
        assert "no login is waiting" in replayed.text
        assert browser.get("/console/transparency").status_code == 303  # back to log in


def test_the_identity_providers_refusal_is_shown_not_a_session(portal: Portal) -> None:
    with _browser(portal) as browser:
        answer = browser.get(
            "/console/login/oidc/callback",
            params={"error": "access_denied", "error_description": "the user said no"},
        )
    assert answer.status_code == 401
    assert "the user said no" in answer.text
    assert "spean_session" not in answer.headers.get("set-cookie", "")


def _worker(portal: Portal) -> str:
    return f"{portal.world.federation.config(MPWT).server_id}#w0"


# -- in a real browser (Debian's Chromium, driven by Playwright) --------------------------


@pytest.mark.slow
def test_in_a_browser_a_citizen_logs_in_sees_who_looked_and_downloads_the_proof(
    portal: Portal,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.support.browsers import artefacts, chromium

    executable = chromium()
    shots = artefacts("transparency_citizen")
    portal.idp.user = CITIZEN_LOGIN
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                f"--ignore-certificate-errors-spki-list={portal.admin.listener_spki_sha256()}",
            ],
        )
        try:
            context = browser.new_context(
                base_url=portal.base, viewport={"width": 390, "height": 844}, accept_downloads=True
            )
            page = context.new_page()
            page.goto("/console/transparency")
            expect(page).to_have_url(f"{portal.base}/console/login")
            page.screenshot(path=shots / "1-login.png", full_page=True)
            # Out to the identity provider and back (a cross-site round trip).
            page.get_by_role("link", name="Log in with the identity provider").click()
            heading = page.get_by_role("heading", name="Who looked at my records")
            expect(heading).to_be_visible()
            expect(page.get_by_text("Exchanges that touched these records: 2")).to_be_visible()
            expect(page.locator("table.subject-exchanges").first).to_contain_text("dr.sokha")
            page.screenshot(path=shots / "2-my-records.png", full_page=True)
            with page.expect_download() as event:
                page.get_by_role("link", name=f"Download the proof of {_worker(portal)}").click()
            text = event.value.path().read_text(encoding="utf-8")
            assert verify_subject_proof(parse_proof(text), portal.anchor()).ok
            # The same page in Khmer.
            page.goto("/console/transparency?lang=km")
            expect(page.get_by_role("heading", name="អ្នកណាបានមើលកំណត់ត្រារបស់ខ្ញុំ")).to_be_visible()
            page.screenshot(path=shots / "3-my-records-km.png", full_page=True)
            # No horizontal scrolling on the phone.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            context.close()
        finally:
            browser.close()
