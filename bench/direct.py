"""The direct service: the demo's vehicle registry as a plain grpcio server.

This is what a ministry would run without any gateway: a gRPC service that
reads the same SQLite database as Spean's SQL adapter (the demo mapping
gateway/demo/mappings/mpwt-vehicles.yaml, written out by hand) and answers on
plaintext loopback. It is baseline (a) on its own and the upstream of the
nginx baseline (b). It counts its answers by status, so that the load
generator's success count (h2load sees HTTP statuses only) can be checked
against grpc-status on the server side; `/bench.v1.Counters/Get` returns the
counts as JSON.

    python -m bench.direct --database mpwt-vehicles.db --listen 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc

from spean.demo.vehicles.v1 import vehicles_pb2

COUNTERS_METHOD = "/bench.v1.Counters/Get"
GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
_COLUMNS = (
    "plate, vehicle_type, make, model, model_year, colour, engine_cc,"
    " registered_on, last_inspection, owner_id, tax_status"
)
_ZONE = dt.timezone(dt.timedelta(hours=7))  # Asia/Phnom_Penh, as the demo mapping says


def vehicle(row: tuple[Any, ...]) -> vehicles_pb2.Vehicle:
    """One `vehicles` row as the Vehicle message, converted as the demo mapping does."""
    plate, kind, make, model, year, colour, engine_cc, registered, inspected, owner, tax = row
    message = vehicles_pb2.Vehicle(
        plate=plate,
        type=f"VEHICLE_TYPE_{kind.upper()}",
        make=make,
        model=model,
        year=year,
        colour=colour,
        owner_id=owner,
        tax_status=f"TAX_STATUS_{tax.upper()}",
    )
    if engine_cc is not None:
        message.engine_cc = engine_cc
    day = dt.date.fromisoformat(registered)
    # A date is that day's midnight UTC; a date-time is local time (the mapping's zone).
    message.registration_date.FromDatetime(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
    if inspected is not None:
        message.last_inspection.FromDatetime(
            dt.datetime.fromisoformat(inspected).replace(tzinfo=_ZONE)
        )
    return message


class VehicleRegistry(grpc.GenericRpcHandler):
    """GetVehicle and ListVehiclesByOwner over one SQLite connection per thread."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._local = threading.local()
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            GET_VEHICLE: grpc.unary_unary_rpc_method_handler(
                self.get_vehicle,
                request_deserializer=vehicles_pb2.GetVehicleRequest.FromString,
                response_serializer=vehicles_pb2.Vehicle.SerializeToString,
            ),
            LIST_VEHICLES: grpc.unary_stream_rpc_method_handler(
                self.list_vehicles,
                request_deserializer=vehicles_pb2.ListVehiclesByOwnerRequest.FromString,
                response_serializer=vehicles_pb2.Vehicle.SerializeToString,
            ),
            COUNTERS_METHOD: grpc.unary_unary_rpc_method_handler(self.counters),
        }

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(handler_call_details.method)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{self._database}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _count(self, status: str) -> None:
        with self._lock:
            self.counts[status] += 1

    def get_vehicle(
        self, request: vehicles_pb2.GetVehicleRequest, context: grpc.ServicerContext
    ) -> vehicles_pb2.Vehicle:
        row = (
            self._connection()
            .execute(f"SELECT {_COLUMNS} FROM vehicles WHERE plate = ?", (request.plate,))
            .fetchone()
        )
        if row is None:
            self._count("NOT_FOUND")
            context.abort(grpc.StatusCode.NOT_FOUND, f"no vehicle with plate {request.plate}")
        self._count("OK")
        return vehicle(row)

    def list_vehicles(
        self, request: vehicles_pb2.ListVehiclesByOwnerRequest, context: grpc.ServicerContext
    ) -> Iterator[vehicles_pb2.Vehicle]:
        cursor = self._connection().execute(
            f"SELECT {_COLUMNS} FROM vehicles WHERE owner_id = ? ORDER BY plate",
            (request.owner_id,),
        )
        for row in cursor:
            yield vehicle(row)
        self._count("OK")

    def counters(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            return json.dumps(dict(self.counts)).encode()


def read_counters(address: str) -> dict[str, int]:
    """The direct service's answers so far, by status name."""
    with grpc.insecure_channel(address) as channel:
        get: Callable[..., bytes] = channel.unary_unary(COUNTERS_METHOD)
        counts: dict[str, int] = json.loads(get(b"", timeout=10))
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", required=True, help="the SQLite file of the vehicles table")
    parser.add_argument("--listen", required=True, help="host:port (loopback)")
    parser.add_argument("--workers", type=int, default=32, help="threads serving calls")
    args = parser.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="direct"),
        handlers=[VehicleRegistry(args.database)],
        options=[("grpc.so_reuseport", 0)],
    )
    if server.add_insecure_port(args.listen) == 0:
        raise SystemExit(f"cannot listen on {args.listen}")
    server.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    server.stop(2).wait()


if __name__ == "__main__":
    main()
