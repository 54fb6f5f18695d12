"""The catalogue as DCAT-AP 3 (pure): an RDF graph, written as Turtle or JSON-LD.

Shape of the graph (docs/catalogue.md, "DCAT-AP"):

- one `dcat:Catalog` for the federation, published by the authority
  (a `foaf:Agent`);
- each member is a `foaf:Agent` (publisher);
- each subsystem that publishes methods is a `dcat:Dataset`, "the data this
  subsystem serves": title, description, keywords (its topics), themes (the
  EU data-theme vocabulary where a topic maps to one), access rights from its
  data class, licence, contact points (`vcard:Kind`), legal basis, and one
  `dcat:Distribution` per method whose `dcat:accessService` is that method;
- each published method is a `dcat:DataService` that `dcat:servesDataset`
  its subsystem's dataset; its `dcat:endpointURL` is its entry in this
  catalogue's JSON API, which says how to reach it through one's own security
  server (a gRPC method has no public URL), and its
  `dcat:endpointDescription` is the subsystem's descriptor set download.

CKAN's DCAT harvester (ckanext-dcat) imports `dcat:Dataset`s with their
distributions and access services, which is why the subsystems are datasets
too. Each open dataset (gateway/opendata) is a further `dcat:Dataset` with
its licence and `dct:accrualPeriodicity`, and, once generated, one
`dcat:Distribution` per file format of its latest version: `dcat:downloadURL`,
`dcat:mediaType`, `dct:format`, `dcat:byteSize` and its SHA-256 as an
`spdx:Checksum`.

Texts carry language tags (``@en``, ``@km``); IRIs are built from the
catalogue's public base URL, so the same catalogue served at another address
names the same things differently but consistently. The graph is a value:
building it reads nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, SKOS

from spean.gateway.catalogue.model import Catalogue, ServiceEntry, SubsystemEntry
from spean.gateway.catalogue_metadata import CatalogueMetadata, Contact, OpenDataset, Text
from spean.gateway.opendata.model import MEDIA_TYPES, Version

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
IANA_MEDIA = "http://www.iana.org/assignments/media-types/"
FILE_TYPES = {"csv": "CSV", "json": "JSON", "parquet": "PARQUET"}
EU = "http://publications.europa.eu/resource/authority/"
ACCESS_RIGHTS = {
    "public": URIRef(EU + "access-right/PUBLIC"),
    "internal": URIRef(EU + "access-right/RESTRICTED"),
    "personal": URIRef(EU + "access-right/NON_PUBLIC"),
}
DATA_THEME = URIRef(EU + "data-theme")
# Topic codes that name an EU data theme; other topics are keywords only.
THEMES = {
    "agriculture": "AGRI",
    "economy": "ECON",
    "education": "EDUC",
    "energy": "ENER",
    "environment": "ENVI",
    "finance": "ECON",
    "government": "GOVE",
    "health": "HEAL",
    "identity": "GOVE",
    "international": "INTR",
    "justice": "JUST",
    "population": "SOCI",
    "regions": "REGI",
    "science": "TECH",
    "statistics": "SOCI",
    "transport": "TRAN",
    "vehicles": "TRAN",
}
LANGUAGES = {"en": URIRef(EU + "language/ENG"), "km": URIRef(EU + "language/KHM")}


def api_url(base_url: str, *parts: str) -> URIRef:
    """The IRI of a catalogue resource under the JSON API, identifiers kept readable."""
    path = "/".join(quote(p, safe="/:") for p in parts)
    return URIRef(f"{base_url.rstrip('/')}/api/v1/catalogue/{path}")


def open_datasets(catalogue: Catalogue) -> tuple[OpenDataset, ...]:
    """Every open dataset the catalogue's subsystems declare, in catalogue order."""
    return tuple(
        dataset
        for subsystem in catalogue.subsystems
        if subsystem.metadata is not None
        for dataset in subsystem.metadata.open_data
    )


