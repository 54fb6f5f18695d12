"""The catalogue's web pages over the demo federation, as a browser without scripts reads them.

A reader searches in English and Khmer with each filter, pages through the
results, opens a ministry and a service (its metadata, its protobuf
documentation, the four snippets, the links for machines), switches the
language; unknown pages, refused queries and a catalogue without a
configuration answer pages of their own; every answer carries the
security headers, and the pages run no inline script.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from spean.gateway.catalogue import pages
from spean.gateway.catalogue.api import create_app
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.model import Catalogue
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from spean.gateway.web.i18n import Translator
from tests.support.catalogue import (
    GET_VEHICLE_SERVICE,
    LIST_VEHICLES_SERVICE,
    MONTHLY_REPORT_SERVICE,
    VERIFY_CITIZEN_SERVICE,
    DemoFederation,
)

EN, KM = Translator("en"), Translator("km")
GET_VEHICLE_EN = "Look up a vehicle by its plate"
GET_VEHICLE_KM = "រកមើលយានយន្តតាមស្លាកលេខ"


def _service(demo: DemoFederation, cache: Path, **options: object) -> CatalogueService:
    authority = demo.authority_dir
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        cache,
    )
    return CatalogueService(client, open_index("sqlite://"), endpoint="10.0.0.5:8443", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def web(demo: DemoFederation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    service = _service(demo, tmp_path_factory.mktemp("pages") / "cache.signed")
    service.start(refresh=False)
    try:
        with TestClient(create_app(service)) as client:
            yield client
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _no_language_chosen(web: TestClient) -> None:
    web.cookies.clear()  # the language switch's cookie would carry over between tests


def _text(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded, spaces folded)."""
    without = re.sub(r"<script.*?</script>|<[^>]+>", " ", page, flags=re.S)
    return " ".join(html.unescape(without).split())


def _result_ids(page: str) -> list[str]:
    links = re.findall(r'<a class="result-title" href="/services/([^"?]+)', page)
    return [html.unescape(link) for link in links]


def _pre(page: str, element_id: str) -> str:
    match = re.search(rf'<pre id="{element_id}"[^>]*><code>(.*?)</code></pre>', page, re.S)
    assert match is not None, f"no <pre id={element_id}>"
    return html.unescape(match.group(1))


def test_the_home_page_lists_every_service_with_its_provider_and_class(web: TestClient) -> None:
    answer = web.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert '<html lang="en">' in page
    assert set(_result_ids(page)) == {
        GET_VEHICLE_SERVICE,
        LIST_VEHICLES_SERVICE,
        VERIFY_CITIZEN_SERVICE,
        "KH/GOV/MOI/idreg:/identity.v1.IdentityRegistry/GetCitizen",
        MONTHLY_REPORT_SERVICE,
    }
    text = _text(page)
    assert EN("catalogue.results.count", first=1, last=5, total=5) in text
    assert "Ministry of Public Works and Transport" in text
    assert 'class="badge badge-personal">Personal data<' in page
    assert 'class="badge badge-public">Public<' in page
    # Landmarks, a skip link and a label for every field.
    assert '<a class="skip" href="#main">' in page
    assert '<main id="main"' in page
    for field in ("q", "member", "topic", "data_class"):
        assert f'<label for="{field}">' in page
        assert f'id="{field}"' in page


def test_an_english_search_finds_the_vehicle_service(web: TestClient) -> None:
    page = web.get("/", params={"q": "plate"}).text
    api = web.get("/api/v1/catalogue/services", params={"q": "plate"}).json()
    assert _result_ids(page) == [s["id"] for s in api["services"]]
    assert GET_VEHICLE_SERVICE in _result_ids(page)
    assert MONTHLY_REPORT_SERVICE not in _result_ids(page)
    assert GET_VEHICLE_EN in _text(page)
    assert 'value="plate"' in page


def test_a_khmer_search_answers_in_khmer(web: TestClient) -> None:
    page = web.get("/", params={"q": "យានយន្ត", "lang": "km"}).text
    assert '<html lang="km">' in page
    assert set(_result_ids(page)) == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    text = _text(page)
    assert GET_VEHICLE_KM in text
    assert KM("catalogue.search.heading") in text
    assert KM("catalogue.results.count", first=1, last=2, total=2) in text
    assert EN("catalogue.search.heading") not in text


