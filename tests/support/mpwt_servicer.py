"""An IT team's VehicleRegistry servicer, as the adapter tests and stories use it.

The same class serves a plain gRPC server on loopback (the "existing internal
service" behind the pass-through adapter) and runs in-process behind the
Python adapter. Special plates and owners make it misbehave on purpose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from spean.demo.vehicles.v1 import vehicles_pb2, vehicles_pb2_grpc
from spean.gateway.demo import data as demo_data

OWNER = demo_data.SAMPLE_OWNER_WITH_VEHICLES
VEHICLES = {
    plate: vehicles_pb2.Vehicle(
        plate=plate,
        type=vehicles_pb2.VEHICLE_TYPE_CAR,
        make="Toyota",
        model="Camry",
        year=2012 + index,
        owner_id=OWNER,
        tax_status=vehicles_pb2.TAX_STATUS_PAID,
    )
    for index, plate in enumerate(demo_data.SAMPLE_OWNER_PLATES)
}
SECRET = "the database password is hunter2"

# Set when a server stream ends early (the caller went away); tests wait on it.
STREAM_CLOSED = threading.Event()


class VehicleRegistry(vehicles_pb2_grpc.VehicleRegistryServicer):
    """Answers from a small in-memory registry."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def GetVehicle(
        self, request: vehicles_pb2.GetVehicleRequest, context: grpc.ServicerContext
    ) -> vehicles_pb2.Vehicle:
        plate = request.plate
        if plate in VEHICLES:
            return VEHICLES[plate]
        if plate == "":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "plate is required")
        if plate == "SECRET-1":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this plate is classified")
        if plate == "UNAUTH":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you")
        if plate == "BUSY":
            context.abort(grpc.StatusCode.UNAVAILABLE, f"registry overloaded; {SECRET}")
        if plate == "CRASH":
            raise RuntimeError(SECRET)
        if plate == "SETCODE":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details("vehicle deregistered")
            return vehicles_pb2.Vehicle()
        if plate == "WRONGTYPE":
            return vehicles_pb2.GetVehicleRequest(plate=plate)  # type: ignore[return-value]
        if plate == "SLOW":
            remaining = context.time_remaining()
            time.sleep(min(3.0, (remaining if remaining is not None else 3.0) + 0.3))
            return vehicles_pb2.Vehicle(plate=plate)
        if plate == "WHO":
            seen = dict(context.invocation_metadata())
            return vehicles_pb2.Vehicle(
                plate=plate,
                owner_id=str(seen.get("spean-client", "")),
                make=str(seen.get("spean-user", "")),
                model=str(seen.get("spean-purpose", "")),
                colour=str(seen.get("spean-exchange-id", "")),
            )
        context.abort(grpc.StatusCode.NOT_FOUND, f"no vehicle with plate {plate}")

    def ListVehiclesByOwner(
        self, request: vehicles_pb2.ListVehiclesByOwnerRequest, context: grpc.ServicerContext
    ) -> Iterator[vehicles_pb2.Vehicle]:
        owner = request.owner_id
        if owner == OWNER:
            yield from VEHICLES.values()
        elif owner.startswith("MANY:"):
            for index in range(int(owner[5:])):
                yield vehicles_pb2.Vehicle(plate=f"M-{index:05d}", owner_id=owner)
        elif owner == "FAILMID":
            yield VEHICLES[demo_data.SAMPLE_PLATE]
            context.abort(grpc.StatusCode.UNAVAILABLE, "registry went away")
        elif owner == "ENDLESS":
            STREAM_CLOSED.clear()
            context.add_callback(STREAM_CLOSED.set)  # a cancelled call ends here on a server
            try:
                index = 0
                while context.is_active():
                    yield vehicles_pb2.Vehicle(plate=f"E-{index}")
                    index += 1
                    time.sleep(0.005)
            finally:
                STREAM_CLOSED.set()
        elif owner == "CRASH":
            yield VEHICLES[demo_data.SAMPLE_PLATE]
            raise RuntimeError(SECRET)