def catalogue_graph(
    catalogue: Catalogue, base_url: str, latest: Mapping[str, Version] | None = None
) -> Graph:
    """The catalogue's graph.

    With `latest` (a catalogue that serves open data: the newest version of
    each generated dataset, possibly none yet), every declared open dataset is
    a `dcat:Dataset` too, with distributions once it has a version.
    """
    graph = Graph()
    graph.bind("dcat", DCAT)
    graph.bind("dct", DCTERMS)
    graph.bind("foaf", FOAF)
    graph.bind("vcard", VCARD)
    graph.bind("skos", SKOS)
    root = api_url(base_url, "")
    authority = api_url(base_url, "authority")
    graph.add((authority, RDF.type, FOAF.Agent))
    graph.add((authority, FOAF.name, Literal(f"{catalogue.instance} federation authority", "en")))
    graph.add((root, RDF.type, DCAT.Catalog))
    graph.add((root, DCTERMS.title, Literal(f"{catalogue.instance} federation catalogue", "en")))
    graph.add(
        (
            root,
            DCTERMS.description,
            Literal(
                f"Every service published in the {catalogue.instance} federation, from global"
                f" configuration version {catalogue.version}.",
                "en",
            ),
        )
    )
    graph.add((root, DCTERMS.publisher, authority))
    graph.add(
        (root, DCTERMS.modified, Literal(catalogue.issued_at.isoformat(), datatype=XSD.dateTime))
    )
    for language in LANGUAGES.values():
        graph.add((root, DCTERMS.language, language))
        graph.add((language, RDF.type, DCTERMS.LinguisticSystem))
    graph.add((root, DCAT.themeTaxonomy, DATA_THEME))
    graph.add((DATA_THEME, RDF.type, SKOS.ConceptScheme))
    graph.add((DATA_THEME, DCTERMS.title, Literal("Data theme", "en")))
    for member in catalogue.members:
        agent = api_url(base_url, "members", member.id)
        graph.add((agent, RDF.type, FOAF.Agent))
        graph.add((agent, FOAF.name, Literal(member.name or member.id, "en")))
        graph.add((agent, DCTERMS.identifier, Literal(member.id)))
    for subsystem in catalogue.subsystems:
        if not subsystem.services:
            continue
        dataset = _dataset(graph, subsystem, base_url)
        graph.add((root, DCAT.dataset, dataset))
        for sid in subsystem.services:
            service = catalogue.service(sid)
            assert service is not None  # the catalogue's own invariant
            node = _data_service(graph, service, dataset, base_url)
            graph.add((root, DCAT.service, node))
    for open_dataset in open_datasets(catalogue) if latest is not None else ():
        newest = latest.get(open_dataset.id) if latest is not None else None
        node = _open_dataset(graph, open_dataset, newest, base_url)
        graph.add((root, DCAT.dataset, node))
    return graph


