"""The hostile corpus: every forged, stale, malformed or oversized call, against a live federation.

Each row of `CASES` is one attack and what must come of it:

- the gRPC status the attacker sees;
- who refuses it. `consumer` / `provider`: Spean's handler on that side
  refused it, so that side's audit log holds a record of the refusal under
  the exchange id of the answer's `spean-exchange-id` trailer, with the same
  status. `handshake`: the TLS stack refused the connection before any Spean
  code ran (docs/protocol.md sections 4.1 and 12): there is no exchange id and
  no audit record anywhere, which the row asserts. `grpc`: gRPC itself
  refused the call (client library or server transport) before Spean's
  handler, with the same consequences;
- whether the adapter was reached. Normally not: the provider's record has
  `forwarded_at_ns == 0` and no response message, and a consumer refusal
  leaves no provider record at all. A few rows are answered by the adapter
  itself (malformed protobuf, SQL fragments, a response too large): there the
  adapter was called but released nothing.

The attacks come from two places: the hospital application's own consumer
endpoint (insecure loopback, any metadata and body), and `tests.support.rogue`,
a hand-driven consumer with MOH's real keys that talks to MPWT's provider
endpoint directly and can forge any TLS identity, token and body.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, IDREG, MOH, MOI, MPWT, NHIS, VEHICLES
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import parse_server
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, REQUEST_TOKEN, SERVICE, USER
from spean.gateway.tokens import REQUEST_TYPE, RESPONSE_TYPE, TokenSigner
from tests.support import rogue
from tests.support.hostile import HUGE_PLATE, MAX_MESSAGE_BYTES, HostileWorld

BODY = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
DELETE_VEHICLE = "/vehicles.v1.VehicleRegistry/DeleteVehicle"
MEMBERS = (MOH, MPWT, MOI)

RefusedBy = Literal["consumer", "provider", "handshake", "grpc"]
Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True, slots=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    exchange_id: str


@dataclass(frozen=True, slots=True)
class Case:
    attack: Callable[[HostileWorld], Outcome]
    status: grpc.StatusCode
    refused_by: RefusedBy
    message: str = ""  # words the refusing side's audit record must contain
    adapter_called: bool = False  # the adapter itself answered, with no message


# --- the two ways in ----------------------------------------------------------------------


def _outcome(responses: grpc.Call) -> Outcome:
    trailing = responses.trailing_metadata() or ()
    exchange_id = next((str(v) for k, v in trailing if k == EXCHANGE_ID), "")
    return Outcome(responses.code(), responses.details() or "", exchange_id)


def _call(channel: grpc.Channel, method: str, body: bytes, metadata: Metadata) -> Outcome:
    stub: Any = channel.unary_stream(method)  # raw bytes both ways
    responses = stub(body, metadata=tuple(metadata), timeout=10)
    try:
        for _ in responses:
            pass
    except grpc.RpcError:
        pass
    return _outcome(responses)


def via_consumer(
    metadata: Metadata | None = None, *, method: str = GET_VEHICLE, body: bytes = BODY
) -> Callable[[HostileWorld], Outcome]:
    """The call as MOH's application makes it, with these headers and this body."""
    headers = ((CLIENT, NHIS), (SERVICE, VEHICLES)) if metadata is None else metadata

    def attack(h: HostileWorld) -> Outcome:
        with h.consumer_channel() as channel:
            return _call(channel, method, body, headers)

    return attack


def _provider_channel(
    h: HostileWorld, key_pem: bytes | None, cert_pem: bytes | None
) -> grpc.Channel:
    conf = h.server(MPWT).current_configuration()
    server = conf.server(parse_server(f"{MPWT}/ss1"))
    assert server is not None
    return rogue.provider_channel(
        conf.ca_pem, server.address, str(server.id), key_pem=key_pem, cert_pem=cert_pem
    )


TokenMaker = Callable[[HostileWorld], Sequence[str]]
Identity = Callable[[HostileWorld], tuple[bytes | None, bytes | None]]


def _moh_identity(h: HostileWorld) -> tuple[bytes | None, bytes | None]:
    return rogue.tls_identity(h.folder(MOH))


