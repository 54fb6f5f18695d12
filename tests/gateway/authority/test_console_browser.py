"""The authority's console in a real browser (Debian's Chromium, driven by Playwright).

A new ministry runs `spean join` and its request waits at the authority. The
registration officer logs in with an API key, reads the request, approves
it; the system administrator logs in on a phone-sized screen and publishes
the next configuration. The Khmer page renders. Screenshots of every step
are kept (tests/support/browsers.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from spean.gateway.identifiers import parse_server
from spean.gateway.web.roles import Role
from tests.support.authority_desk import Desk, authority_desk, join
from tests.support.browsers import artefacts, chromium

pytestmark = pytest.mark.slow

MOE, MOE_SS1, MOE_PORTAL = "KH/GOV/MOE", "KH/GOV/MOE/ss1", "KH/GOV/MOE/portal"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with authority_desk(tmp_path_factory.mktemp("authority-browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(desk: Desk) -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                # Root in a container cannot use Chromium's sandbox; the pages are our own.
                "--no-sandbox",
                # Real TLS: the browser trusts exactly the listener's key, nothing else.
                f"--ignore-certificate-errors-spki-list={desk.access.listener_spki_sha256()}",
            ],
        )
        yield browser
        browser.close()


def _log_in(browser: Browser, desk: Desk, key: str, **options: object) -> Page:
    page = browser.new_context(base_url=desk.base_url, **options).new_page()  # type: ignore[arg-type]
    page.goto("/console/requests")
    expect(page).to_have_url(f"{desk.base_url}/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in with the key").click()
    return page


def test_the_officer_approves_and_the_administrator_publishes(
    desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    shots = artefacts("authority_approve_publish")
    request = join(desk, tmp_path / "moe", MOE, "Ministry of Education", MOE_PORTAL)
    with desk.client(desk.keys[Role.REGISTRATION_OFFICER]) as officer:
        etag = officer.get("/registration-requests").headers["etag"]
        submitted = officer.post(
            "/registration-requests",
            json={"join_request": request.read_text()},
            headers={"If-Match": etag},
        )
        assert submitted.status_code == 200, submitted.text

    page = _log_in(browser, desk, desk.keys[Role.REGISTRATION_OFFICER])
    expect(page.get_by_role("heading", name="Registration requests")).to_be_visible()
    expect(page.get_by_role("heading", name=f"Ministry of Education · {MOE_SS1}")).to_be_visible()
    expect(page.get_by_text(MOE_PORTAL)).to_be_visible()
    page.screenshot(path=shots / "1-pending.png", full_page=True)
    page.get_by_role("button", name=f"Approve the request of {MOE_SS1}").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text(f"Approved the request of {MOE_SS1}; published version")
    expect(page.get_by_text("No registration request is waiting.")).to_be_visible()
    page.screenshot(path=shots / "2-approved.png", full_page=True)
    page.get_by_role("link", name="Registry").click()
    expect(page.locator("#servers")).to_contain_text(MOE_SS1)
    expect(page.locator("svg.chart")).to_be_visible()
    page.screenshot(path=shots / "3-registry.png", full_page=True)
    # The officer is offered no publish button.
    page.get_by_role("link", name="Publication").click()
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{desk.base_url}/console/login")
    page.context.close()
    approved_version = desk.published().version

    phone = _log_in(
        browser, desk, desk.keys[Role.SYSTEM_ADMINISTRATOR], viewport={"width": 390, "height": 844}
    )
    phone.get_by_role("link", name="Publication").click()
    expect(phone.locator("#published-version")).to_have_text(str(approved_version))
    phone.get_by_label("Valid for (hours)").fill("12")
    phone.get_by_role("button", name="Publish").click()
    expect(phone.get_by_role("status")).to_have_text(
        f"Published global configuration version {approved_version + 1}."
    )
    expect(phone.locator("#published-version")).to_have_text(str(approved_version + 1))
    phone.screenshot(path=shots / "4-published.png", full_page=True)
    phone.context.close()
    published = desk.published()
    assert published.version == approved_version + 1
    assert published.server(parse_server(MOE_SS1)) is not None
    hours = (published.expires_at - published.issued_at).total_seconds() / 3600
    assert hours == 12


def test_the_khmer_page_renders_in_a_khmer_font(desk: Desk, browser: Browser) -> None:
    shots = artefacts("authority_khmer")
    page = browser.new_context(base_url=desk.base_url, locale="km-KH").new_page()
    page.goto("/console/login")
    expect(page.locator("html")).to_have_attribute("lang", "km")
    page.locator("#api_key").fill(desk.keys[Role.AUDITOR])
    page.get_by_role("button", name="ចូលប្រើដោយសោ").click()
    heading = page.get_by_role("heading", name="សំណើចុះឈ្មោះ")
    expect(heading).to_be_visible()
    assert "Khmer OS" in heading.evaluate("h => getComputedStyle(h).fontFamily")
    page.screenshot(path=shots / "requests-km.png", full_page=True)
    page.context.close()