def _open_dataset(
    graph: Graph, dataset: OpenDataset, version: Version | None, base_url: str
) -> URIRef:
    graph.bind("spdx", SPDX)
    node = api_url(base_url, "datasets", dataset.id)
    member = dataset.subsystem.rsplit("/", 1)[0]
    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCTERMS.identifier, Literal(dataset.id)))
    _texts(graph, node, DCTERMS.title, dataset.title)
    _texts(graph, node, DCTERMS.description, dataset.description)
    graph.add((node, DCTERMS.publisher, api_url(base_url, "members", member)))
    graph.add((node, DCTERMS.accessRights, ACCESS_RIGHTS["public"]))
    graph.add((ACCESS_RIGHTS["public"], RDF.type, DCTERMS.RightsStatement))
    licence = URIRef(dataset.licence_url)
    graph.add((node, DCTERMS.license, licence))
    graph.add((licence, RDF.type, DCTERMS.LicenseDocument))
    frequency = URIRef(f"{EU}frequency/{dataset.frequency}")
    graph.add((node, DCTERMS.accrualPeriodicity, frequency))
    graph.add((frequency, RDF.type, DCTERMS.Frequency))
    # Derived from the data its subsystem serves (that subsystem's dcat:Dataset).
    graph.add((node, DCTERMS.source, api_url(base_url, "subsystems", dataset.subsystem)))
    if version is None:
        return node
    graph.add(
        (node, DCTERMS.modified, Literal(version.generated_at.isoformat(), datatype=XSD.dateTime))
    )
    graph.add((node, URIRef(f"{DCAT}version"), Literal(str(version.number))))
    for entry in version.files:
        distribution = api_url(base_url, "datasets", dataset.id, f"{version.number}.{entry.format}")
        graph.add((distribution, RDF.type, DCAT.Distribution))
        graph.add(
            (
                distribution,
                DCTERMS.title,
                Literal(f"{dataset.title.en} ({FILE_TYPES[entry.format]})", "en"),
            )
        )
        latest_url = api_url(base_url, "datasets", dataset.id, f"latest.{entry.format}")
        graph.add((distribution, DCAT.accessURL, latest_url))
        graph.add((distribution, DCAT.downloadURL, distribution))
        graph.add((latest_url, RDF.type, RDFS.Resource))
        graph.add((distribution, RDF.type, RDFS.Resource))
        media = URIRef(IANA_MEDIA + MEDIA_TYPES[entry.format])
        graph.add((distribution, DCAT.mediaType, media))
        graph.add((media, RDF.type, DCTERMS.MediaType))
        file_type = URIRef(f"{EU}file-type/{FILE_TYPES[entry.format]}")
        graph.add((distribution, DCTERMS.format, file_type))
        graph.add((file_type, RDF.type, DCTERMS.MediaTypeOrExtent))
        graph.add(
            (distribution, DCAT.byteSize, Literal(entry.size, datatype=XSD.nonNegativeInteger))
        )
        graph.add((distribution, DCTERMS.license, licence))
        checksum = BNode()
        graph.add((checksum, RDF.type, SPDX.Checksum))
        graph.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        graph.add((SPDX.checksumAlgorithm_sha256, RDF.type, SPDX.ChecksumAlgorithm))
        graph.add((checksum, SPDX.checksumValue, Literal(entry.sha256, datatype=XSD.hexBinary)))
        graph.add((distribution, SPDX.checksum, checksum))
        graph.add((node, DCAT.distribution, distribution))
    return node


def to_turtle(graph: Graph) -> str:
    return graph.serialize(format="turtle")


def to_json_ld(graph: Graph) -> str:
    context = {"dcat": str(DCAT), "dct": str(DCTERMS), "foaf": str(FOAF), "vcard": str(VCARD)}
    context["skos"] = str(SKOS)
    return graph.serialize(format="json-ld", context=context, indent=2)


def _texts(graph: Graph, node: URIRef | BNode, predicate: URIRef, text: Text) -> None:
    graph.add((node, predicate, Literal(text.en, "en")))
    if text.km:
        graph.add((node, predicate, Literal(text.km, "km")))