def direct(
    tokens: TokenMaker,
    *,
    body: bytes = BODY,
    method: str = GET_VEHICLE,
    identity: Identity = _moh_identity,
) -> Callable[[HostileWorld], Outcome]:
    """A call to MPWT's provider endpoint as `identity`, carrying these request tokens."""

    def attack(h: HostileWorld) -> Outcome:
        with _provider_channel(h, *identity(h)) as channel:
            return _call(channel, method, body, [(REQUEST_TOKEN, t) for t in tokens(h)])

    return attack


# --- tokens ------------------------------------------------------------------------------


class _Drop:
    """Marks a header parameter or claim to leave out."""


DROP = _Drop()


def _key(h: HostileWorld, member: str) -> pki.PrivateKey:
    return keyfiles.load_private_key(h.folder(member) / "keys" / "signing.key")


def _kid(h: HostileWorld, member: str) -> str:
    return rogue.signer_of(h.folder(member)).kid


def forged(
    *,
    header: dict[str, object] | None = None,
    claims: dict[str, object] | None = None,
    signer: str | None = MOH,
    client: str = NHIS,
    audience: str = VEHICLES,
    method: str = GET_VEHICLE,
    body: bytes = BODY,
) -> TokenMaker:
    """A request token made by hand: the genuine one of `signer`, then edited.

    Edits apply to the JSON objects before signing, so the signature is valid
    over whatever is sent; `signer=None` leaves a junk signature.
    """

    def make(h: HostileWorld) -> Sequence[str]:
        genuine = rogue.claims_for(client, audience, method, body)
        kid = _kid(h, signer or MOH)
        head: dict[str, object] = {"alg": "ES256", "typ": REQUEST_TYPE, "kid": kid}
        payload = rogue.raw_payload(genuine)
        for target, edits in ((head, header or {}), (payload, claims or {})):
            for name, value in edits.items():
                if isinstance(value, _Drop):
                    target.pop(name, None)
                else:
                    target[name] = value(h) if callable(value) else value
        key = None if signer is None else _key(h, signer)
        return [rogue.sign_raw(head, payload, key)]

    return make


def genuine(
    signer: str = MOH,
    *,
    client: str = NHIS,
    audience: str = VEHICLES,
    method: str = GET_VEHICLE,
    body: bytes = BODY,
    lifetime: int = 60,
    shift: int = 0,
) -> TokenMaker:
    """A token the genuine signer of `signer` makes, its times moved by `shift` seconds."""

    def make(h: HostileWorld) -> Sequence[str]:
        claims = rogue.claims_for(client, audience, method, body, lifetime=lifetime)
        claims = rogue.reissued(
            claims, issued_at=claims.issued_at + shift, expires_at=claims.expires_at + shift
        )
        return [rogue.signer_of(h.folder(signer)).sign_request(claims)]

    return make


def _unknown_key(h: HostileWorld) -> Sequence[str]:
    key = pki.generate_key()
    claims = rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY)
    return [TokenSigner(key, pki.create_ca(key, "KH")).sign_request(claims)]


def _hs256_with_public_key(h: HostileWorld) -> Sequence[str]:
    # The classic confusion: HMAC keyed with the verifier's own public key PEM.
    cert = keyfiles.load_certificate(h.folder(MOH) / "keys" / "signing.crt")
    secret = pki.certificate_pem(cert)
    head = {"alg": "HS256", "typ": REQUEST_TYPE, "kid": _kid(h, MOH)}
    payload = rogue.raw_payload(rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY))
    return [rogue.hs256(head, payload, secret)]


def _alg_none(signature: str) -> TokenMaker:
    def make(h: HostileWorld) -> Sequence[str]:
        head = {"alg": "none", "typ": REQUEST_TYPE, "kid": _kid(h, MOH)}
        payload = rogue.raw_payload(rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY))
        return [f"{rogue.segment(head)}.{rogue.segment(payload)}.{signature}"]

    return make