def test_filters_by_ministry_topic_and_data_class(web: TestClient) -> None:
    def ids(**params: str) -> set[str]:
        return set(_result_ids(web.get("/", params=params).text))

    assert ids(data_class="public") == {MONTHLY_REPORT_SERVICE}
    assert ids(member="KH/GOV/MOI", q="verify") == {VERIFY_CITIZEN_SERVICE}
    assert ids(topic="transport") == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    # An empty field of the form is no filter.
    assert len(ids(member="", topic="", data_class="", q="")) == 5
    # The chosen filters stay chosen on the answer.
    page = web.get("/", params={"member": "KH/GOV/MOI", "data_class": "personal"}).text
    assert '<option value="KH/GOV/MOI" selected>' in page
    assert '<option value="personal" selected>' in page


def test_results_come_in_pages(web: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    first = web.get("/").text
    assert len(_result_ids(first)) == 2
    assert EN("catalogue.results.page", page=1, pages=3) in _text(first)
    assert 'href="/?page=2" rel="next"' in first
    assert 'rel="prev"' not in first
    second = web.get("/", params={"page": "2"}).text
    assert EN("catalogue.results.count", first=3, last=4, total=5) in _text(second)
    assert 'href="/?page=1" rel="prev"' in second
    last = web.get("/", params={"page": "3"}).text
    assert len(_result_ids(last)) == 1
    assert 'rel="next"' not in last
    seen = _result_ids(first) + _result_ids(second) + _result_ids(last)
    assert len(set(seen)) == 5
    # The page links keep the question and the language.
    khmer = web.get("/", params={"data_class": "personal", "lang": "km"}).text
    assert 'href="/?data_class=personal&amp;lang=km&amp;page=2" rel="next"' in khmer


def test_live_search_gets_the_results_alone(web: TestClient) -> None:
    answer = web.get("/", params={"q": "plate"}, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    fragment = answer.text.strip()
    assert fragment.startswith('<section id="results"')
    assert "<html" not in fragment
    assert GET_VEHICLE_SERVICE in _result_ids(fragment)
    # Going back to a page htmx no longer holds, it asks for the whole page.
    restore = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    assert "<html" in web.get("/", params={"q": "plate"}, headers=restore).text
    # The full page loads htmx for it; the form works without it (a plain GET form).
    page = web.get("/").text
    assert '<form method="get" action="/"' in page
    assert 'src="/static/web/vendor/htmx-' in page
    assert web.get(re.findall(r'src="(/static/web/vendor/htmx-[^"]+)"', page)[0]).status_code == 200


def test_the_language_follows_accept_language_and_the_switch(web: TestClient) -> None:
    web.cookies.clear()
    page = web.get("/", headers={"Accept-Language": "km-KH,km;q=0.9,en;q=0.5"}).text
    assert '<html lang="km">' in page
    assert KM("catalogue.search.heading") in _text(page)
    # The switch links to the same page and question in the other language.
    english = web.get("/", params={"q": "plate", "lang": "en"})
    assert 'href="/?q=plate&amp;lang=km" lang="km"' in english.text
    switched = web.get("/", params={"q": "plate", "lang": "km"})
    assert switched.cookies.get("spean_lang") == "km"
    # The choice is kept for the next page, whatever the browser says.
    again = web.get(f"/services/{GET_VEHICLE_SERVICE}", headers={"Accept-Language": "en"})
    assert '<html lang="km">' in again.text
    web.cookies.clear()


def test_a_member_page_lists_its_subsystems_and_services(web: TestClient) -> None:
    answer = web.get("/members/KH/GOV/MPWT")
    assert answer.status_code == 200
    page = answer.text
    text = _text(page)
    assert "Ministry of Public Works and Transport" in text
    assert "KH/GOV/MPWT/vehicles" in text
    assert "Vehicle registry" in text
    assert f'href="/services/{GET_VEHICLE_SERVICE}?lang=en"' in page
    assert f'href="/services/{LIST_VEHICLES_SERVICE}?lang=en"' in page
    assert 'href="/api/v1/catalogue/members/KH/GOV/MPWT"' in page
    # Percent-encoded identifiers name the same member.
    assert web.get("/members/" + quote("KH/GOV/MPWT", safe="")).status_code == 200


def test_a_service_page_shows_everything_about_the_method(web: TestClient) -> None:
    answer = web.get(f"/services/{GET_VEHICLE_SERVICE}")
    assert answer.status_code == 200
    page = answer.text
    text = _text(page)
    entry = web.get(f"/api/v1/catalogue/services/{GET_VEHICLE_SERVICE}").json()
    meta = entry["metadata"]
    assert f'<h1 lang="en">{GET_VEHICLE_EN}</h1>' in page
    assert meta["description"]["en"] in text
    assert "Ministry of Public Works and Transport" in text
    assert 'href="/members/KH/GOV/MPWT?lang=en"' in page
    for contact in meta["contacts"]:
        assert contact["name"] in text
        if contact["email"]:
            assert f'href="mailto:{contact["email"]}"' in page
    assert meta["terms_of_use"]["en"] in text
    assert meta["legal_basis"]["en"] in text
    assert 'class="badge badge-personal">Personal data<' in page
    for client in entry["allowed_clients"]:
        assert f'<li class="ident">{client}</li>' in page
    assert EN("catalogue.service.allowed_note") in text
    # The protobuf documentation: the messages, their fields and types, the example.
    doc = entry["doc"]
    for message in doc["messages"]:
        assert f'id="msg-{message["name"]}"' in page
        for field in message["fields"]:
            assert field["name"] in text
            assert field["type"] in text
            if field["comment"]:
                assert " ".join(field["comment"].split()) in text
    assert doc["request_type"] in text
    assert "plate" in text
    # The four snippets, exactly as the API gives them, each with a copy button (hidden
    # until the script shows it, so without scripts there is no dead button).
    for key in ("spean_call", "python", "node", "grpcurl"):
        assert _pre(page, f"snippet-{key}") == entry["snippets"][key]
        assert re.search(
            rf'<button type="button" class="copy" data-copy="snippet-{key}"[^>]* hidden>', page
        )
    assert "spean call" in entry["snippets"]["spean_call"]
    assert 'src="/static/catalogue/copy.js"' in page
    # Links for machines: the JSON entry, the descriptor set, DCAT.
    api_entry = f'href="/api/v1/catalogue/services/{GET_VEHICLE_SERVICE}"'
    assert api_entry in page
    descriptors = "/api/v1/catalogue/subsystems/KH/GOV/MPWT/vehicles/descriptors"
    assert f'href="{descriptors}"' in page
    assert web.get(descriptors).headers["content-type"] == "application/x-protobuf"
    assert 'href="/api/v1/catalogue/dcat.jsonld"' in page
    assert 'href="/api/v1/catalogue/dcat.ttl"' in page
    # No datasets yet: their section is not shown.
    assert 'id="datasets"' not in page


def test_a_service_page_in_khmer(web: TestClient) -> None:
    page = web.get(f"/services/{GET_VEHICLE_SERVICE}", params={"lang": "km"}).text
    assert f'<h1 lang="km">{GET_VEHICLE_KM}</h1>' in page
    text = _text(page)
    assert KM("catalogue.doc.heading") in text
    assert KM("catalogue.service.call") in text
    assert KM("catalogue.class.personal") in text
    # The provider's Khmer texts are marked Khmer; the .proto comments (English) English.
    entry = web.get(f"/api/v1/catalogue/services/{GET_VEHICLE_SERVICE}").json()
    legal = entry["metadata"]["legal_basis"]
    assert f'<span lang="km">{legal["km"]}</span>' in page
    assert legal["en"] not in page
    comment = next(m["comment"] for m in entry["doc"]["messages"] if m["comment"])
    first = " ".join(comment.split("\n\n")[0].split())
    assert f'<p class="comment" lang="en">{html.escape(first, quote=False)}</p>' in page


def test_unknown_pages_are_404_pages_in_the_readers_language(web: TestClient) -> None:
    for path in ("/services/KH/GOV/MPWT/vehicles:/nope.v1.X/Y", "/members/KH/GOV/NOPE", "/nope"):
        answer = web.get(path, params={"lang": "km"})
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert f"<h1>{KM('catalogue.error.404.title')}</h1>" in answer.text
        assert "Traceback" not in answer.text
    answer = web.get("/services/KH/GOV/MPWT/vehicles:/nope.v1.X/Y")
    assert "service 'KH/GOV/MPWT/vehicles:/nope.v1.X/Y' is not in the catalogue" in _text(
        answer.text
    )
    # The API answers in JSON still.
    api = web.get("/api/v1/catalogue/services/KH/GOV/NOPE/x:/a.B/C")
    assert api.status_code == 404
    assert api.json()["status"] == "NOT_FOUND"
    assert web.get("/api/v1/nope").json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"data_class": "secret"}, "data class 'secret'"),
        ({"topic": "Not A Topic"}, "topic 'Not A Topic'"),
        ({"q": "x" * 201}, "longer than 200 characters"),
        ({"q": " ".join(["word"] * 13)}, "more than 12 words"),
        ({"page": "two"}, "page must be a number"),
        ({"page": "0"}, "page must be a number"),
        ({"member": "KH/GOV/NOPE"}, "member 'KH/GOV/NOPE'"),
    ],
)
def test_a_refused_query_is_a_400_page_naming_what_is_wrong(
    web: TestClient, params: dict[str, str], named: str
) -> None:
    answer = web.get("/", params=params)
    assert answer.status_code == 400
    text = _text(answer.text)
    assert EN("catalogue.error.400.title") in text
    assert named in text


