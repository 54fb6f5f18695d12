"""The caller's deadline travels across both hops to the provider's database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT
from tests.support.exchanges import get_vehicle
from tests.support.plans import hospital_and_registry, vehicle_registry
from tests.support.world import World, running

# A statement that runs for many seconds unless the deadline stops it.
SLOW_MAPPING = """\
service: vehicles.v1.VehicleRegistry
descriptor: spean.demo.vehicles.v1.vehicles_pb2
database: sqlite:///slow.db
methods:
  GetVehicle:
    sql: >-
      WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000)
      SELECT :plate AS plate FROM c WHERE x = 500000000
    params: {plate: plate}
"""


def _prepare(folder: Path) -> None:
    (folder / "slow.yaml").write_text(SLOW_MAPPING)
    sqlite3.connect(folder / "slow.db").close()


@pytest.fixture
def slow_world(tmp_path: Path) -> Iterator[World]:
    registry = vehicle_registry(
        {"type": "sql", "mapping": "slow.yaml"}, [(GET_VEHICLE, False)], prepare=_prepare
    )
    plans = hospital_and_registry(registry)
    with running(build_federation(tmp_path, plans)) as world:
        yield world


def test_the_deadline_stops_the_providers_query(slow_world: World) -> None:
    start = time.monotonic()
    with slow_world.consumer_channel() as channel:
        answer = get_vehicle(channel, plate="2A-1001", timeout=2.0)
    elapsed = time.monotonic() - start
    assert answer.code is grpc.StatusCode.DEADLINE_EXCEEDED, answer.details
    # The provider's adapter observed the deadline and said so, and MoH passed it on;
    # on a loaded machine MoH's hop timeout may cut the provider off first.
    stopped = f"deadline exceeded while querying the database for {GET_VEHICLE}"
    cut_off = "the caller's deadline expired before the provider answered"
    assert answer.details in (stopped, cut_off)
    exchange_id = answer.exchange_id
    assert exchange_id
    assert elapsed < 6.0
    # The provider learnt the deadline: its adapter stopped the query itself,
    # long before the statement would have finished on its own.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        records = [r for r in slow_world.records(MPWT) if r.exchange_id == exchange_id]
        if records:
            break
        time.sleep(0.05)
    assert records, "the provider wrote no record"
    assert records[0].status == "DEADLINE_EXCEEDED"
    assert records[0].forwarded_at_ns > 0
    # Unstopped, the statement runs for tens of seconds.
    assert records[0].latency_us < 4_000_000
    assert records[0].message == stopped
    consumer = slow_world.record(MOH, exchange_id)
    assert consumer.status == "DEADLINE_EXCEEDED"
    assert consumer.message == answer.details