def _duplicate_claim(h: HostileWorld) -> Sequence[str]:
    # Two "aud" names: legal JSON, parser-dependent meaning; signed genuinely.
    head = {"alg": "ES256", "typ": REQUEST_TYPE, "kid": _kid(h, MOH)}
    payload = rogue.raw_payload(rogue.claims_for(NHIS, VEHICLES, GET_VEHICLE, BODY))
    text = json.dumps(payload, separators=(",", ":"))[:-1] + f',"aud":"{IDREG}"}}'
    return [rogue.sign_raw(head, text.encode(), _key(h, MOH))]


def _padded(h: HostileWorld) -> Sequence[str]:
    (token,) = genuine()(h)
    head, payload, signature = token.split(".")
    return [f"{head}.{payload}==.{signature}"]


def _deeply_nested(h: HostileWorld) -> Sequence[str]:
    # Found by tests/gateway/test_metadata_properties.py: the provider read the
    # claimed exchange id with json.loads, whose RecursionError escaped the
    # handler (UNKNOWN, no record).
    head = {"alg": "ES256", "typ": REQUEST_TYPE, "kid": _kid(h, MOH)}
    return [rogue.sign_raw(head, b"[" * 5000, _key(h, MOH))]


def _twice(h: HostileWorld) -> Sequence[str]:
    return [*genuine()(h), *genuine()(h)]


# --- certificates ------------------------------------------------------------------------


def _federation_cert(
    *, shift: dt.timedelta = dt.timedelta(0), validity: dt.timedelta = dt.timedelta(days=1)
) -> Identity:
    """A TLS identity for MOH/ss1 issued by the real federation CA, but not the listed one."""

    def identity(h: HostileWorld) -> tuple[bytes | None, bytes | None]:
        authority = h.federation.root / "authority"
        ca_key = keyfiles.load_private_key(authority / "ca.key")
        ca_cert = keyfiles.load_certificate(authority / "ca.crt")
        key = pki.generate_key()
        csr = pki.make_csr(key, f"{MOH}/ss1", "server")
        cert = pki.issue_server_certificate(
            ca_key,
            ca_cert,
            csr,
            parse_server(f"{MOH}/ss1"),
            "127.0.0.1:1",
            now=dt.datetime.now(dt.UTC) + shift,
            validity=validity,
        )
        return pki.private_key_pem(key), pki.certificate_pem(cert)

    return identity


def _foreign_ca(h: HostileWorld) -> tuple[bytes | None, bytes | None]:
    ca_key = pki.generate_key()
    ca_cert = pki.create_ca(ca_key, "KH")
    key = pki.generate_key()
    csr = pki.make_csr(key, f"{MOH}/ss1", "server")
    cert = pki.issue_server_certificate(
        ca_key, ca_cert, csr, parse_server(f"{MOH}/ss1"), "127.0.0.1:1"
    )
    return pki.private_key_pem(key), pki.certificate_pem(cert)


def _revoked(h: HostileWorld) -> tuple[bytes | None, bytes | None]:
    return h.revoked.key_pem, h.revoked.cert_pem


# --- request fields the adapter sees -------------------------------------------------------


def _plate(plate: str) -> bytes:
    return vehicles_pb2.GetVehicleRequest(plate=plate).SerializeToString()


def _vehicle_rows(h: HostileWorld) -> int:
    with sqlite3.connect(h.vehicles_database()) as conn:
        return int(conn.execute("SELECT count(*) FROM vehicles").fetchone()[0])


def sql_fragment(plate: str) -> Callable[[HostileWorld], Outcome]:
    """SQL in a request field is a value like any other: no row, and the table is intact."""

    def attack(h: HostileWorld) -> Outcome:
        rows = _vehicle_rows(h)
        outcome = via_consumer(body=_plate(plate))(h)
        assert _vehicle_rows(h) == rows, "the vehicles table changed"
        return outcome

    return attack


def _headers(**extra: str) -> list[tuple[str, str]]:
    found = [(CLIENT, NHIS), (SERVICE, VEHICLES)]
    return found + [(name.replace("_", "-"), value) for name, value in extra.items()]


def _replayed(h: HostileWorld) -> Outcome:
    (token,) = genuine()(h)
    first = direct(lambda _: [token])(h)
    assert first.code is grpc.StatusCode.OK, first.details
    return direct(lambda _: [token])(h)


