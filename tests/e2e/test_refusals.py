"""Every refusal: the right status, a message naming what is wrong, an exchange id, an audit record.

What docs/protocol.md promises, and each test checks:

- refused by MoH's consumer endpoint (section 3.3): the answer carries
  `spean-exchange-id`, MoH's audit log holds the refusal under that id with
  the status and the very message the application got (section 11), and
  nothing left MoH (no provider holds a record of it);
- refused by a provider (section 4.2): the provider's log holds it under the
  id of the answer, which is the token's claimed `jti` when the token has
  one; a refusal at steps 1 to 5 is unsigned, a later one carries a signed
  response token (section 4.3), in the trailer and in the record. Through
  MoH, both sides record it with the same status, message and token;
- refused by TLS before any Spean code runs (section 4.1): no exchange id
  and no record anywhere.

"The adapter was not reached" is read from the provider's audit record: a
provider stamps `forwarded_at_ns` immediately before it calls the adapter, so
a refused exchange has it at zero and no response messages.
"""

from __future__ import annotations

import re

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
)
from spean.gateway.identifiers import parse_server
from spean.gateway.metadata import CLIENT, RESPONSE_TOKEN, SERVICE
from spean.gateway.tokens import RequestClaims, TokenSigner
from tests.support import rogue
from tests.support.exchanges import Answer, exchange, hospital_headers
from tests.support.world import World

BODY = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
DELETE_VEHICLE = "/vehicles.v1.VehicleRegistry/DeleteVehicle"
Headers = tuple[tuple[str, str], ...]


def assert_not_forwarded(record: AuditRecord) -> None:
    assert record.forwarded_at_ns == 0, "the adapter was reached"
    assert record.response_messages == 0


def refused_by_moh(world: World, answer: Answer, status: grpc.StatusCode) -> AuditRecord:
    """`answer` is MoH's own refusal: its id, its record, and nothing sent on."""
    assert answer.code is status, answer.details
    assert answer.exchange_id, "a refusal carries spean-exchange-id"
    record = world.record(MOH, answer.exchange_id)
    assert record.status == status.name
    assert record.message == answer.details
    assert record.forwarded_at_ns == 0, "MoH forwarded a call it refused"
    assert record.response_token == ""
    for provider in (MPWT, MOI):
        assert world.records_of(provider, answer.exchange_id) == []
    return record


def consumer_call(world: World, headers: Headers, method: str = GET_VEHICLE) -> Answer:
    with world.consumer_channel() as channel:
        return exchange(channel, method, BODY, headers=headers, timeout=5)


# --- refused by the consumer side -------------------------------------------------


def test_no_access_right_is_permission_denied_at_the_provider(world: World) -> None:
    request = identity_pb2.GetCitizenRequest(id_number=demo_data.SAMPLE_CITIZEN.id_number)
    with world.consumer_channel() as channel:
        answer = exchange(
            channel, GET_CITIZEN, request.SerializeToString(), headers=hospital_headers(IDREG)
        )
    assert answer.code is grpc.StatusCode.PERMISSION_DENIED, answer.details
    assert answer.details == (
        f"{NHIS} has no access right to {IDREG}:{GET_CITIZEN}; the provider's administrator"
        " must grant it in the provider.access section"
    )
    assert answer.exchange_id
    provider = world.record(MOI, answer.exchange_id)
    consumer = world.record(MOH, answer.exchange_id)
    for record in (provider, consumer):
        assert record.status == "PERMISSION_DENIED"
        assert record.message == answer.details
        assert (record.client, record.service, record.method) == (NHIS, IDREG, GET_CITIZEN)
    assert_not_forwarded(provider)
    assert consumer.forwarded_at_ns > 0  # MoH did send it on: MOI refused it
    # The refusal is signed by the provider, verified by the consumer, passed on.
    assert provider.response_token
    assert consumer.response_token == provider.response_token
    assert answer.trailer(RESPONSE_TOKEN) == provider.response_token


def test_unknown_method_of_a_known_service_is_not_found(world: World) -> None:
    answer = consumer_call(world, hospital_headers(), method=DELETE_VEHICLE)
    record = refused_by_moh(world, answer, grpc.StatusCode.NOT_FOUND)
    assert answer.details == f"{VEHICLES} does not publish method {DELETE_VEHICLE}"
    assert (record.client, record.service, record.method) == (NHIS, VEHICLES, DELETE_VEHICLE)