def test_no_configuration_is_a_503_page(demo: DemoFederation, tmp_path: Path) -> None:
    service = _service(demo, tmp_path / "cache.signed")  # never started: nothing verified yet
    with TestClient(create_app(service)) as client:
        for path in ("/", f"/services/{GET_VEHICLE_SERVICE}", "/members/KH/GOV/MOH"):
            answer = client.get(path, params={"lang": "km"})
            assert answer.status_code == 503, path
            assert KM("catalogue.error.503.title") in _text(answer.text)
            assert "no verified global configuration" in answer.text
        assert client.get("/api/v1/catalogue").status_code == 503


def test_an_expired_configuration_is_a_503_page(demo: DemoFederation, tmp_path: Path) -> None:
    later = demo.conf.expires_at + dt.timedelta(seconds=1)
    service = _service(demo, tmp_path / "cache.signed", clock=lambda: later)
    service.start(refresh=False)
    try:
        with TestClient(create_app(service)) as client:
            answer = client.get("/")
            assert answer.status_code == 503
            assert "expired" in _text(answer.text)
    finally:
        service.stop()


def test_every_answer_has_the_security_headers_and_no_inline_script(web: TestClient) -> None:
    paths = [
        "/",
        "/?q=plate",
        "/members/KH/GOV/MOH",
        f"/services/{GET_VEHICLE_SERVICE}",
        "/nope",
        "/?page=x",
    ]
    for path in paths:
        answer = web.get(path)
        headers = answer.headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-cache"
        # Scripts only from files; no style attributes (the policy would drop them).
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text), path
        assert " style=" not in answer.text, path
        assert not re.search(r"<[^>]+\son[a-z]+=", answer.text), path
    static = web.get("/static/catalogue/copy.js")
    assert static.status_code == 200
    assert static.headers["cache-control"] == "public, max-age=86400"
    assert static.headers["x-content-type-options"] == "nosniff"


