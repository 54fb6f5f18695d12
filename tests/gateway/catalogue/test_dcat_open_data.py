"""Open datasets in the catalogue's DCAT-AP 3: a generated dataset validates against the
official SHACL shapes with a distribution per format, its checksum, licence and frequency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyshacl
import pytest
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, XSD

from spean.gateway.catalogue import dcat
from spean.gateway.opendata.model import FileEntry, Version
from tests.support.catalogue import DemoFederation, demo_catalogue

pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

SHAPES = Path(__file__).resolve().parent / "shapes" / "dcat-ap-3.0.0-SHACL.jsonld"
BASE = "https://catalogue.example.gov.kh"
DATASET = "moh-chamkar-mon-2024"  # declared by the demo's MoH metadata
VERSION = Version(
    number=3,
    generated_at=dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC),
    rows=12,
    files=tuple(
        FileEntry(fmt, f"{DATASET}-v3.{ext}", f"{n:064x}", 1000 + n)  # type: ignore[arg-type]
        for n, (fmt, ext) in enumerate((("csv", "csv"), ("json", "jsonl"), ("parquet", "parquet")))
    ),
    exchange_ids=("ex",),
    configuration_version=1,
)


@pytest.fixture(scope="module")
def graph(demo: DemoFederation) -> Graph:
    return dcat.catalogue_graph(demo_catalogue(demo), BASE, {DATASET: VERSION})


def test_a_catalogue_with_open_datasets_conforms(graph: Graph) -> None:
    shapes = Graph().parse(SHAPES, format="json-ld")
    for text, kind in ((dcat.to_turtle(graph), "turtle"), (dcat.to_json_ld(graph), "json-ld")):
        parsed = Graph().parse(data=text, format=kind)
        ok, _, report = pyshacl.validate(parsed, shacl_graph=shapes, inference="none")
        assert ok, report


def test_each_format_is_a_distribution_with_its_checksum(graph: Graph) -> None:
    node = dcat.api_url(BASE, "datasets", DATASET)
    assert (node, RDF.type, DCAT.Dataset) in graph
    frequency = URIRef(dcat.EU + "frequency/MONTHLY")
    assert graph.value(node, DCTERMS.accrualPeriodicity) == frequency
    licence = URIRef("https://spdx.org/licenses/CC-BY-4.0.html")
    assert graph.value(node, DCTERMS.license) == licence
    distributions = set(graph.objects(node, DCAT.distribution))
    assert len(distributions) == 3
    parquet = dcat.api_url(BASE, "datasets", DATASET, "3.parquet")
    assert parquet in distributions
    assert graph.value(parquet, DCAT.downloadURL) == parquet
    media = URIRef("http://www.iana.org/assignments/media-types/application/vnd.apache.parquet")
    assert graph.value(parquet, DCAT.mediaType) == media
    checksum = graph.value(parquet, dcat.SPDX.checksum)
    expected = Literal(VERSION.files[2].sha256, datatype=XSD.hexBinary)
    assert graph.value(checksum, dcat.SPDX.checksumValue) == expected
    assert graph.value(checksum, dcat.SPDX.algorithm) == dcat.SPDX.checksumAlgorithm_sha256
    assert graph.value(parquet, DCAT.byteSize) == Literal(1002, datatype=XSD.nonNegativeInteger)


def test_a_dataset_not_generated_yet_has_no_distribution(demo: DemoFederation) -> None:
    graph = dcat.catalogue_graph(demo_catalogue(demo), BASE, {})
    node = dcat.api_url(BASE, "datasets", DATASET)
    assert (node, RDF.type, DCAT.Dataset) in graph
    assert list(graph.objects(node, DCAT.distribution)) == []
    without = dcat.catalogue_graph(demo_catalogue(demo), BASE)
    assert (node, RDF.type, DCAT.Dataset) not in without  # a catalogue without open data
