"""The traffic index: filled incrementally from a real audit store (SQLite and
PostgreSQL), rebuilt when deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.merkle import leaf_hash
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.management.statistics import window
from spean.gateway.management.traffic_index import Filters, TrafficIndex
from tests.support.databases import postgres_schema

SERVER = "KH/GOV/MPWT/ss1"
NS = 1_000_000_000
T0 = 1_790_000_000 * NS


def _record(origin: str, n: int, status: str = "OK") -> AuditRecord:
    return AuditRecord(
        exchange_id=f"ex-{origin[-2:]}-{n}",
        side=Side.PROVIDER,
        origin=origin,
        received_at_ns=T0 + n * NS,
        status=status,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/v.V/Get",
        latency_us=1500,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh audit store of each backend (PostgreSQL: a schema of its own)."""
    if request.param == "sqlite":
        yield str(tmp_path / "audit.sqlite")
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


def test_index_follows_every_origin_of_this_server_only(tmp_path: Path, store_url: str) -> None:
    url = store_url
    w0, w1, other = (
        open_store(url, f"{SERVER}#w0"),
        open_store(url, f"{SERVER}#w1"),
        open_store(url, "KH/GOV/MOH/ss1#w0"),
    )
    try:
        for n in range(3):
            w0.append(_record(w0.origin, n))
        w1.append(_record(w1.origin, 0, "PERMISSION_DENIED"))
        other.append(_record(other.origin, 0))
        index = TrafficIndex(tmp_path / "index.sqlite", w0, SERVER)
        assert index.catch_up() == 4
        assert index.catch_up() == 0
        w0.append(_record(w0.origin, 3))
        assert index.catch_up() == 1
        denied = index.search(Filters(status="PERMISSION_DENIED"), 10, None)
        assert [(r.origin, r.exchange_id) for r in denied] == [(f"{SERVER}#w1", "ex-w1-0")]
        newest = index.search(Filters(), 2, None)
        assert [r.exchange_id for r in newest] == ["ex-w0-3", "ex-w0-2"]
        counts = index.counts(window("1h", T0 + 10 * NS), side=None)
        assert sum(c.calls for c in counts) == 5
        first = next(w0.read(0, 1))
        assert index.leaf_hashes(w0.origin, 0, 1) == [leaf_hash(first.record_bytes)]
        index.close()
        # Derived only: a deleted index is rebuilt from the store.
        (tmp_path / "index.sqlite").unlink()
        rebuilt = TrafficIndex(tmp_path / "index.sqlite", w0, SERVER)
        assert rebuilt.catch_up() == 5
        rebuilt.close()
    finally:
        for store in (w0, w1, other):
            store.close()
