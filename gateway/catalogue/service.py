"""The served catalogue: the configuration it follows, the catalogue built from it, its index.

`CatalogueService` reads the signed global configuration through the same
`GlobalConfigurationClient` a security server uses (the authority's folder or
URL, the configuration anchor, a local cache, periodic refresh), so the
catalogue shows only configurations that verify against the anchor, never
goes back to an older version, and follows every publication within its
refresh interval.

Invariants: on each new configuration the catalogue is rebuilt and the index
replaced *before* the new catalogue is installed, so a search never names a
service the held catalogue lacks; readers take the held pair with one
attribute read and need no lock; a configuration that has expired is not
served (`Unavailable`, as on the data path), even though its catalogue stays
in memory until a newer one arrives.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from spean.gateway.catalogue.index import SearchIndex
from spean.gateway.catalogue.model import (
    NO_STATISTICS,
    Catalogue,
    ServiceEntry,
    Statistics,
    build_catalogue,
)
from spean.gateway.catalogue.search import SearchQuery, documents
from spean.gateway.catalogue.snippets import PLACEHOLDER_ENDPOINT
from spean.gateway.errors import FailedPrecondition, Unavailable
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.server.globalconf_client import GlobalConfigurationClient

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of search results."""

    total: int
    services: tuple[ServiceEntry, ...]


class CatalogueService:
    """The catalogue of the latest verified configuration, searchable."""

    def __init__(
        self,
        configuration: GlobalConfigurationClient,
        index: SearchIndex,
        *,
        endpoint: str = PLACEHOLDER_ENDPOINT,
        base_url: str = "http://127.0.0.1",
        statistics: Statistics = NO_STATISTICS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.configuration = configuration
        self.index = index
        self.endpoint = endpoint
        self.base_url = base_url
        self._statistics = statistics
        self._clock = clock
        self._catalogue: Catalogue | None = None
        self._build_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self, *, refresh: bool = True) -> None:
        """Load the configuration (cache, then source), build, and follow it if `refresh`."""
        self._unsubscribe = self.configuration.subscribe(self._install)
        self.configuration.load_initial()
        if refresh:
            self.configuration.start()

    def stop(self) -> None:
        self.configuration.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.index.close()

    def current(self) -> Catalogue:
        catalogue = self._catalogue
        if catalogue is None:
            raise FailedPrecondition("the catalogue has no verified global configuration yet")
        if self._clock() >= catalogue.expires_at:
            raise Unavailable(
                f"global configuration version {catalogue.version} expired at"
                f" {catalogue.expires_at.isoformat()}; the catalogue waits for a newer one from"
                f" {self.configuration.source}"
            )
        return catalogue

    def search(self, query: SearchQuery) -> Page:
        catalogue = self.current()
        results = self.index.search(query)
        found = (catalogue.service(sid) for sid in results.service_ids)
        return Page(results.total, tuple(s for s in found if s is not None))

    def _install(self, conf: GlobalConfiguration) -> None:
        with self._build_lock:
            catalogue = build_catalogue(conf, endpoint=self.endpoint, statistics=self._statistics)
            self.index.replace(catalogue.version, documents(catalogue))
            self._catalogue = catalogue
        log.info(
            "catalogue.built",
            version=catalogue.version,
            members=len(catalogue.members),
            services=len(catalogue.services),
            index=self.index.backend,
        )