def test_unknown_service_is_not_found(world: World) -> None:
    answer = consumer_call(world, ((CLIENT, NHIS), (SERVICE, "KH/GOV/MOF/tax")))
    record = refused_by_moh(world, answer, grpc.StatusCode.NOT_FOUND)
    assert answer.details == "member KH/GOV/MOF is not in the federation"
    assert (record.client, record.service) == (NHIS, "KH/GOV/MOF/tax")


def test_unknown_client_subsystem_is_refused(world: World) -> None:
    answer = consumer_call(world, ((CLIENT, "KH/GOV/MOH/ghost"), (SERVICE, VEHICLES)))
    record = refused_by_moh(world, answer, grpc.StatusCode.PERMISSION_DENIED)
    assert answer.details == (
        f"client subsystem {MOH}/ghost is not registered on security server {MOH}/ss1;"
        " add it under consumer.clients"
    )
    assert record.client == "KH/GOV/MOH/ghost"


def test_client_of_another_member_is_refused(world: World) -> None:
    answer = consumer_call(world, ((CLIENT, IDREG), (SERVICE, VEHICLES)))
    record = refused_by_moh(world, answer, grpc.StatusCode.PERMISSION_DENIED)
    assert answer.details == (
        f"client subsystem {IDREG} does not belong to {MOH},"
        " the member that owns this security server"
    )
    assert record.client == IDREG


MISSING = (
    "header {} is missing: name the calling subsystem in spean-client"
    " and the provider subsystem in spean-service"
)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), MISSING.format(CLIENT)),
        (((CLIENT, NHIS),), MISSING.format(SERVICE)),
        (((SERVICE, VEHICLES),), MISSING.format(CLIENT)),
        (
            ((CLIENT, NHIS), (CLIENT, NHIS), (SERVICE, VEHICLES)),
            f"header {CLIENT} appears more than once; send it exactly once",
        ),
        (
            ((CLIENT, "not an identifier"), (SERVICE, VEHICLES)),
            "subsystem identifier 'not an identifier' must have the form"
            " INSTANCE/CLASS/MEMBER/CODE",
        ),
    ],
    ids=["none", "no-service", "no-client", "duplicated", "malformed"],
)
def test_missing_or_bad_headers_are_invalid_argument(
    world: World, metadata: Headers, message: str
) -> None:
    answer = consumer_call(world, metadata)
    refused_by_moh(world, answer, grpc.StatusCode.INVALID_ARGUMENT)
    assert answer.details == message


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


def _sizes(world: World) -> tuple[int, int]:
    return world.server(MOH).audit.size(), world.server(MPWT).audit.size()


def test_provider_refuses_a_connection_without_client_certificate(world: World) -> None:
    before = _sizes(world)
    ca, address, server_id = _provider(world)
    with rogue.provider_channel(ca, address, server_id, key_pem=None, cert_pem=None) as channel:
        answer = rogue.send(channel, GET_VEHICLE, BODY, token=None)
    # Refused in the TLS handshake, before any Spean code runs (docs/security.md).
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.exchange_id == ""
    assert _sizes(world) == before


def test_provider_refuses_a_certificate_from_another_ca(world: World) -> None:
    before = _sizes(world)
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
        answer = rogue.send(channel, GET_VEHICLE, BODY, token=None)
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.exchange_id == ""
    assert _sizes(world) == before


def _refused(
    world: World,
    token: str | None,
    *,
    signed: bool,
    claims: RequestClaims | None = None,
    body: bytes = BODY,
    method: str = GET_VEHICLE,
    status: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
) -> tuple[rogue.ProviderAnswer, AuditRecord]:
    """Send `token` straight to MPWT as MoH's server; MPWT must refuse it and log it."""
    with _channel_as(world, MOH) as channel:
        answer = rogue.send(channel, method, body, token)
    assert answer.code is status, answer.details
    assert answer.exchange_id, "a refusal carries spean-exchange-id"
    if claims is not None:  # the claimed jti names the exchange, verified or not
        assert answer.exchange_id == claims.exchange_id
    # The last record of that exchange id: a replay shares the id of its original.
    record = world.records_of(MPWT, answer.exchange_id)[-1]
    assert record.status == status.name
    assert record.message == answer.details
    assert_not_forwarded(record)
    # Signed once the exchange is established (steps 6 to 12), unsigned before.
    assert bool(answer.response_token) is signed
    assert record.response_token == answer.response_token
    assert world.records_of(MOH, answer.exchange_id) == []  # MoH's server was not involved
    return answer, record


