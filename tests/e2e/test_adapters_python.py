"""MPWT publishes its vehicle registry from its own Python servicer class.

MPWT's IT team wrote `VehicleRegistry` against the generated servicer and
named it in the security server's configuration; the security server runs it
in-process. The hospital calls it as any other service; what the servicer
refuses or gets wrong reaches the hospital as a proper status, audited.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2, vehicles_pb2_grpc
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import GET_VEHICLE, LIST_VEHICLES, MOH, MPWT, NHIS, VEHICLES
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE
from tests.support import mpwt_servicer
from tests.support.plans import hospital_and_registry, python_vehicle_registry

AS_NHIS = ((CLIENT, NHIS), (SERVICE, VEHICLES))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    registry = python_vehicle_registry(
        "tests.support.mpwt_servicer:VehicleRegistry",
        [(GET_VEHICLE, False), (LIST_VEHICLES, True)],
    )
    plans = hospital_and_registry(registry)
    built = build_federation(tmp_path_factory.mktemp("python-adapter"), plans)
    with built.running():
        yield built


def _stub(federation: Federation) -> tuple[grpc.Channel, vehicles_pb2_grpc.VehicleRegistryStub]:
    channel = grpc.insecure_channel(federation.consumer_addresses[MOH])
    return channel, vehicles_pb2_grpc.VehicleRegistryStub(channel)


def _provider_record(federation: Federation, call: grpc.Call) -> AuditRecord:
    exchange_id = dict(call.trailing_metadata() or ())[EXCHANGE_ID]
    (record,) = [
        record
        for record in (
            AuditRecord.from_bytes(r.record_bytes) for r in federation.servers[MPWT].audit.read()
        )
        if record.exchange_id == exchange_id
    ]
    return record


def assert_failed_on_both_sides(federation: Federation, error: grpc.Call) -> AuditRecord:
    """Both logs hold the failed exchange with the status and message the hospital got."""
    provider = _provider_record(federation, error)
    (consumer,) = [
        record
        for record in (
            AuditRecord.from_bytes(r.record_bytes) for r in federation.servers[MOH].audit.read()
        )
        if record.exchange_id == provider.exchange_id
    ]
    for record in (consumer, provider):
        assert record.status == error.code().name
        assert record.message == error.details()
        assert record.response_messages == 0
    assert provider.forwarded_at_ns > 0  # the servicer itself failed the call
    assert provider.response_token  # the provider signed the failure
    assert consumer.response_token == provider.response_token
    return provider


def test_unary_call_reaches_the_servicer_with_the_callers_facts(federation: Federation) -> None:
    channel, stub = _stub(federation)
    with channel:
        vehicle, call = stub.GetVehicle.with_call(
            vehicles_pb2.GetVehicleRequest(plate="WHO"),
            metadata=(*AS_NHIS, (PURPOSE, "case 2024/118")),
            timeout=10,
        )
    record = _provider_record(federation, call)
    # The servicer saw the authenticated client, the purpose and the exchange id.
    assert (vehicle.owner_id, vehicle.model, vehicle.colour) == (
        NHIS,
        "case 2024/118",
        record.exchange_id,
    )
    assert record.status == "OK"


def test_stream_from_a_generator(federation: Federation) -> None:
    channel, stub = _stub(federation)
    with channel:
        call = stub.ListVehiclesByOwner(
            vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=mpwt_servicer.OWNER),
            metadata=AS_NHIS,
            timeout=10,
        )
        plates = [vehicle.plate for vehicle in call]
    assert plates == list(demo_data.SAMPLE_OWNER_PLATES)
    assert _provider_record(federation, call).response_messages == 3


def test_abort_reaches_the_hospital_with_the_servicers_words(federation: Federation) -> None:
    channel, stub = _stub(federation)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.GetVehicle(vehicles_pb2.GetVehicleRequest(plate="SECRET-1"), metadata=AS_NHIS)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "this plate is classified"
    assert_failed_on_both_sides(federation, error)


def test_a_servicer_bug_is_internal_and_names_the_exchange(federation: Federation) -> None:
    channel, stub = _stub(federation)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.GetVehicle(vehicles_pb2.GetVehicleRequest(plate="CRASH"), metadata=AS_NHIS)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.INTERNAL
    record = assert_failed_on_both_sides(federation, error)
    assert error.details() == (
        "the provider's service failed; its operator can find exchange"
        f" {record.exchange_id} in the log"
    )
    assert mpwt_servicer.SECRET not in str(error.details())
