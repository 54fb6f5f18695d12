"""The served catalogue follows the authority: it reads the signed configuration from the
authority's folder, rebuilds on each publication, and refuses to serve an expired one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spean.gateway.authority.describe import parse_document
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.search import SearchQuery
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.demo.ministries import build_demo
from spean.gateway.errors import FailedPrecondition, Unavailable
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from tests.support.catalogue import GET_VEHICLE_SERVICE


def served(authority: Path, cache: Path, **kwargs: object) -> CatalogueService:
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        cache,
    )
    return CatalogueService(client, open_index("sqlite://"), **kwargs)  # type: ignore[arg-type]


def test_a_new_publication_reaches_the_catalogue_and_its_search(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "demo")
    service = served(tmp_path / "demo" / "authority", tmp_path / "cache.signed")
    with pytest.raises(FailedPrecondition, match="no verified global configuration"):
        service.current()
    service.start(refresh=False)
    try:
        assert service.current().version == 1
        assert service.search(SearchQuery("bicycles")).total == 0
        # MPWT says its registry now covers bicycles too; the authority publishes.
        document = parse_document(
            {
                "title": {"en": "Vehicle and bicycle registry"},
                "description": {"en": "Registered vehicles and bicycles."},
                "topics": ["transport"],
                "data_class": "internal",
                "contacts": [{"name": "MPWT desk", "email": "desk@mpwt.example"}],
            },
            "test",
        )
        federation.authority.describe("KH/GOV/MPWT/vehicles", document)
        federation.authority.publish()
        assert service.configuration.refresh() is True
        assert service.current().version == 2
        page = service.search(SearchQuery("bicycles"))
        assert {s.id for s in page.services} == {
            GET_VEHICLE_SERVICE,
            GET_VEHICLE_SERVICE.replace("GetVehicle", "ListVehiclesByOwner"),
        }
        assert page.services[0].metadata is not None
        assert page.services[0].metadata.data_class == "internal"
        assert service.index.version() == 2
    finally:
        service.stop()


def test_an_expired_configuration_is_not_served(tmp_path: Path) -> None:
    build_demo(tmp_path / "demo")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    service = served(
        tmp_path / "demo" / "authority", tmp_path / "cache.signed", clock=lambda: later
    )
    service.start(refresh=False)
    try:
        with pytest.raises(Unavailable, match="expired at"):
            service.search(SearchQuery("health"))
    finally:
        service.stop()