OVERSIZE = b"\x0a" + b"\x80\x80\x04" + b"x" * (MAX_MESSAGE_BYTES + 1024)
HUGE = b"x" * (2 * MAX_MESSAGE_BYTES + 1024)
U = grpc.StatusCode
D = dt.timedelta

CASES = [
    # --- TLS: refused in the handshake, below Spean: no exchange id, no record ---------------
    pytest.param(
        Case(direct(genuine(), identity=lambda h: (None, None)), U.UNAVAILABLE, "handshake"),
        id="tls-no-client-certificate",
    ),
    pytest.param(
        Case(direct(genuine(), identity=_foreign_ca), U.UNAVAILABLE, "handshake"),
        id="tls-foreign-ca",
    ),
    pytest.param(
        Case(
            direct(genuine(), identity=_federation_cert(shift=-D(days=3))),
            U.UNAVAILABLE,
            "handshake",
        ),
        id="tls-expired-certificate",
    ),
    pytest.param(
        Case(
            direct(genuine(), identity=_federation_cert(shift=D(days=2))),
            U.UNAVAILABLE,
            "handshake",
        ),
        id="tls-not-yet-valid-certificate",
    ),
    # --- TLS: a handshake that passes, a peer that Spean refuses -----------------------------
    pytest.param(
        Case(
            direct(genuine(), identity=_federation_cert()),
            U.UNAUTHENTICATED,
            "provider",
            "not that of a security server listed",
        ),
        id="tls-federation-certificate-not-listed",
    ),
    pytest.param(
        Case(direct(genuine(), identity=_revoked), U.UNAUTHENTICATED, "provider", "is revoked"),
        id="tls-revoked-certificate",
    ),
    pytest.param(
        Case(direct(genuine(MOI, client=IDREG)), U.UNAUTHENTICATED, "provider", "another member"),
        id="server-of-member-x-token-of-member-y",
    ),
    # --- the request token header -----------------------------------------------------------
    pytest.param(
        Case(direct(lambda h: []), U.UNAUTHENTICATED, "provider", "is missing"),
        id="token-missing",
    ),
    pytest.param(
        Case(direct(_twice), U.UNAUTHENTICATED, "provider", "more than once"),
        id="token-twice",
    ),
    pytest.param(
        Case(direct(lambda h: ["e" * 9000]), U.UNAUTHENTICATED, "provider", "longer than"),
        id="token-oversize",
    ),
    pytest.param(
        Case(direct(lambda h: ["not.a-token"]), U.UNAUTHENTICATED, "provider", "compact JWS"),
        id="token-not-a-jws",
    ),
    pytest.param(
        Case(direct(_padded), U.UNAUTHENTICATED, "provider", "compact JWS"),
        id="token-base64-padding",
    ),
    pytest.param(
        Case(direct(_deeply_nested), U.UNAUTHENTICATED, "provider", "not valid UTF-8 JSON"),
        id="token-deeply-nested-json",
    ),
    pytest.param(
        Case(direct(_unknown_key), U.UNAUTHENTICATED, "provider", "unknown key"),
        id="token-unknown-key",
    ),
    pytest.param(
        Case(
            direct(forged(header={"kid": lambda h: _kid(h, MOI)})),
            U.UNAUTHENTICATED,
            "provider",
            "does not verify",
        ),
        id="token-kid-of-another-member",
    ),
    pytest.param(
        Case(
            direct(
                forged(
                    header={
                        "kid": lambda h: pki.thumbprint(
                            keyfiles.load_certificate(h.federation.root / "authority" / "ca.crt")
                        )
                    }
                )
            ),
            U.UNAUTHENTICATED,
            "provider",
            "unknown key",
        ),
        id="token-kid-of-the-ca",
    ),
    pytest.param(
        Case(direct(_alg_none("")), U.UNAUTHENTICATED, "provider", "compact JWS"),
        id="token-alg-none-empty-signature",
    ),
    pytest.param(
        Case(direct(_alg_none("c2lnbmVk")), U.UNAUTHENTICATED, "provider", "'none'"),
        id="token-alg-none",
    ),
    pytest.param(
        Case(direct(_hs256_with_public_key), U.UNAUTHENTICATED, "provider", "'HS256'"),
        id="token-hs256-with-public-key",
    ),
    pytest.param(
        Case(
            direct(forged(header={"alg": "EdDSA"})),
            U.UNAUTHENTICATED,
            "provider",
            "takes ES256 only",
        ),
        id="token-alg-not-the-keys",
    ),
    pytest.param(
        Case(
            direct(forged(header={"jku": "https://attacker.example/keys"})),
            U.UNAUTHENTICATED,
            "provider",
            "unexpected parameters",
        ),
        id="token-header-jku",
    ),
    pytest.param(
        Case(
            direct(forged(header={"typ": RESPONSE_TYPE})),
            U.UNAUTHENTICATED,
            "provider",
            "has type",
        ),
        id="token-response-type",
    ),
    pytest.param(
        Case(direct(forged(signer=None)), U.UNAUTHENTICATED, "provider", "does not verify"),
        id="token-junk-signature",
    ),
    # --- the request token claims -----------------------------------------------------------
    pytest.param(
        Case(direct(forged(claims={"req": DROP})), U.UNAUTHENTICATED, "provider", "lacks claim"),
        id="claim-missing",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"adm": True})),
            U.UNAUTHENTICATED,
            "provider",
            "unexpected claim",
        ),
        id="claim-extra",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"iat": "1700000000"})),
            U.UNAUTHENTICATED,
            "provider",
            "must be an integer",
        ),
        id="claim-time-as-string",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"exp": True})),
            U.UNAUTHENTICATED,
            "provider",
            "must be an integer",
        ),
        id="claim-time-as-boolean",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"aud": [VEHICLES]})),
            U.UNAUTHENTICATED,
            "provider",
            "must be a string",
        ),
        id="claim-audience-as-array",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"sub": IDREG})),
            U.UNAUTHENTICATED,
            "provider",
            "not a subsystem of issuer",
        ),
        id="claim-client-of-another-member",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"jti": "1"})),
            U.UNAUTHENTICATED,
            "provider",
            "UUID4",
        ),
        id="claim-exchange-id-not-uuid",
    ),
    pytest.param(
        Case(
            direct(forged(claims={"usr": "dr.sokha\n2024-01-01 OK exchange forged"})),
            U.UNAUTHENTICATED,
            "provider",
            "control characters",
        ),
        id="claim-user-log-injection",
    ),
    pytest.param(
        Case(direct(_duplicate_claim), U.UNAUTHENTICATED, "provider", "repeats the name"),
        id="claim-duplicated",
    ),
    pytest.param(
        Case(direct(genuine(shift=-600)), U.UNAUTHENTICATED, "provider", "expired"),
        id="token-expired",
    ),
    pytest.param(
        Case(direct(genuine(shift=120)), U.UNAUTHENTICATED, "provider", "in the future"),
        id="token-issued-in-the-future",
    ),
    pytest.param(
        Case(direct(genuine(lifetime=3600)), U.UNAUTHENTICATED, "provider", "exceeds the maximum"),
        id="token-lifetime-too-long",
    ),
    # --- binding the token to the call --------------------------------------------------------
    pytest.param(
        Case(direct(genuine(audience=IDREG)), U.NOT_FOUND, "provider", "is not published on"),
        id="token-wrong-audience",
    ),
    pytest.param(
        Case(
            direct(genuine(audience="KH/GOV/MPWT/ghost")),
            U.NOT_FOUND,
            "provider",
            "is not published on",
        ),
        id="token-unknown-subsystem",
    ),
    pytest.param(
        Case(
            direct(genuine(method="/vehicles.v1.VehicleRegistry/ListVehiclesByOwner")),
            U.UNAUTHENTICATED,
            "provider",
            "for method",
        ),
        id="token-wrong-method",
    ),
    pytest.param(
        Case(
            direct(genuine(), body=_plate("2A-9999")),
            U.UNAUTHENTICATED,
            "provider",
            "does not match the digest",
        ),
        id="body-digest-mismatch",
    ),
    pytest.param(
        Case(_replayed, U.UNAUTHENTICATED, "provider", "replay"),
        id="replayed-exchange-id",
    ),
    pytest.param(
        Case(
            direct(genuine(method=DELETE_VEHICLE), method=DELETE_VEHICLE),
            U.NOT_FOUND,
            "provider",
            "does not publish method",
        ),
        id="provider-unknown-method",
    ),
    pytest.param(
        Case(
            direct(genuine(body=OVERSIZE), body=OVERSIZE),
            U.RESOURCE_EXHAUSTED,
            "provider",
            "exceeds the limit",
        ),
        id="provider-oversize-request",
    ),
    # --- the consumer endpoint: headers, method, size -------------------------------------
    pytest.param(
        Case(via_consumer([(SERVICE, VEHICLES)]), U.INVALID_ARGUMENT, "consumer", "missing"),
        id="header-client-missing",
    ),
    pytest.param(
        Case(via_consumer([(CLIENT, NHIS)]), U.INVALID_ARGUMENT, "consumer", "missing"),
        id="header-service-missing",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, NHIS), (SERVICE, VEHICLES), (SERVICE, IDREG)]),
            U.INVALID_ARGUMENT,
            "consumer",
            "more than once",
        ),
        id="header-service-twice",
    ),
    pytest.param(
        Case(
            via_consumer([*_headers(spean_user="a"), (USER, "b")]),
            U.INVALID_ARGUMENT,
            "consumer",
            "more than once",
        ),
        id="header-user-twice",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, f"{NHIS}' OR 1=1 --"), (SERVICE, VEHICLES)]),
            U.INVALID_ARGUMENT,
            "consumer",
            "must be 1-63 letters, digits or hyphens",
        ),
        id="header-client-sql",
    ),
    pytest.param(
        Case(
            via_consumer(_headers(spean_user="u" * 2000)),
            U.INVALID_ARGUMENT,
            "consumer",
            "longer than 1024 bytes",
        ),
        id="header-user-2kb",
    ),
    pytest.param(
        Case(
            via_consumer(_headers(spean_purpose="admission\u0085forged")),
            U.INTERNAL,
            "grpc",
        ),
        id="header-purpose-c1-control",
    ),
    pytest.param(
        Case(via_consumer(_headers(spean_user="dr\nforged")), U.INTERNAL, "grpc"),
        id="header-user-newline",
    ),
    pytest.param(
        Case(via_consumer(_headers(spean_user="dr\x00forged")), U.INTERNAL, "grpc"),
        id="header-user-nul",
    ),
    pytest.param(
        Case(via_consumer(_headers(spean_purpose="p" * 65536)), U.RESOURCE_EXHAUSTED, "grpc"),
        id="header-purpose-64kb",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, "KH/GOV/MOH/ghost"), (SERVICE, VEHICLES)]),
            U.PERMISSION_DENIED,
            "consumer",
            "not registered",
        ),
        id="client-not-registered-here",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, IDREG), (SERVICE, VEHICLES)]),
            U.PERMISSION_DENIED,
            "consumer",
            f"does not belong to {MOH}",
        ),
        id="client-of-another-member",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, NHIS), (SERVICE, "KH/GOV/MOF/tax")]),
            U.NOT_FOUND,
            "consumer",
            "member KH/GOV/MOF is not in the federation",
        ),
        id="unknown-member",
    ),
    pytest.param(
        Case(
            via_consumer([(CLIENT, NHIS), (SERVICE, "KH/GOV/MPWT/ghost")]),
            U.NOT_FOUND,
            "consumer",
            "service subsystem KH/GOV/MPWT/ghost is not in the federation",
        ),
        id="unknown-subsystem",
    ),
    pytest.param(
        Case(via_consumer(method=DELETE_VEHICLE), U.NOT_FOUND, "consumer", DELETE_VEHICLE),
        id="unknown-method-of-known-service",
    ),
    pytest.param(
        Case(
            via_consumer(method="/Greeter/SayHello"),
            U.INVALID_ARGUMENT,
            "consumer",
            "must be a gRPC path of the form /package.Service/Method",
        ),
        id="method-without-package",
    ),
    pytest.param(
        Case(via_consumer(body=OVERSIZE), U.RESOURCE_EXHAUSTED, "consumer", "exceeds"),
        id="consumer-oversize-request",
    ),
    pytest.param(
        Case(via_consumer(body=HUGE), U.RESOURCE_EXHAUSTED, "grpc"),
        id="request-above-grpc-limit",
    ),
    # --- answered by the adapter, which released nothing ------------------------------------
    pytest.param(
        Case(
            via_consumer(body=b"\x0a\xff\xff\xff\xff\x0f"),
            U.INVALID_ARGUMENT,
            "provider",
            "not a valid vehicles.v1.GetVehicleRequest",
            adapter_called=True,
        ),
        id="malformed-protobuf",
    ),
    pytest.param(
        Case(
            via_consumer(body=b"\x0a\x02\xc3\x28"),
            U.INVALID_ARGUMENT,
            "provider",
            "request is not a valid vehicles.v1.GetVehicleRequest message",
            adapter_called=True,
        ),
        id="protobuf-string-not-utf8",
    ),
    pytest.param(
        Case(
            sql_fragment("' OR '1'='1"),
            U.NOT_FOUND,
            "provider",
            "no result for GetVehicle",
            adapter_called=True,
        ),
        id="sql-fragment-or-true",
    ),
    pytest.param(
        Case(
            sql_fragment("x'; DROP TABLE vehicles; --"),
            U.NOT_FOUND,
            "provider",
            "no result for GetVehicle",
            adapter_called=True,
        ),
        id="sql-fragment-drop-table",
    ),
    pytest.param(
        Case(
            via_consumer(body=_plate(HUGE_PLATE)),
            U.RESOURCE_EXHAUSTED,
            "provider",
            "response message",
            adapter_called=True,
        ),
        id="oversize-response",
    ),
]