def test_pages_are_served_compressed(web: TestClient) -> None:
    answer = web.get(f"/services/{GET_VEHICLE_SERVICE}", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in answer.headers["vary"]
    plain = web.get(f"/services/{GET_VEHICLE_SERVICE}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.text == answer.text


def test_proto_comments_are_reflowed_into_paragraphs() -> None:
    comment = "Returns the vehicle\nregistered under a plate.\n\n  NOT_FOUND when\nnone.\n\n\n"
    assert pages.paragraphs(comment) == [
        "Returns the vehicle registered under a plate.",
        "NOT_FOUND when none.",
    ]
    assert pages.paragraphs("") == []


class _Broken(CatalogueService):
    """A catalogue with a bug: reading it fails with an exception of no known kind."""

    def current(self) -> Catalogue:
        raise RuntimeError("secret internal detail")


def test_a_bug_is_a_500_page_without_its_trace(demo: DemoFederation, tmp_path: Path) -> None:
    authority = demo.authority_dir
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        tmp_path / "cache.signed",
    )
    service = _Broken(client, open_index("sqlite://"))
    with TestClient(create_app(service), raise_server_exceptions=False) as web:
        answer = web.get("/services/x", params={"lang": "km"})
        assert answer.status_code == 500
        assert KM("catalogue.error.500.title") in _text(answer.text)
        api = web.get("/api/v1/catalogue")
        assert api.status_code == 500
        assert api.json()["status"] == "INTERNAL"
        for body in (answer.text, api.text):
            assert "secret internal detail" not in body
            assert "Traceback" not in body
        web.cookies.clear()
        assert web.post("/").status_code == 405
        assert EN("catalogue.error.400.title") in _text(web.post("/").text)
