"""Calling the SQL adapter directly, as the provider does, without any server.

`running` starts an adapter from its mapping file and stops it afterwards;
`call` is the `CallContext` the provider would pass; `get_vehicle` is the
demo's GetVehicle through the adapter (bytes in, bytes out, decoded here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from spean.adapters import CallContext
from spean.adapters.sql import SqlAdapter
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo.ministries import GET_VEHICLE, NHIS


def call(method: str, deadline: float | None = None) -> CallContext:
    """The context of one exchange calling `method` for the hospital application."""
    return CallContext(method=method, exchange_id="ex-test", client=NHIS, deadline=deadline)


def get_vehicle(adapter: SqlAdapter, plate: str) -> vehicles_pb2.Vehicle:
    """GetVehicle of `plate` through `adapter`: the vehicle, or the adapter's error raised."""
    request = vehicles_pb2.GetVehicleRequest(plate=plate).SerializeToString()
    return vehicles_pb2.Vehicle.FromString(adapter.unary(call(GET_VEHICLE), request))


@contextlib.contextmanager
def running(path: Path) -> Iterator[SqlAdapter]:
    """The adapter of mapping file `path`, started, until the block ends."""
    adapter = SqlAdapter.from_file(path)
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()
