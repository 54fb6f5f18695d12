"""Stories of successful exchanges across the demo federation."""

from __future__ import annotations

import sqlite3

import grpc

from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import (
    GET_VEHICLE,
    IDREG,
    LIST_VEHICLES,
    MOH,
    MOI,
    MPWT,
    NHIS,
    VEHICLES,
    VERIFY_CITIZEN,
    call,
)
from spean.gateway.digests import request_digest
from spean.gateway.metadata import CLIENT, SERVICE
from tests.support.exchanges import get_vehicle
from tests.support.world import World


def test_moh_reads_a_vehicle_and_both_logs_hold_the_exchange(world: World) -> None:
    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    with world.consumer_channel() as channel:
        messages, exchange_id, code, details = call(
            channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle
        )
    assert code is grpc.StatusCode.OK, details
    assert messages[0].plate == demo_data.SAMPLE_PLATE  # type: ignore[attr-defined]
    assert exchange_id

    consumer = world.record(MOH, exchange_id)
    provider = world.record(MPWT, exchange_id)
    for record in (consumer, provider):
        assert record.status == "OK"
        assert record.client == NHIS
        assert record.service == VEHICLES
        assert record.method == GET_VEHICLE
        assert record.user == "dr.sokha@hospital.example"
        assert record.purpose == "patient admission"
        assert record.request_sha256 == request_digest(request.SerializeToString())
        assert record.response_messages == 1
        assert record.request_token
        assert record.response_token
    assert consumer.side is Side.CONSUMER
    assert provider.side is Side.PROVIDER
    # Both sides hold the same signed tokens and the same response digest.
    assert consumer.request_token == provider.request_token
    assert consumer.response_token == provider.response_token
    assert consumer.response_sha256 == provider.response_sha256
    assert provider.peer_certificate_sha256  # the consumer's TLS certificate


def test_identity_check_returns_only_a_match(world: World) -> None:
    citizen = demo_data.SAMPLE_CITIZEN
    with world.consumer_channel() as channel:
        right = identity_pb2.VerifyCitizenRequest(
            id_number=citizen.id_number, full_name=citizen.full_name, birth_date=citizen.birth_date
        )
        wrong = identity_pb2.VerifyCitizenRequest(
            id_number=citizen.id_number, full_name="Someone Else", birth_date=citizen.birth_date
        )
        yes, _, code_yes, _ = call(
            channel, VERIFY_CITIZEN, IDREG, right, identity_pb2.VerifyCitizenResponse
        )
        no, _, code_no, _ = call(
            channel, VERIFY_CITIZEN, IDREG, wrong, identity_pb2.VerifyCitizenResponse
        )
    assert code_yes is grpc.StatusCode.OK
    assert code_no is grpc.StatusCode.OK
    assert yes[0].match is True  # type: ignore[attr-defined]
    assert no[0].match is False  # type: ignore[attr-defined]


def test_a_streamed_call_delivers_every_vehicle_of_the_owner(world: World) -> None:
    owner = demo_data.SAMPLE_OWNER_WITH_VEHICLES
    database = world.folder(MPWT) / "mpwt-vehicles.db"
    with sqlite3.connect(database) as db:
        (expected,) = db.execute(
            "SELECT count(*) FROM vehicles WHERE owner_id = ?", (owner,)
        ).fetchone()
    assert expected >= 2
    with world.consumer_channel() as channel:
        messages, exchange_id, code, details = call(
            channel,
            LIST_VEHICLES,
            VEHICLES,
            vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=owner),
            vehicles_pb2.Vehicle,
            streaming=True,
        )
    assert code is grpc.StatusCode.OK, details
    assert len(messages) == expected
    assert {m.owner_id for m in messages} == {owner}  # type: ignore[attr-defined]
    assert world.record(MOH, exchange_id).response_messages == expected
    assert world.record(MPWT, exchange_id).response_messages == expected


def test_every_answer_carries_an_exchange_id_even_a_refusal(world: World) -> None:
    with world.consumer_channel() as channel:
        answer = get_vehicle(channel, plate="NO-SUCH-PLATE")
    assert answer.code is grpc.StatusCode.NOT_FOUND, answer.details
    assert answer.details == "no result for GetVehicle with the given request"
    assert answer.exchange_id
    consumer = world.record(MOH, answer.exchange_id)
    provider = world.record(MPWT, answer.exchange_id)
    for record in (consumer, provider):
        assert record.status == "NOT_FOUND"
        assert record.message == answer.details
        assert record.response_messages == 0
    # The adapter answered it: a signed refusal, the same on both sides.
    assert provider.forwarded_at_ns > 0
    assert provider.response_token
    assert consumer.response_token == provider.response_token


def test_audit_chains_verify_after_traffic(world: World) -> None:
    citizen = demo_data.SAMPLE_CITIZEN
    check = identity_pb2.VerifyCitizenRequest(
        id_number=citizen.id_number, full_name=citizen.full_name, birth_date=citizen.birth_date
    )
    with world.consumer_channel() as channel:
        vehicle = get_vehicle(channel)
        no_vehicle = get_vehicle(channel, plate="NO-SUCH-PLATE")
        _, identity, code, details = call(
            channel, VERIFY_CITIZEN, IDREG, check, identity_pb2.VerifyCitizenResponse
        )
    assert vehicle.code is grpc.StatusCode.OK, vehicle.details
    assert no_vehicle.code is grpc.StatusCode.NOT_FOUND, no_vehicle.details
    assert code is grpc.StatusCode.OK, details
    made = {
        MOH: {vehicle.exchange_id, no_vehicle.exchange_id, identity},
        MPWT: {vehicle.exchange_id, no_vehicle.exchange_id},
        MOI: {identity},
    }
    for member, exchanges in made.items():
        stored = list(world.server(member).audit.read())
        verify_chain(r.chain_entry() for r in stored)  # raises ChainError at a bad entry
        held = {AuditRecord.from_bytes(r.record_bytes).exchange_id for r in stored}
        assert exchanges <= held, f"{member}'s verified log misses {exchanges - held}"


def test_a_call_without_deadline_succeeds(world: World) -> None:
    with world.consumer_channel() as channel:
        stub = channel.unary_unary(GET_VEHICLE)
        body = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
        response, call_ = stub.with_call(body, metadata=((CLIENT, NHIS), (SERVICE, VEHICLES)))
    assert vehicles_pb2.Vehicle.FromString(response).plate == demo_data.SAMPLE_PLATE
    assert call_.code() is grpc.StatusCode.OK
