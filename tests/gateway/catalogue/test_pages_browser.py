"""The catalogue's pages in a real browser (Debian's Chromium, driven by Playwright).

A reader searches for the vehicle service in English, opens its page, finds
the documentation and the snippets and copies one; switches to Khmer, where
the page renders in a Khmer font, searches in Khmer as they type (htmx) and
meets a 404 page. Another reader uses the keyboard only; a third reads on a
phone (360x740) without scrolling sideways, and one without scripts. Text
contrast is at least 4.5:1. Screenshots are kept under
build/test-artefacts/catalogue/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from spean.gateway.catalogue.api import create_app
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from spean.gateway.web.serve import WebListener
from tests.support.browsers import ARTEFACTS, chromium
from tests.support.catalogue import GET_VEHICLE_SERVICE, DemoFederation

pytestmark = pytest.mark.slow

SHOTS = ARTEFACTS.parent / "catalogue"
GET_VEHICLE_EN = "Look up a vehicle by its plate"
GET_VEHICLE_KM = "រកមើលយានយន្តតាមស្លាកលេខ"
LIST_VEHICLES_KM = "បញ្ជីយានយន្តរបស់ម្ចាស់"


def _shots(test_name: str) -> Path:
    folder = SHOTS / test_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def site(demo: DemoFederation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The catalogue served on a loopback port, as `spean catalogue serve` serves it."""
    authority = demo.authority_dir
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        tmp_path_factory.mktemp("pages-browser") / "cache.signed",
    )
    service = CatalogueService(client, open_index("sqlite://"), endpoint="10.0.0.5:8443")
    listener = WebListener("127.0.0.1:0", None, name="catalogue")
    service.start(refresh=False)
    listener.start(create_app(service))
    try:
        yield f"http://127.0.0.1:{listener.port}"
    finally:
        listener.stop()
        service.stop()


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        # Root in a container cannot use Chromium's sandbox; the pages are our own.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def _page(browser: Browser, site: str, **options: Any) -> Page:
    context = browser.new_context(base_url=site, **options)
    return context.new_page()


