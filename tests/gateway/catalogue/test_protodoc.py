"""Documentation of a published method from its descriptor set: comments, fields, an example
request that the method's own message type accepts."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.catalogue.protodoc import DescriptorIndex
from spean.gateway.server.reflection import file_descriptor_set
from tests.support.catalogue import descriptor_set_with_comments

GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


def test_a_descriptor_set_with_source_info_documents_methods_and_fields(tmp_path: Path) -> None:
    index = DescriptorIndex(descriptor_set_with_comments(tmp_path))
    doc = index.method(GET_VEHICLE)
    assert doc is not None
    assert doc.comment.startswith("Returns the vehicle registered under a plate.")
    assert doc.service_comment == "Answers questions about registered motor vehicles."
    assert (doc.request_type, doc.response_type) == (
        "vehicles.v1.GetVehicleRequest",
        "vehicles.v1.Vehicle",
    )
    assert doc.proto_file == "spean/demo/vehicles/v1/vehicles.proto"
    request = doc.messages[0]
    assert request.name == "vehicles.v1.GetVehicleRequest"
    (plate,) = request.fields
    assert (plate.name, plate.type, plate.number) == ("plate", "string", 1)
    assert 'e.g. "2A-1234"' in plate.comment
    # The response and the types it uses come along: the Timestamp, the enums.
    names = [m.name for m in doc.messages]
    assert names[:2] == ["vehicles.v1.GetVehicleRequest", "vehicles.v1.Vehicle"]
    assert "google.protobuf.Timestamp" in names
    enums = {e.name: e for e in doc.enums}
    tax = enums["vehicles.v1.TaxStatus"]
    assert ("TAX_STATUS_PAID", 1, "Paid for the current tax year.") in tax.values


def test_the_example_request_is_json_the_request_type_accepts(tmp_path: Path) -> None:
    index = DescriptorIndex(descriptor_set_with_comments(tmp_path))
    for path, message in (
        (GET_VEHICLE, vehicles_pb2.GetVehicleRequest()),
        (LIST_VEHICLES, vehicles_pb2.ListVehiclesByOwnerRequest()),
    ):
        doc = index.method(path)
        assert doc is not None
        json_format.Parse(json.dumps(doc.example_request), message)
    vehicle = index.example("vehicles.v1.Vehicle")
    # Enums by their first non-zero name, timestamps in RFC 3339, as the JSON mapping writes them.
    parsed = json_format.Parse(json.dumps(vehicle), vehicles_pb2.Vehicle())
    assert parsed.type == vehicles_pb2.VEHICLE_TYPE_MOTORCYCLE
    assert vehicle["registrationDate"] == "2024-06-01T08:30:00Z"
    assert parsed.registration_date.seconds > 0


def test_without_source_info_the_shapes_are_documented_and_the_comments_empty() -> None:
    index = DescriptorIndex(file_descriptor_set(vehicles_pb2.DESCRIPTOR))
    doc = index.method(LIST_VEHICLES)
    assert doc is not None
    assert doc.server_streaming is True
    assert doc.comment == ""
    assert [f.name for f in doc.messages[0].fields] == ["owner_id"]


def test_bytes_that_are_not_a_descriptor_set_document_nothing() -> None:
    index = DescriptorIndex(b"\xff\xff not a descriptor set")
    assert index.method(GET_VEHICLE) is None
    assert index.example("vehicles.v1.Vehicle") == {}