def _dataset(graph: Graph, subsystem: SubsystemEntry, base_url: str) -> URIRef:
    dataset = api_url(base_url, "subsystems", subsystem.id)
    graph.add((dataset, RDF.type, DCAT.Dataset))
    graph.add((dataset, DCTERMS.identifier, Literal(subsystem.id)))
    graph.add((dataset, DCTERMS.publisher, api_url(base_url, "members", subsystem.member)))
    meta = subsystem.metadata
    if meta is None:
        # Not described yet: listed all the same, under its identifier.
        graph.add((dataset, DCTERMS.title, Literal(subsystem.name or subsystem.id, "en")))
        graph.add(
            (
                dataset,
                DCTERMS.description,
                Literal(f"Services of {subsystem.id}; its provider has not described it.", "en"),
            )
        )
        return dataset
    _texts(graph, dataset, DCTERMS.title, meta.title)
    _texts(graph, dataset, DCTERMS.description, meta.description)
    _describe(graph, dataset, meta)
    for topic in meta.topics:
        graph.add((dataset, DCAT.keyword, Literal(topic, "en")))
        code = THEMES.get(topic)
        if code is not None:
            theme = URIRef(f"{DATA_THEME}/{code}")
            graph.add((dataset, DCAT.theme, theme))
            graph.add((theme, RDF.type, SKOS.Concept))
            graph.add((theme, SKOS.inScheme, DATA_THEME))
            graph.add((theme, SKOS.prefLabel, Literal(code, "en")))
    for contact in meta.contacts:
        graph.add((dataset, DCAT.contactPoint, _contact(graph, contact)))
    if meta.legal_basis is not None:
        # dcatap:applicableLegislation wants an ELI IRI; a provider names its law in words.
        statement = BNode()
        graph.add((statement, RDF.type, DCTERMS.RightsStatement))
        _texts(graph, statement, DCTERMS.description, meta.legal_basis)
        graph.add((dataset, DCTERMS.rights, statement))
    if meta.updated_at is not None:
        graph.add(
            (dataset, DCTERMS.modified, Literal(meta.updated_at.isoformat(), datatype=XSD.dateTime))
        )
    return dataset


def _describe(graph: Graph, node: URIRef, meta: CatalogueMetadata) -> None:
    """Access rights and licence, shared by a dataset and its services."""
    rights = ACCESS_RIGHTS[meta.data_class]
    graph.add((node, DCTERMS.accessRights, rights))
    graph.add((rights, RDF.type, DCTERMS.RightsStatement))
    if meta.licence:
        licence = URIRef(meta.licence)
        graph.add((node, DCTERMS.license, licence))
        graph.add((licence, RDF.type, DCTERMS.LicenseDocument))


def _contact(graph: Graph, contact: Contact) -> BNode:
    node = BNode()
    graph.add((node, RDF.type, VCARD.Kind))
    graph.add((node, VCARD.fn, Literal(contact.name)))
    if contact.email:
        graph.add((node, VCARD.hasEmail, URIRef(f"mailto:{contact.email}")))
    if contact.telephone:
        telephone = "".join(c for c in contact.telephone if c.isdigit() or c == "+")
        graph.add((node, VCARD.hasTelephone, URIRef(f"tel:{telephone}")))
    return node


def _data_service(graph: Graph, service: ServiceEntry, dataset: URIRef, base_url: str) -> URIRef:
    node = api_url(base_url, "services", service.id)
    graph.add((node, RDF.type, DCAT.DataService))
    graph.add((node, DCTERMS.identifier, Literal(service.id)))
    _texts(graph, node, DCTERMS.title, service.title)
    if service.comment:
        graph.add((node, DCTERMS.description, Literal(service.comment, "en")))
    descriptors = api_url(base_url, "subsystems", service.subsystem, "descriptors")
    graph.add((node, DCAT.endpointURL, node))
    graph.add((node, DCAT.endpointDescription, descriptors))
    # DCAT-AP's shapes want these typed; without RDFS inference nothing else says so.
    graph.add((node, RDF.type, RDFS.Resource))
    graph.add((descriptors, RDF.type, RDFS.Resource))
    graph.add((node, DCAT.servesDataset, dataset))
    graph.add((node, DCTERMS.publisher, api_url(base_url, "members", service.member)))
    if service.metadata is not None:
        _describe(graph, node, service.metadata)
        for contact in service.metadata.contacts:
            graph.add((node, DCAT.contactPoint, _contact(graph, contact)))
    distribution = BNode()
    graph.add((distribution, RDF.type, DCAT.Distribution))
    _texts(graph, distribution, DCTERMS.title, service.title)
    graph.add((distribution, DCAT.accessURL, node))
    graph.add((distribution, DCAT.accessService, node))
    if service.metadata is not None and service.metadata.licence:
        graph.add((distribution, DCTERMS.license, URIRef(service.metadata.licence)))
    graph.add((dataset, DCAT.distribution, distribution))
    return node