def _script_errors(page: Page) -> list[str]:
    """Script errors and refusals by the content security policy, as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_search_open_a_service_copy_a_snippet_and_read_it_in_khmer(
    site: str, browser: Browser
) -> None:
    shots = _shots("search_service_khmer")
    page = _page(browser, site, viewport={"width": 1280, "height": 900})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    errors = _script_errors(page)
    page.goto("/")
    expect(page.get_by_role("heading", name="Find a government service")).to_be_visible()
    page.get_by_role("searchbox", name="Search the catalogue").fill("plate")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"q=plate"))
    result = page.get_by_role("link", name=GET_VEHICLE_EN)
    expect(result).to_be_visible()
    page.screenshot(path=shots / "1-search-en.png", full_page=True)

    result.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(GET_VEHICLE_EN)
    expect(page.get_by_role("heading", name="Protobuf documentation")).to_be_visible()
    expect(page.locator('[id="msg-vehicles.v1.GetVehicleRequest"]')).to_be_visible()
    for key, words in [
        ("spean_call", "spean call"),
        ("python", "grpc.insecure_channel"),
        ("node", "@grpc/grpc-js"),
        ("grpcurl", "grpcurl"),
    ]:
        expect(page.locator(f"#snippet-{key}")).to_contain_text(words)
    # The script shows the copy buttons; one copies its snippet.
    copy = page.get_by_role("button", name="Copy grpcurl")
    expect(copy).to_be_visible()
    copy.click()
    expect(page.get_by_role("status")).to_have_text("The grpcurl snippet is copied.")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.locator("#snippet-grpcurl").inner_text()
    page.screenshot(path=shots / "2-service-en.png", full_page=True)

    page.get_by_role("link", name="ភាសាខ្មែរ").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(GET_VEHICLE_KM)
    expect(page.locator("html")).to_have_attribute("lang", "km")
    expect(page.get_by_role("heading", name="ឯកសារ Protobuf")).to_be_visible()
    family = heading.evaluate("h => getComputedStyle(h).fontFamily")
    assert "Khmer OS" in family
    # The glyphs come from a Khmer font, not boxes: Khmer text is measurably wide.
    width = page.evaluate(
        "() => { const c = document.createElement('canvas').getContext('2d');"
        " c.font = '16px \"Khmer OS\"'; return c.measureText('រកមើលយានយន្ត').width; }"
    )
    assert width > 20
    page.screenshot(path=shots / "3-service-km.png", full_page=True)

    # Khmer search as one types: htmx replaces the results without a page load.
    page.get_by_role("link", name="ស្វែងរកសេវារដ្ឋាភិបាល").click()
    marker = page.evaluate("() => (window.spean_marker = 'kept')")
    page.get_by_role("searchbox", name="ស្វែងរកក្នុងកាតាឡុក").press_sequentially("យានយន្ត", delay=30)
    expect(page.get_by_role("link", name=LIST_VEHICLES_KM)).to_be_visible()
    expect(page.get_by_role("link", name=GET_VEHICLE_KM)).to_be_visible()
    expect(page.locator(".results li")).to_have_count(2)
    assert page.evaluate("() => window.spean_marker") == marker  # the same document
    expect(page).to_have_url(re.compile(r"q=%E1%9E"))  # the address follows the question
    page.screenshot(path=shots / "4-search-km.png", full_page=True)

    answer = page.goto("/services/KH/GOV/MPWT/vehicles:/nope.v1.Nothing/Here")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("រកមិនឃើញ")
    expect(page.get_by_role("alert")).to_contain_text("is not in the catalogue")
    page.screenshot(path=shots / "5-404-km.png", full_page=True)
    # The only console error is the 404 itself: no script failed, the policy refused nothing.
    assert [e for e in errors if "404" not in e] == []
    page.context.close()


def _focused(page: Page) -> dict[str, str]:
    info: dict[str, str] = page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return {tag: e.tagName, id: e.id, cls: e.className, text: e.textContent.trim(),"
        " outline: s.outlineStyle, width: s.outlineWidth}; }"
    )
    return info


def _tab_to(page: Page, wanted: Any, limit: int = 40) -> dict[str, str]:
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if wanted(focused):
            return focused
    raise AssertionError(f"the keyboard never reached it in {limit} presses")


def test_keyboard_only_reaches_the_search_box_and_the_results(site: str, browser: Browser) -> None:
    shots = _shots("keyboard")
    page = _page(browser, site)
    page.goto("/")
    page.keyboard.press("Tab")
    skip = _focused(page)
    assert skip["cls"] == "skip"
    # Focus is visible: an outline drawn, not removed.
    assert skip["outline"] != "none"
    assert skip["width"] != "0px"
    page.screenshot(path=shots / "1-skip-link.png")
    box = _tab_to(page, lambda f: f["id"] == "q")
    assert box["outline"] != "none"
    page.keyboard.type("vehicle")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=vehicle"))
    # htmx answered the form in place: the keyboard goes on from the search box.
    result = _tab_to(page, lambda f: f["cls"] == "result-title")
    assert result["outline"] != "none"
    page.screenshot(path=shots / "2-result-focused.png")
    title = result["text"]
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    page.screenshot(path=shots / "3-service.png")
    page.context.close()


PHONE_PAGES = [
    "/",
    "/?q=vehicle&lang=km",
    "/members/KH/GOV/MPWT",
    f"/services/{GET_VEHICLE_SERVICE}",
    f"/services/{GET_VEHICLE_SERVICE}?lang=km",
    "/services/nope",
    "/?data_class=secret",
]


def test_a_phone_never_scrolls_sideways(site: str, browser: Browser) -> None:
    shots = _shots("phone")
    page = _page(browser, site, viewport={"width": 360, "height": 740}, is_mobile=True)
    for number, path in enumerate(PHONE_PAGES, 1):
        page.goto(path)
        overflow = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert overflow[0] <= overflow[1], f"{path}: {overflow[0]} px wide in {overflow[1]} px"
        page.screenshot(path=shots / f"{number}.png", full_page=True)
    page.context.close()


def test_without_scripts_search_works_and_the_snippets_are_text(
    site: str, browser: Browser
) -> None:
    shots = _shots("no_script")
    page = _page(browser, site, java_script_enabled=False)
    page.goto("/")
    page.get_by_role("searchbox", name="Search the catalogue").fill("registry")
    page.get_by_label("Data class").select_option("personal")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"data_class=personal"))
    page.get_by_role("link", name=GET_VEHICLE_EN).click()
    snippet = page.locator("#snippet-spean_call")
    expect(snippet).to_contain_text("spean call")
    expect(page.locator("button.copy").first).to_be_hidden()
    page.screenshot(path=shots / "service.png", full_page=True)
    page.context.close()


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _rgb(css: str) -> tuple[float, float, float]:
    parts = [float(p) for p in re.findall(r"[\d.]+", css)[:3]]
    return parts[0], parts[1], parts[2]


# Every kind of text the pages show: body, links, hints, badges, buttons, code, errors.
CONTRAST_SELECTORS = [
    "body p",
    "a",
    ".hint",
    ".meta",
    ".count",
    ".badge",
    "button",
    "pre code",
    "th",
    "label",
    ".alert",
    ".foot p",
    ".comment",
]


def test_text_contrast_is_at_least_4_5_to_1(site: str, browser: Browser) -> None:
    page = _page(browser, site)
    checked = 0
    for path in ("/?q=vehicle", f"/services/{GET_VEHICLE_SERVICE}", "/?page=x"):
        page.goto(path)
        pairs = page.evaluate(
            """(selectors) => {
              const background = (e) => {
                for (; e; e = e.parentElement) {
                  const c = getComputedStyle(e).backgroundColor;
                  if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
                }
                return 'rgb(255, 255, 255)';
              };
              const found = [];
              for (const s of selectors) for (const e of document.querySelectorAll(s)) {
                if (!e.offsetParent && e.tagName !== 'BODY') continue;
                found.push([s, getComputedStyle(e).color, background(e)]);
              }
              return found;
            }""",
            CONTRAST_SELECTORS,
        )
        for selector, color, back in pairs:
            light, dark = sorted((_luminance(_rgb(color)), _luminance(_rgb(back))), reverse=True)
            ratio = (light + 0.05) / (dark + 0.05)
            assert ratio >= 4.5, f"{path} {selector}: {color} on {back} is {ratio:.2f}:1"
            checked += 1
    assert checked > 50
    page.context.close()
