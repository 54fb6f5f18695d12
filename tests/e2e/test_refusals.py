"""Every refusal: the right status, an audit record on the refusing side, no adapter call.

"The adapter was not reached" is read from the provider's audit record: a
provider stamps `forwarded_at_ns` immediately before it calls the adapter, so
a refused exchange has it at zero and no response messages.
"""

from __future__ import annotations

import grpc
import pytest

from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import (
    GET_CITIZEN,
    GET_VEHICLE,
    IDREG,
    MOH,
    MOI,
    MPWT,
    NHIS,
    VEHICLES,
    call,
)
from spean.gateway.identifiers import parse_server
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, SERVICE
from spean.gateway.tokens import TokenSigner
from tests.support import rogue
from tests.support.world import World

BODY = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()


def assert_not_forwarded(record: AuditRecord) -> None:
    assert record.forwarded_at_ns == 0, "the adapter was reached"
    assert record.response_messages == 0


def raw_call(world: World, metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, str]:
    with world.consumer_channel() as channel:
        stub = channel.unary_unary(GET_VEHICLE)
        try:
            stub.with_call(BODY, metadata=metadata, timeout=5)
        except grpc.RpcError as err:
            trailing = dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]
            return err.code(), trailing.get(EXCHANGE_ID, "")  # type: ignore[attr-defined]
    pytest.fail("the call was not refused")


# --- refused by the consumer side -------------------------------------------------


def test_no_access_right_is_permission_denied_at_the_provider(world: World) -> None:
    request = identity_pb2.GetCitizenRequest(id_number=demo_data.SAMPLE_CITIZEN.id_number)
    with world.consumer_channel() as channel:
        _, exchange_id, code, details = call(
            channel, GET_CITIZEN, IDREG, request, identity_pb2.Citizen
        )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert NHIS in details
    assert GET_CITIZEN in details
    provider = world.record(MOI, exchange_id)
    assert provider.status == "PERMISSION_DENIED"
    assert_not_forwarded(provider)
    consumer = world.record(MOH, exchange_id)
    assert consumer.status == "PERMISSION_DENIED"
    # The refusal is signed by the provider and verified by the consumer.
    assert provider.response_token
    assert consumer.response_token == provider.response_token


def test_unknown_method_of_a_known_service_is_not_found(world: World) -> None:
    method = "/vehicles.v1.VehicleRegistry/DeleteVehicle"
    with world.consumer_channel() as channel:
        stub = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            stub(BODY, metadata=((CLIENT, NHIS), (SERVICE, VEHICLES)), timeout=5)
    error: grpc.Call = info.value  # type: ignore[assignment]
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "does not publish method" in (error.details() or "")


def test_unknown_service_is_not_found(world: World) -> None:
    code, exchange_id = raw_call(world, ((CLIENT, NHIS), (SERVICE, "KH/GOV/MOF/tax")))
    assert code is grpc.StatusCode.NOT_FOUND
    assert world.record(MOH, exchange_id).status == "NOT_FOUND"
    assert all(r.exchange_id != exchange_id for r in world.records(MPWT))


def test_unknown_client_subsystem_is_refused(world: World) -> None:
    code, exchange_id = raw_call(world, ((CLIENT, "KH/GOV/MOH/ghost"), (SERVICE, VEHICLES)))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert world.record(MOH, exchange_id).client == "KH/GOV/MOH/ghost"


def test_client_of_another_member_is_refused(world: World) -> None:
    code, exchange_id = raw_call(world, ((CLIENT, IDREG), (SERVICE, VEHICLES)))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert world.record(MOH, exchange_id).status == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        ((CLIENT, NHIS),),
        ((SERVICE, VEHICLES),),
        ((CLIENT, NHIS), (CLIENT, NHIS), (SERVICE, VEHICLES)),
        ((CLIENT, "not an identifier"), (SERVICE, VEHICLES)),
    ],
    ids=["none", "no-service", "no-client", "duplicated", "malformed"],
)
def test_missing_or_bad_headers_are_invalid_argument(
    world: World, metadata: tuple[tuple[str, str], ...]
) -> None:
    code, exchange_id = raw_call(world, metadata)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert world.record(MOH, exchange_id).status == "INVALID_ARGUMENT"


# --- refused by the provider side ---------------------------------------------------


def _provider(world: World) -> tuple[bytes, str, str]:
    conf = world.server(MPWT).current_configuration()
    server = conf.server(parse_server(f"{MPWT}/ss1"))
    assert server is not None
    return conf.ca_pem, server.address, str(server.id)


def _channel_as(world: World, member: str) -> grpc.Channel:
    ca, address, server_id = _provider(world)
    key, cert = rogue.tls_identity(world.folder(member))
    return rogue.provider_channel(ca, address, server_id, key_pem=key, cert_pem=cert)