def _sizes(h: HostileWorld) -> dict[str, int]:
    return {member: h.server(member).audit.size() for member in MEMBERS}


def _records(h: HostileWorld, member: str, exchange_id: str) -> list[AuditRecord]:
    return [r for r in h.records(member) if r.exchange_id == exchange_id]


@pytest.mark.parametrize("case", CASES)
def test_hostile_call_is_refused_and_recorded(hostile: HostileWorld, case: Case) -> None:
    before = _sizes(hostile)
    outcome = case.attack(hostile)
    assert outcome.code is case.status, outcome.details

    if case.refused_by in ("handshake", "grpc"):
        # Below Spean: nothing to label, nothing written, the adapter untouched.
        assert outcome.exchange_id == ""
        assert _sizes(hostile) == before
        return

    assert outcome.exchange_id, "every answer of Spean's handler carries an exchange id"
    refusing = MOH if case.refused_by == "consumer" else MPWT
    records = _records(hostile, refusing, outcome.exchange_id)
    assert records, f"{refusing} wrote no record of {outcome.exchange_id}"
    record = records[-1]  # a replay's refusal follows the original's record
    assert record.status == case.status.name
    assert case.message in record.message
    assert record.message == outcome.details, "the record holds the message the caller got"
    assert "Traceback" not in outcome.details

    if case.refused_by == "consumer":
        for provider in (MPWT, MOI):
            assert _records(hostile, provider, outcome.exchange_id) == []
        return
    assert record.response_messages == 0
    if case.adapter_called:
        assert record.forwarded_at_ns != 0
    else:
        assert record.forwarded_at_ns == 0, "the adapter was reached"
    consumer = _records(hostile, MOH, outcome.exchange_id)
    if consumer:  # the call came through MOH's consumer: both sides agree
        assert [r.status for r in consumer] == [case.status.name]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_every_refusal_by_spean_says_what_it_expects_the_message_to_name() -> None:
    unnamed = [
        param.id
        for param in CASES
        if param.values[0].refused_by in ("consumer", "provider") and not param.values[0].message
    ]
    assert unnamed == [], "a Spean refusal must be checked for words naming what is wrong"
