"""Adapter.pool_status: how much of an adapter's connection pool is in use.

The SQL adapter reports its SQLAlchemy pool (on the demo's real SQLite
registry); an adapter without a pool reports None, the interface default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from spean.adapters import Adapter, CallContext, MethodKind, PoolStatus
from spean.adapters.sql import SqlAdapter
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo import data as demo_data

BY_OWNER = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


class _Echo(Adapter):
    def methods(self) -> Mapping[str, MethodKind]:
        return {"/echo.v1.Echo/Say": MethodKind.UNARY}

    def unary(self, ctx: CallContext, request: bytes) -> bytes:
        return request

    def stream(self, ctx: CallContext, request: bytes) -> Iterator[bytes]:
        yield request


@pytest.fixture
def vehicles(tmp_path: Path) -> Iterator[SqlAdapter]:
    demo_data.install_demo_services(tmp_path)
    adapter = SqlAdapter.from_file(tmp_path / "mpwt-vehicles.yaml")
    yield adapter
    adapter.stop()


def test_an_adapter_without_a_pool_reports_none() -> None:
    assert _Echo().pool_status() is None


def test_the_sql_adapter_reports_connections_lent_to_calls(vehicles: SqlAdapter) -> None:
    assert vehicles.pool_status() is None  # not started: no pool yet
    vehicles.start()
    idle = vehicles.pool_status()
    assert idle is not None
    options = vehicles.mapping.database
    assert idle == PoolStatus(
        checked_out=0, size=options.pool_size, max_overflow=options.max_overflow
    )
    assert idle.limit == options.pool_size + options.max_overflow
    # A stream holds its connection until its last row is read.
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=demo_data.SAMPLE_OWNER_WITH_VEHICLES)
    ctx = CallContext(method=BY_OWNER, exchange_id="ex-pool", client="KH/GOV/MOH/nhis")
    messages = vehicles.stream(ctx, request.SerializeToString())
    next(messages)
    busy = vehicles.pool_status()
    assert busy is not None
    assert busy.checked_out == 1
    messages.close()
    after = vehicles.pool_status()
    assert after is not None
    assert after.checked_out == 0
    vehicles.stop()
    assert vehicles.pool_status() is None