def test_provider_refuses_a_connection_without_client_certificate(world: World) -> None:
    before = world.server(MPWT).audit.size()
    ca, address, server_id = _provider(world)
    with rogue.provider_channel(ca, address, server_id, key_pem=None, cert_pem=None) as channel:
        code, _, _ = rogue.send(channel, GET_VEHICLE, BODY, token=None)
    # Refused in the TLS handshake, before any Spean code runs (docs/security.md).
    assert code is grpc.StatusCode.UNAVAILABLE
    assert world.server(MPWT).audit.size() == before


def test_provider_refuses_a_certificate_from_another_ca(world: World) -> None:
    before = world.server(MPWT).audit.size()
    foreign_key = pki.generate_key()
    foreign_ca = pki.create_ca(foreign_key, "KH")
    tls_key = pki.generate_key()
    csr = pki.make_csr(tls_key, f"{MOH}/ss1", "server")
    cert = pki.issue_server_certificate(
        foreign_key, foreign_ca, csr, parse_server(f"{MOH}/ss1"), "127.0.0.1:1"
    )
    ca, address, server_id = _provider(world)
    with rogue.provider_channel(
        ca,
        address,
        server_id,
        key_pem=pki.private_key_pem(tls_key),
        cert_pem=pki.certificate_pem(cert),
    ) as channel:
        code, _, _ = rogue.send(channel, GET_VEHICLE, BODY, token=None)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert world.server(MPWT).audit.size() == before


def _refused(world: World, token: str | None, body: bytes = BODY) -> AuditRecord:
    with _channel_as(world, MOH) as channel:
        code, details, exchange_id = rogue.send(channel, GET_VEHICLE, body, token)
    assert code is grpc.StatusCode.UNAUTHENTICATED, details
    # The last record of that exchange id: a replay shares the id of its original.
    record = [r for r in world.records(MPWT) if r.exchange_id == exchange_id][-1]
    assert record.status == "UNAUTHENTICATED"
    assert_not_forwarded(record)
    return record


def test_missing_request_token_is_unauthenticated(world: World) -> None:
    _refused(world, None)


def test_token_signed_by_another_members_key(world: World) -> None:
    # MOI's genuine key, over MOH's genuine TLS connection.
    claims = rogue.claims_for(IDREG, VEHICLES, GET_VEHICLE, BODY)
    token = rogue.signer_of(world.folder(MOI)).sign_request(claims)
    record = _refused(world, token)
    assert "another member" in record.message


def test_token_signed_by_an_unknown_key(world: World) -> None:
    key = pki.generate_key()
    ca = pki.create_ca(key, "KH")
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    token = TokenSigner(key, ca).sign_request(claims)
    record = _refused(world, token)
    assert "unknown key" in record.message


def test_expired_token(world: World) -> None:
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    old = rogue.reissued(
        claims, issued_at=claims.issued_at - 600, expires_at=claims.issued_at - 540
    )
    record = _refused(world, rogue.signer_of(world.folder(MOH)).sign_request(old))
    assert "expired" in record.message


def test_replayed_token(world: World) -> None:
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    token = rogue.signer_of(world.folder(MOH)).sign_request(claims)
    with _channel_as(world, MOH) as channel:
        first, details, _ = rogue.send(channel, GET_VEHICLE, BODY, token)
    assert first is grpc.StatusCode.OK, details
    record = _refused(world, token)
    assert "replay" in record.message
    statuses = [r.status for r in world.records(MPWT) if r.exchange_id == claims.exchange_id]
    assert statuses == ["OK", "UNAUTHENTICATED"]


def test_body_that_does_not_match_its_digest(world: World) -> None:
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    token = rogue.signer_of(world.folder(MOH)).sign_request(claims)
    other = vehicles_pb2.GetVehicleRequest(plate="2A-9999").SerializeToString()
    record = _refused(world, token, body=other)
    assert "digest" in record.message


def test_token_for_another_method(world: World) -> None:
    claims = rogue.claims_for(NHIS, VEHICLES, "/vehicles.v1.VehicleRegistry/Other", BODY)
    token = rogue.signer_of(world.folder(MOH)).sign_request(claims)
    _refused(world, token)


def test_provider_refuses_a_method_its_adapter_does_not_publish(world: World) -> None:
    method = "/vehicles.v1.VehicleRegistry/DeleteVehicle"
    claims = rogue.claims_for(NHIS, VEHICLES, method, BODY)
    token = rogue.signer_of(world.folder(MOH)).sign_request(claims)
    with _channel_as(world, MOH) as channel:
        code, details, exchange_id = rogue.send(channel, method, BODY, token)
    assert code is grpc.StatusCode.NOT_FOUND, details
    record = world.record(MPWT, exchange_id)
    assert record.status == "NOT_FOUND"
    assert record.response_token  # an established exchange: the refusal is signed
    assert_not_forwarded(record)