def _genuine(world: World, method: str = GET_VEHICLE) -> tuple[RequestClaims, str]:
    claims = rogue.claims_for(NHIS, VEHICLES, method, BODY)
    return claims, rogue.signer_of(world.folder(MOH)).sign_request(claims)


def test_missing_request_token_is_unauthenticated(world: World) -> None:
    answer, _ = _refused(world, None, signed=False)
    assert answer.details == "header spean-request-token is missing"


def test_token_signed_by_another_members_key(world: World) -> None:
    # MOI's genuine key, over MOH's genuine TLS connection.
    claims = rogue.claims_for(IDREG, VEHICLES, GET_VEHICLE, BODY)
    token = rogue.signer_of(world.folder(MOI)).sign_request(claims)
    answer, _ = _refused(world, token, signed=False, claims=claims)
    assert answer.details == (
        f"request token issued by {MOI} arrived from security server {MOH}/ss1 of another member"
    )


def test_token_signed_by_an_unknown_key(world: World) -> None:
    key = pki.generate_key()
    ca = pki.create_ca(key, "KH")
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    token = TokenSigner(key, ca).sign_request(claims)
    answer, _ = _refused(world, token, signed=False, claims=claims)
    assert answer.details == f"request token signed by an unknown key {pki.thumbprint(ca)[:16]}"


def test_expired_token(world: World) -> None:
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    old = rogue.reissued(
        claims, issued_at=claims.issued_at - 600, expires_at=claims.issued_at - 540
    )
    token = rogue.signer_of(world.folder(MOH)).sign_request(old)
    answer, _ = _refused(world, token, signed=False, claims=old)
    assert re.fullmatch(r"request token expired 54\d s ago", answer.details), answer.details


def test_replayed_token(world: World) -> None:
    claims, token = _genuine(world)
    with _channel_as(world, MOH) as channel:
        first = rogue.send(channel, GET_VEHICLE, BODY, token)
    assert first.code is grpc.StatusCode.OK, first.details
    answer, _ = _refused(world, token, signed=True, claims=claims)
    assert answer.details == (
        f"exchange id {claims.exchange_id} was already used: the request is a replay"
    )
    statuses = [r.status for r in world.records_of(MPWT, claims.exchange_id)]
    assert statuses == ["OK", "UNAUTHENTICATED"]


def test_body_that_does_not_match_its_digest(world: World) -> None:
    claims, token = _genuine(world)
    other = vehicles_pb2.GetVehicleRequest(plate="2A-9999").SerializeToString()
    answer, _ = _refused(world, token, signed=True, claims=claims, body=other)
    assert answer.details == (
        "request body does not match the digest in the request token (claim 'req')"
    )


def test_token_for_another_method(world: World) -> None:
    claims, token = _genuine(world, "/vehicles.v1.VehicleRegistry/Other")
    answer, _ = _refused(world, token, signed=True, claims=claims)
    assert answer.details == (
        f"request token is for method /vehicles.v1.VehicleRegistry/Other,"
        f" but this call is {GET_VEHICLE}"
    )


def test_provider_refuses_a_method_its_adapter_does_not_publish(world: World) -> None:
    claims, token = _genuine(world, DELETE_VEHICLE)
    answer, record = _refused(
        world,
        token,
        signed=True,  # an established exchange: the refusal is signed
        claims=claims,
        method=DELETE_VEHICLE,
        status=grpc.StatusCode.NOT_FOUND,
    )
    assert answer.details == f"{VEHICLES} does not publish method {DELETE_VEHICLE}"
    assert (record.client, record.service, record.method) == (NHIS, VEHICLES, DELETE_VEHICLE)
