"""The pure parts of metaservices and reflection: answers and descriptor handling."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, timestamp_pb2

from spean.adapters.base import MethodKind
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.access import AccessPolicy, AccessRule
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import CLIENT, SERVICE, parse_meta_headers
from spean.gateway.server.metaservices import allowed_methods_answer
from spean.gateway.server.reflection import build_pool, file_descriptor_set
from spean.v1 import metaservices_pb2 as pb

CLIENT_ID = SubsystemId.parse("KH/GOV/MOH/nhis")
SERVICE_ID = SubsystemId.parse("KH/GOV/MPWT/vehicles")
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
PUBLISHED = {LIST: MethodKind.SERVER_STREAMING, GET: MethodKind.UNARY}


def _answer(policy: AccessPolicy, client: SubsystemId = CLIENT_ID) -> pb.AllowedMethodsResponse:
    return pb.AllowedMethodsResponse.FromString(
        allowed_methods_answer(policy, PUBLISHED, client, SERVICE_ID)
    )


def test_allowed_methods_lists_only_granted_published_methods() -> None:
    policy = AccessPolicy(
        [AccessRule(CLIENT_ID, SERVICE_ID, frozenset({GET, "/x.Y/NotPublished"}))]
    )
    answer = _answer(policy)
    assert [(m.path, m.server_streaming) for m in answer.methods] == [(GET, False)]
    assert (answer.client, answer.service) == (str(CLIENT_ID), str(SERVICE_ID))


def test_allowed_methods_star_grants_every_published_method_sorted() -> None:
    answer = _answer(AccessPolicy([AccessRule(CLIENT_ID, SERVICE_ID, frozenset({"*"}))]))
    assert [(m.path, m.server_streaming) for m in answer.methods] == [(GET, False), (LIST, True)]


def test_allowed_methods_is_empty_for_a_client_without_rights() -> None:
    policy = AccessPolicy([AccessRule(CLIENT_ID, SERVICE_ID, frozenset({"*"}))])
    assert list(_answer(policy, SubsystemId.parse("KH/GOV/MOI/idreg")).methods) == []


def test_descriptor_set_puts_imports_first() -> None:
    data = file_descriptor_set(vehicles_pb2.DESCRIPTOR)
    names = [f.name for f in descriptor_pb2.FileDescriptorSet.FromString(data).file]
    assert names == ["google/protobuf/timestamp.proto", "spean/demo/vehicles/v1/vehicles.proto"]


def test_pool_loads_a_set_in_any_order_and_names_its_services() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(file_descriptor_set(vehicles_pb2.DESCRIPTOR))
    reversed_set = descriptor_pb2.FileDescriptorSet(file=list(reversed(fds.file)))
    pool, services = build_pool(reversed_set.SerializeToString(), "test set")
    assert services == ["vehicles.v1.VehicleRegistry"]
    method = pool.FindMethodByName("vehicles.v1.VehicleRegistry.ListVehiclesByOwner")
    assert method.output_type.full_name == "vehicles.v1.Vehicle"


def test_pool_takes_well_known_imports_the_set_left_out() -> None:
    only_vehicles = descriptor_pb2.FileDescriptorSet()
    vehicles_pb2.DESCRIPTOR.CopyToProto(only_vehicles.file.add())
    assert timestamp_pb2.Timestamp  # the well-known type is known to this process
    pool, _ = build_pool(only_vehicles.SerializeToString(), "test set")
    assert pool.FindMessageTypeByName("google.protobuf.Timestamp")


def test_pool_names_an_import_that_cannot_be_found() -> None:
    file = descriptor_pb2.FileDescriptorProto(
        name="a.proto", package="a", dependency=["missing/b.proto"]
    )
    data = descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()
    with pytest.raises(FailedPrecondition, match=r"imports missing/b.proto.*--include_imports"):
        build_pool(data, "descriptors of KH/GOV/X/y")


def test_pool_refuses_bytes_that_are_not_a_descriptor_set() -> None:
    with pytest.raises(FailedPrecondition, match="descriptors of KH/GOV/X/y: not a serialized"):
        build_pool(b"\xff\xff\xff", "descriptors of KH/GOV/X/y")


def test_meta_headers_are_optional_but_single() -> None:
    assert parse_meta_headers([]).client is None
    headers = parse_meta_headers([(CLIENT, str(CLIENT_ID)), (SERVICE, str(SERVICE_ID))])
    assert (headers.require_client(), headers.service) == (CLIENT_ID, SERVICE_ID)
    with pytest.raises(InvalidArgument, match=f"header {CLIENT} is missing"):
        parse_meta_headers([(SERVICE, str(SERVICE_ID))]).require_client()
    with pytest.raises(InvalidArgument, match="more than once"):
        parse_meta_headers([(CLIENT, str(CLIENT_ID)), (CLIENT, str(CLIENT_ID))])
