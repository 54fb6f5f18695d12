"""MPWT publishes its existing internal gRPC service through the pass-through adapter.

The internal VehicleRegistry runs as a plain gRPC server on loopback, as it
would inside the ministry. MPWT's security server forwards to it; the
hospital (KH/GOV/MOH/nhis) calls through MoH's security server as with any
other service. MPWT's operator also drops `make` from what the hospital
receives, which works because the adapter names the service's descriptor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2, vehicles_pb2_grpc
from spean.gateway.admission import ALLOWED_METHODS
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation, free_port
from spean.gateway.demo.ministries import GET_VEHICLE, LIST_VEHICLES, MOH, MPWT, NHIS, VEHICLES
from spean.gateway.digests import response_digest
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, SERVICE, USER
from spean.v1 import metaservices_pb2
from tests.support import mpwt_servicer
from tests.support.plans import hospital_and_registry, vehicle_registry

AS_NHIS = ((CLIENT, NHIS), (SERVICE, VEHICLES))


def _internal(address: str) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    vehicles_pb2_grpc.add_VehicleRegistryServicer_to_server(mpwt_servicer.VehicleRegistry(), server)
    server.add_insecure_port(address)
    server.start()
    return server


@dataclass
class Ministries:
    federation: Federation
    internal_address: str
    internal: grpc.Server

    def records(self, member: str, exchange_id: str) -> list[AuditRecord]:
        return [
            record
            for record in (
                AuditRecord.from_bytes(r.record_bytes)
                for r in self.federation.servers[member].audit.read()
            )
            if record.exchange_id == exchange_id
        ]


@pytest.fixture(scope="module")
def ministries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ministries]:
    address = f"127.0.0.1:{free_port()}"
    internal = _internal(address)
    adapter = {
        "type": "grpc",
        "target": address,
        "descriptor": "spean.demo.vehicles.v1.vehicles_pb2",
        "service": "vehicles.v1.VehicleRegistry",
    }
    methods = [(GET_VEHICLE, False), (LIST_VEHICLES, True)]
    plans = hospital_and_registry(vehicle_registry(adapter, methods))
    federation = build_federation(tmp_path_factory.mktemp("passthrough"), plans)
    config = federation.configs[MPWT]
    document = yaml.safe_load(config.read_text())
    document["provider"]["access"][0]["minimise"] = [{"method": GET_VEHICLE, "drop": ["make"]}]
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    world = Ministries(federation, address, internal)
    with federation.running():
        yield world
    world.internal.stop(None)


def _exchange_id(call: grpc.Call) -> str:
    return str(dict(call.trailing_metadata() or ())[EXCHANGE_ID])


def assert_refused_on_both_sides(ministries: Ministries, error: grpc.Call) -> AuditRecord:
    """Both logs hold the failed exchange under its id, with the status and message sent."""
    exchange_id = _exchange_id(error)
    (consumer,) = ministries.records(MOH, exchange_id)
    (provider,) = ministries.records(MPWT, exchange_id)
    for record in (consumer, provider):
        assert record.status == error.code().name
        assert record.message == error.details()
        assert record.response_messages == 0
    assert provider.forwarded_at_ns > 0  # the adapter was called and answered this
    assert provider.response_token  # the provider signed the failure
    assert consumer.response_token == provider.response_token
    return provider


def _channel(ministries: Ministries) -> grpc.Channel:
    return grpc.insecure_channel(ministries.federation.consumer_addresses[MOH])


def test_the_hospital_reads_a_vehicle_from_the_internal_service(ministries: Ministries) -> None:
    with _channel(ministries) as channel:
        stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
        vehicle, call = stub.GetVehicle.with_call(
            vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE),
            metadata=(*AS_NHIS, (USER, "dr-chan")),
            timeout=10,
        )
    expected = vehicles_pb2.Vehicle()
    expected.CopyFrom(mpwt_servicer.VEHICLES[demo_data.SAMPLE_PLATE])
    expected.ClearField("make")  # minimised by MPWT for the hospital
    assert vehicle == expected
    exchange_id = _exchange_id(call)
    (consumer,) = ministries.records(MOH, exchange_id)
    (provider,) = ministries.records(MPWT, exchange_id)
    assert consumer.status == provider.status == "OK"
    assert provider.response_sha256 == response_digest([vehicle.SerializeToString()])
    assert provider.user == "dr-chan"


def test_a_stream_crosses_both_hops(ministries: Ministries) -> None:
    with _channel(ministries) as channel:
        stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
        call = stub.ListVehiclesByOwner(
            vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=mpwt_servicer.OWNER),
            metadata=AS_NHIS,
            timeout=10,
        )
        vehicles = list(call)
    assert [v.plate for v in vehicles] == list(demo_data.SAMPLE_OWNER_PLATES)
    assert all(v.make == "Toyota" for v in vehicles)  # only GetVehicle is minimised
    (provider,) = ministries.records(MPWT, _exchange_id(call))
    assert provider.response_messages == 3


def test_the_internal_services_not_found_reaches_the_hospital(ministries: Ministries) -> None:
    with _channel(ministries) as channel:
        stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetVehicle(
                vehicles_pb2.GetVehicleRequest(plate="9Z-9999"), metadata=AS_NHIS, timeout=10
            )
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "no vehicle with plate 9Z-9999"
    assert_refused_on_both_sides(ministries, error)


def test_allowed_methods_come_from_the_descriptor(ministries: Ministries) -> None:
    with _channel(ministries) as channel:
        answer = channel.unary_unary(ALLOWED_METHODS)(
            metaservices_pb2.AllowedMethodsRequest().SerializeToString(),
            metadata=AS_NHIS,
            timeout=10,
        )
    methods = metaservices_pb2.AllowedMethodsResponse.FromString(answer).methods
    assert [m.path for m in methods] == [GET_VEHICLE, LIST_VEHICLES]


def test_internal_service_down_is_unavailable_then_recovers(ministries: Ministries) -> None:
    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    ministries.internal.stop(None).wait()
    try:
        with _channel(ministries) as channel:
            stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetVehicle(request, metadata=AS_NHIS, timeout=10)
    finally:
        ministries.internal = _internal(ministries.internal_address)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert (
        error.details() == "the internal service behind vehicles.v1.VehicleRegistry is unavailable"
    )
    assert_refused_on_both_sides(ministries, error)
    # MPWT's security server keeps its channel; it reconnects within a few seconds.
    recovered = time.monotonic() + 15
    with _channel(ministries) as channel:
        stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
        while True:
            try:
                vehicle = stub.GetVehicle(request, metadata=AS_NHIS, timeout=5)
                break
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code is not grpc.StatusCode.UNAVAILABLE or time.monotonic() > recovered:
                    raise
                time.sleep(0.2)
    assert vehicle.plate == demo_data.SAMPLE_PLATE


def test_the_callers_deadline_reaches_the_internal_service(ministries: Ministries) -> None:
    with _channel(ministries) as channel:
        stub = vehicles_pb2_grpc.VehicleRegistryStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetVehicle(
                vehicles_pb2.GetVehicleRequest(plate="SLOW"), metadata=AS_NHIS, timeout=1
            )
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The adapter stopped waiting and said so; on a loaded machine MoH's hop
    # timeout may cut the provider's answer off first, with MoH's own words.
    waited = f"deadline exceeded while waiting for {GET_VEHICLE}"
    cut_off = "the caller's deadline expired before the provider answered"
    assert error.details() in (waited, cut_off)
    exchange_id = _exchange_id(error)
    (consumer,) = ministries.records(MOH, exchange_id)
    until = time.monotonic() + 10  # a provider cut off may log after MoH answered
    while not ministries.records(MPWT, exchange_id) and time.monotonic() < until:
        time.sleep(0.05)
    (provider,) = ministries.records(MPWT, exchange_id)
    assert (consumer.status, consumer.message) == ("DEADLINE_EXCEEDED", error.details())
    assert (provider.status, provider.message) == ("DEADLINE_EXCEEDED", waited)
    assert provider.forwarded_at_ns > 0
