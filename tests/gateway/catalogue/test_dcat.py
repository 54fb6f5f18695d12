"""The catalogue in DCAT-AP 3: it validates against the official SHACL shapes, as Turtle and as
JSON-LD, and carries what CKAN's DCAT harvester imports (datasets, distributions, access
services, publishers, contact points, texts in English and Khmer)."""

from __future__ import annotations

from pathlib import Path

import pyshacl
import pytest
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF

from spean.gateway.catalogue import dcat
from spean.gateway.catalogue.model import build_catalogue
from tests.support.catalogue import GET_VEHICLE_SERVICE, DemoFederation, demo_catalogue
from tests.support.conf import PureFederation

# rdflib's own JSON-LD parser still builds a ConjunctiveGraph inside; nothing of Spean's does.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

SHAPES = Path(__file__).resolve().parent / "shapes" / "dcat-ap-3.0.0-SHACL.jsonld"
BASE = "https://catalogue.example.gov.kh"


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(SHAPES, format="json-ld")


def conforms(graph: Graph, shapes: Graph) -> tuple[bool, str]:
    # No inference: what the graph says is what is checked.
    ok, _, text = pyshacl.validate(graph, shacl_graph=shapes, inference="none")
    return bool(ok), str(text)


def test_the_demo_catalogue_conforms_as_turtle_and_as_json_ld(
    demo: DemoFederation, shapes: Graph
) -> None:
    graph = dcat.catalogue_graph(demo_catalogue(demo), BASE)
    for text, kind in ((dcat.to_turtle(graph), "turtle"), (dcat.to_json_ld(graph), "json-ld")):
        parsed = Graph().parse(data=text, format=kind)
        assert len(parsed) == len(graph)
        ok, report = conforms(parsed, shapes)
        assert ok, report


def test_the_shapes_refuse_a_data_service_without_a_title(
    demo: DemoFederation, shapes: Graph
) -> None:
    graph = dcat.catalogue_graph(demo_catalogue(demo), BASE)
    service = dcat.api_url(BASE, "services", GET_VEHICLE_SERVICE)
    graph.remove((service, DCTERMS.title, None))
    ok, report = conforms(graph, shapes)
    assert not ok
    assert "Results (1):" in report
    assert "MinCountConstraintComponent" in report
    assert "dcterms:title" in report


def test_a_catalogue_with_undescribed_subsystems_conforms(shapes: Graph) -> None:
    graph = dcat.catalogue_graph(build_catalogue(PureFederation().conf), BASE)
    assert set(graph.subjects(RDF.type, DCAT.DataService))
    ok, report = conforms(graph, shapes)
    assert ok, report


def test_what_ckan_imports_is_there(demo: DemoFederation) -> None:
    graph = dcat.catalogue_graph(demo_catalogue(demo), BASE)
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 3  # one per providing subsystem
    vehicles = dcat.api_url(BASE, "subsystems", "KH/GOV/MPWT/vehicles")
    assert vehicles in datasets
    assert Literal("Vehicle registry", lang="en") in graph.objects(vehicles, DCTERMS.title)
    assert Literal("បញ្ជីយានយន្ត", lang="km") in graph.objects(vehicles, DCTERMS.title)
    assert {str(k) for k in graph.objects(vehicles, DCAT.keyword)} == {"transport", "vehicles"}
    assert URIRef(dcat.EU + "data-theme/TRAN") in set(graph.objects(vehicles, DCAT.theme))
    assert graph.value(vehicles, DCTERMS.accessRights) == dcat.ACCESS_RIGHTS["personal"]
    publisher = graph.value(vehicles, DCTERMS.publisher)
    assert str(graph.value(publisher, FOAF.name)) == "Ministry of Public Works and Transport"
    contacts = list(graph.objects(vehicles, DCAT.contactPoint))
    emails = {str(graph.value(c, dcat.VCARD.hasEmail)) for c in contacts}
    assert "mailto:vehicles@mpwt.example" in emails
    distributions = list(graph.objects(vehicles, DCAT.distribution))
    assert len(distributions) == 2
    services = {graph.value(d, DCAT.accessService) for d in distributions}
    assert dcat.api_url(BASE, "services", GET_VEHICLE_SERVICE) in services
    for service in services:
        assert (service, RDF.type, DCAT.DataService) in graph
        assert graph.value(service, DCAT.servesDataset) == vehicles
    health = dcat.api_url(BASE, "subsystems", "KH/GOV/MOH/nhis")
    licence = URIRef("https://creativecommons.org/licenses/by/4.0/")
    assert graph.value(health, DCTERMS.license) == licence
