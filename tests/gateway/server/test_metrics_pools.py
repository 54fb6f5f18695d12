"""Adapter pool gauges of ServerMetrics, read at scrape time from a pools callback."""

from __future__ import annotations

from spean.adapters.base import PoolStatus
from spean.gateway.server.metrics import ServerMetrics

VEHICLES = "KH/GOV/MPWT/vehicles"


def test_pool_use_is_read_at_each_scrape() -> None:
    pools = {VEHICLES: PoolStatus(checked_out=2, size=5, max_overflow=10)}
    metrics = ServerMetrics(
        server_id="KH/GOV/MPWT/ss1",
        origin="KH/GOV/MPWT/ss1#w0",
        certificates=dict,
        pools=lambda: dict(pools),
    )
    sample = metrics.registry.get_sample_value
    labels = {"service": VEHICLES}
    assert sample("spean_adapter_pool_checked_out", labels) == 2
    assert sample("spean_adapter_pool_size", labels) == 5
    assert sample("spean_adapter_pool_limit", labels) == 15
    pools[VEHICLES] = PoolStatus(checked_out=0, size=5, max_overflow=10)
    assert sample("spean_adapter_pool_checked_out", labels) == 0
    pools.clear()  # an adapter without a pool, or a consumer-only server: no series
    assert sample("spean_adapter_pool_checked_out", labels) is None


def test_no_pools_by_default() -> None:
    metrics = ServerMetrics(
        server_id="KH/GOV/MOH/ss1", origin="KH/GOV/MOH/ss1#w0", certificates=dict
    )
    assert (
        metrics.registry.get_sample_value("spean_adapter_pool_size", {"service": VEHICLES}) is None
    )
