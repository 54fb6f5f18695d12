"""The catalogue's JSON API over the demo federation: summary, members, subsystems, search in
English and Khmer with filters, a service's whole page, downloads, errors and OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from google.protobuf import descriptor_pb2

from spean.gateway.catalogue.api import create_app
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from tests.support.catalogue import (
    GET_VEHICLE_SERVICE,
    MONTHLY_REPORT_SERVICE,
    VERIFY_CITIZEN_SERVICE,
    DemoFederation,
)

API = "/api/v1/catalogue"


@pytest.fixture(scope="module")
def api(demo: DemoFederation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    authority = demo.authority_dir
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        tmp_path_factory.mktemp("api") / "cache.signed",
    )
    service = CatalogueService(
        client, open_index("sqlite://"), endpoint="10.0.0.5:8443", base_url="https://cat.example"
    )
    service.start(refresh=False)
    try:
        with TestClient(create_app(service)) as test_client:
            yield test_client
    finally:
        service.stop()


def test_the_summary_names_the_version_and_counts(api: TestClient, demo: DemoFederation) -> None:
    body = api.get(API).json()
    assert body["version"] == demo.conf.version
    assert (body["members"], body["subsystems"], body["services"]) == (3, 3, 5)
    assert "health" in body["topics"]


def test_members_list_their_subsystems(api: TestClient) -> None:
    members = {m["id"]: m for m in api.get(f"{API}/members").json()}
    assert members["KH/GOV/MPWT"]["name"] == "Ministry of Public Works and Transport"
    assert api.get(f"{API}/members/KH/GOV/MOI").json()["subsystems"] == ["KH/GOV/MOI/idreg"]
    subsystem = api.get(f"{API}/subsystems/KH/GOV/MOH/nhis").json()
    assert subsystem["metadata"]["data_class"] == "public"
    assert subsystem["metadata"]["licence"] == "https://creativecommons.org/licenses/by/4.0/"


def test_search_answers_in_the_language_asked(api: TestClient) -> None:
    body = api.get(f"{API}/services", params={"q": "យានយន្ត", "lang": "km"}).json()
    assert body["total"] == 2
    titles = {s["id"]: s["display_title"] for s in body["services"]}
    assert titles[GET_VEHICLE_SERVICE] == "រកមើលយានយន្តតាមស្លាកលេខ"
    english = api.get(f"{API}/services", params={"q": "plate"}).json()
    titles = {s["id"]: s["display_title"] for s in english["services"]}
    assert titles[GET_VEHICLE_SERVICE] == "Look up a vehicle by its plate"


def test_search_filters_by_ministry_topic_and_data_class(api: TestClient) -> None:
    def ids(**params: str) -> set[str]:
        return {s["id"] for s in api.get(f"{API}/services", params=params).json()["services"]}

    assert ids(data_class="public") == {MONTHLY_REPORT_SERVICE}
    assert ids(member="KH/GOV/MOI", q="verify") == {VERIFY_CITIZEN_SERVICE}
    assert ids(topic="transport", q="registry") == {
        GET_VEHICLE_SERVICE,
        GET_VEHICLE_SERVICE.replace("GetVehicle", "ListVehiclesByOwner"),
    }


def test_a_service_page_holds_its_documentation_access_and_snippets(api: TestClient) -> None:
    body = api.get(f"{API}/services/{GET_VEHICLE_SERVICE}").json()
    assert body["member_name"] == "Ministry of Public Works and Transport"
    assert body["allowed_clients"] == ["KH/GOV/MOH/nhis"]
    assert body["doc"]["request_type"] == "vehicles.v1.GetVehicleRequest"
    assert body["doc"]["example_request"] == {"plate": "string"}
    assert body["metadata"]["legal_basis"]["km"].startswith("ច្បាប់")
    assert "--endpoint 10.0.0.5:8443" in body["snippets"]["spean_call"]
    assert "grpc.insecure_channel('10.0.0.5:8443')" in body["snippets"]["python"]
    assert body["availability"] is None  # the statistics seam: no source yet
    # The same page with the identifier percent-encoded, as a browser may send it.
    encoded = api.get(f"{API}/services/{quote(GET_VEHICLE_SERVICE, safe='')}")
    assert encoded.json()["id"] == GET_VEHICLE_SERVICE


def test_the_descriptor_set_downloads_as_published(api: TestClient, demo: DemoFederation) -> None:
    answer = api.get(f"{API}/subsystems/KH/GOV/MPWT/vehicles/descriptors")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert "KH_GOV_MPWT_vehicles.binpb" in answer.headers["content-disposition"]
    files = descriptor_pb2.FileDescriptorSet.FromString(answer.content).file
    assert "spean/demo/vehicles/v1/vehicles.proto" in [f.name for f in files]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        (f"{API}/services/KH/GOV/MPWT/vehicles:/nope.v1.X/Y", 404, "is not in the catalogue"),
        (f"{API}/members/KH/GOV/NOBODY", 404, "member 'KH/GOV/NOBODY'"),
        (f"{API}/subsystems/KH/GOV/MOH/none/descriptors", 404, "subsystem 'KH/GOV/MOH/none'"),
        (f"{API}/services?topic=Not%20A%20Topic", 400, "is not a topic code"),
        (f"{API}/services?q={'w%20' * 13}", 400, "more than 12 words"),
    ],
)
def test_bad_requests_get_a_status_and_a_message(
    api: TestClient, path: str, status: int, says: str
) -> None:
    answer = api.get(path)
    assert answer.status_code == status
    assert says in answer.json()["error"]


@pytest.mark.parametrize(
    "params", [{"data_class": "secret"}, {"limit": "1000"}, {"lang": "fr"}, {"offset": "-1"}]
)
def test_malformed_parameters_are_named(api: TestClient, params: dict[str, str]) -> None:
    answer = api.get(f"{API}/services", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_the_openapi_document_lists_every_route(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert {
        API,
        f"{API}/services",
        f"{API}/services/{{service_id}}",
        f"{API}/members/{{member_id}}",
        f"{API}/subsystems/{{subsystem_id}}/descriptors",
        f"{API}/dcat.ttl",
        f"{API}/dcat.jsonld",
    } <= set(paths)
    assert "data_class" in {p["name"] for p in paths[f"{API}/services"]["get"]["parameters"]}


def test_dcat_downloads_name_their_media_types(api: TestClient) -> None:
    turtle = api.get(f"{API}/dcat.ttl")
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert "dcat:DataService" in turtle.text
    json_ld = api.get(f"{API}/dcat.jsonld")
    assert json_ld.headers["content-type"] == "application/ld+json"
    assert "https://cat.example/api/v1/catalogue/" in json_ld.text
