"""The console in a real browser (Debian's Chromium, driven by Playwright).

MPWT's service administrator logs in with an API key, grants MoH's hospital
GetVehicle, watches its call appear in the traffic statistics, and revokes
the right again; MoH's next call is refused. The system administrator
disables a method with a notice and enables it again, and rotates the member
signing key from the Keys page. The Khmer pages render in a
Khmer font. Screenshots of every step are kept (tests/support/browsers.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from spean.gateway.demo.ministries import GET_VEHICLE, NHIS, VEHICLES
from spean.gateway.web.roles import Role
from tests.support.browsers import artefacts, chromium
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(managed: tuple[World, Admin]) -> Iterator[Browser]:
    executable = chromium()
    _, admin = managed
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                # Root in a container cannot use Chromium's sandbox; the pages are our own.
                "--no-sandbox",
                # Real TLS: the browser trusts exactly the listener's key, nothing else.
                f"--ignore-certificate-errors-spki-list={admin.listener_spki_sha256()}",
            ],
        )
        yield browser
        browser.close()


def _page(browser: Browser, admin: Admin, **options: Any) -> Page:
    context = browser.new_context(base_url=admin.url.removesuffix("/api/v1"), **options)
    return context.new_page()


def _revoke_by_api(admin: Admin) -> None:
    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        etag = client.get("/access").headers["etag"]
        answer = client.post(
            "/access/revocations",
            headers={"If-Match": etag},
            json={"client": NHIS, "service": VEHICLES, "methods": [GET_VEHICLE]},
        )
        assert answer.status_code == 200, answer.text


def _nhis_calls(page: Page) -> int:
    row = page.locator("#totals tr", has_text=NHIS).filter(has_text=VEHICLES)
    return int(row.locator("td.calls").inner_text())


def test_grant_watch_the_call_and_revoke(managed: tuple[World, Admin], browser: Browser) -> None:
    world, admin = managed
    shots = artefacts("grant_watch_revoke")
    _revoke_by_api(admin)
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.PERMISSION_DENIED

    page = _page(browser, admin, viewport={"width": 390, "height": 844})  # a phone
    page.goto("/console/status")
    expect(page).to_have_url(f"{admin.url.removesuffix('/api/v1')}/console/login")
    page.get_by_label("API key").fill(admin.keys[Role.SERVICE_ADMINISTRATOR])
    page.get_by_role("button", name="Log in with the key").click()
    expect(page.get_by_role("heading", name="Server status")).to_be_visible()
    page.screenshot(path=shots / "1-status.png", full_page=True)

    page.get_by_role("link", name="Traffic").click()
    before = _nhis_calls(page)
    page.get_by_role("link", name="Access rights").click()
    page.get_by_label("Client subsystem").fill(NHIS)
    page.get_by_label("Method").select_option(f"{VEHICLES}|{GET_VEHICLE}")
    page.get_by_role("button", name="Grant", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Granted {GET_VEHICLE} to {NHIS}.")
    page.screenshot(path=shots / "2-granted.png", full_page=True)

    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.OK
    page.get_by_role("link", name="Traffic").click()
    page.get_by_label("Window").select_option("1h")
    page.get_by_role("button", name="Show").click()
    assert _nhis_calls(page) == before + 1
    expect(page.locator("svg.chart").first).to_be_visible()
    page.screenshot(path=shots / "3-traffic.png", full_page=True)

    page.get_by_role("link", name="Access rights").click()
    page.get_by_role("button", name=f"Revoke {GET_VEHICLE} from {NHIS}").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked {GET_VEHICLE} from {NHIS}.")
    page.screenshot(path=shots / "4-revoked.png", full_page=True)
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.PERMISSION_DENIED
    page.context.close()


def test_khmer_pages_render_in_a_khmer_font(managed: tuple[World, Admin], browser: Browser) -> None:
    _, admin = managed
    shots = artefacts("khmer")
    page = _page(browser, admin, locale="km-KH")
    page.goto("/console/login")
    expect(page.locator("html")).to_have_attribute("lang", "km")
    page.locator("#api_key").fill(admin.keys[Role.AUDITOR])
    page.get_by_role("button", name="ចូលប្រើដោយសោ").click()
    heading = page.get_by_role("heading", name="ស្ថានភាពម៉ាស៊ីនមេ")
    expect(heading).to_be_visible()
    family = heading.evaluate("h => getComputedStyle(h).fontFamily")
    assert "Khmer OS" in family
    # The glyphs come from a Khmer font, not boxes: Khmer text is measurably wide.
    width = page.evaluate(
        "() => { const c = document.createElement('canvas').getContext('2d');"
        " c.font = '16px \"Khmer OS\"'; return c.measureText('ស្ថានភាព').width; }"
    )
    assert width > 20
    page.screenshot(path=shots / "status-km.png", full_page=True)
    page.context.close()


def test_disable_a_method_and_rotate_the_signing_key(
    managed: tuple[World, Admin], browser: Browser
) -> None:
    import datetime as dt

    from spean.gateway.demo.ministries import MOH, MPWT
    from spean.gateway.identifiers import MemberId

    world, admin = managed
    shots = artefacts("disable_and_rotate")
    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:  # the hospital may call
        etag = client.get("/access").headers["etag"]
        granted = client.post(
            "/access/grants",
            headers={"If-Match": etag},
            json={"client": NHIS, "service": VEHICLES, "methods": [GET_VEHICLE]},
        )
        assert granted.status_code == 200, granted.text
    page = _page(browser, admin)
    page.goto("/console/login")
    page.get_by_label("API key").fill(admin.keys[Role.SYSTEM_ADMINISTRATOR])
    page.get_by_role("button", name="Log in with the key").click()

    # A method switched off for maintenance, with a notice for its callers.
    page.get_by_role("link", name="Services").click()
    page.locator("tr", has_text=GET_VEHICLE).get_by_label(
        "Notice for callers (why, until when)"
    ).fill("maintenance until 06:00")
    page.get_by_role("button", name=f"Disable {GET_VEHICLE}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Disabled {GET_VEHICLE}")
    page.screenshot(path=shots / "1-disabled.png", full_page=True)
    with world.consumer_channel() as channel:
        refused = get_vehicle(channel)
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "maintenance until 06:00" in refused.details
    page.get_by_role("button", name=f"Enable {GET_VEHICLE}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Enabled {GET_VEHICLE} again")

    # The member signing key, rotated from the Keys page.
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="Start a rotation of the member signing key").click()
    csr = page.get_by_label("Certificate request for the authority").first.input_value()
    assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    page.screenshot(path=shots / "2-csr.png", full_page=True)
    authority = world.federation.authority
    issued = authority.admit_member(
        MemberId.parse(MPWT), "Ministry of Public Works and Transport", csr.encode()
    )
    authority.publish(dt.timedelta(days=1))
    for member in (MOH, MPWT):
        world.server(member).globalconf.refresh()
    page.get_by_label("The certificate the authority issued (PEM)").fill(issued.decode())
    page.get_by_role(
        "button", name="Install the certificate of the next member signing key"
    ).click()
    expect(page.get_by_role("status")).to_contain_text("is installed")
    page.get_by_role("button", name="Switch to the next member signing key").click()
    expect(page.get_by_role("status")).to_contain_text("now uses the next member signing key")
    page.screenshot(path=shots / "3-switched.png", full_page=True)
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code == grpc.StatusCode.OK
    page.context.close()
