"""Token test fixtures: members with real keys, claims, and forged tokens.

Each `Party` is a member with a real signing key (EC P-256 or Ed25519), a
self-signed certificate and its `TokenSigner`; `RESOLVE` trusts the three.
`forge` makes a token with exactly the header and payload given, validly
signed, so a test can show that one defect alone is refused (`refused`,
`refused_response`). The hypothesis strategies draw any valid claims.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from spean.gateway.digests import b64url, request_digest, response_digest
from spean.gateway.errors import Unauthenticated
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.token_claims import KeyResolver, RequestClaims, ResponseClaims, VerifyingKey
from spean.gateway.token_signing import TokenSigner
from spean.gateway.token_verification import verify_request, verify_response

NOW = 1_700_000_000


SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def make_certificate(key: SigningKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
    )
    return builder.sign(
        key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    )


class Party:
    """A member with its signing key, certificate and token signer."""

    def __init__(self, member: str, key: SigningKey) -> None:
        self.member = MemberId.parse(member)
        self.key = key
        self.certificate = make_certificate(key, member)
        self.signer = TokenSigner(key, self.certificate)
        self.algorithm = self.signer.algorithm
        self.kid = self.signer.kid
        self.trusted = VerifyingKey.from_certificate(self.member, self.certificate)


MOH = Party("KH/GOV/MOH", ec.generate_private_key(ec.SECP256R1()))


MPWT = Party("KH/GOV/MPWT", ed25519.Ed25519PrivateKey.generate())


MOF = Party("KH/GOV/MOF", ec.generate_private_key(ec.SECP256R1()))


PARTIES = {"ES256": MOH, "EdDSA": MPWT}


RESOLVE: KeyResolver = {party.kid: party.trusted for party in (MOH, MPWT, MOF)}.get


NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")


VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")


METHOD = "/vehicles.v1.VehicleRegistry/GetVehicle"


BODY = b"\x0a\x07ABC-123"


EXCHANGE = "0b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a"


def request_claims(party: Party = MOH, **changes: Any) -> RequestClaims:
    claims = RequestClaims(
        issuer=party.member,
        client=party.member.child("nhis"),
        audience=VEHICLES,
        method=METHOD,
        exchange_id=EXCHANGE,
        issued_at=NOW,
        expires_at=NOW + 60,
        request_sha256=request_digest(BODY),
    )
    return replace(claims, **changes)


def response_claims(party: Party = MPWT, **changes: Any) -> ResponseClaims:
    claims = ResponseClaims(
        issuer=party.member,
        provider=party.member.child("vehicles"),
        audience=NHIS,
        exchange_id=EXCHANGE,
        issued_at=NOW,
        expires_at=NOW + 60,
        status="OK",
        response_sha256=response_digest([b"vehicle"]),
        response_messages=1,
    )
    return replace(claims, **changes)


def raw_signature(key: SigningKey, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def forge_raw(header: bytes, payload: bytes, key: SigningKey) -> str:
    signing_input = b64url(header) + "." + b64url(payload)
    return signing_input + "." + b64url(raw_signature(key, signing_input.encode()))


def forge(
    payload: dict[str, Any],
    party: Party = MOH,
    *,
    header: dict[str, Any] | None = None,
    key: SigningKey | None = None,
) -> str:
    """A token with exactly this header and payload, validly signed (by `key`, else the party's)."""
    if header is None:
        header = {"alg": party.algorithm, "typ": "spean-req+jwt", "kid": party.kid}
    return forge_raw(json.dumps(header).encode(), json.dumps(payload).encode(), key or party.key)


def request_payload(party: Party = MOH, /, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": str(party.member),
        "sub": f"{party.member}/nhis",
        "aud": str(VEHICLES),
        "mth": METHOD,
        "jti": EXCHANGE,
        "iat": NOW,
        "exp": NOW + 60,
        "req": b64url(request_digest(BODY)),
    }
    payload.update(changes)
    return payload


def response_payload(party: Party = MPWT, /, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": str(party.member),
        "sub": f"{party.member}/vehicles",
        "aud": str(NHIS),
        "jti": EXCHANGE,
        "iat": NOW,
        "exp": NOW + 60,
        "sts": "OK",
        "res": b64url(response_digest([b"vehicle"])),
        "cnt": 1,
    }
    payload.update(changes)
    return payload


def forge_response(payload: dict[str, Any], party: Party = MPWT) -> str:
    header = {"alg": party.algorithm, "typ": "spean-res+jwt", "kid": party.kid}
    return forge(payload, party, header=header)


def refused(token: Any, match: str, resolve: KeyResolver = RESOLVE, **options: Any) -> None:
    with pytest.raises(Unauthenticated, match=match) as caught:
        verify_request(token, resolve, now=NOW, **options)
    assert_clean(caught.value)


def refused_response(token: str, match: str, **expected: Any) -> None:
    context: dict[str, Any] = {
        "expected_exchange_id": EXCHANGE,
        "expected_provider": VEHICLES,
        "expected_client": NHIS,
    }
    context.update(expected)
    with pytest.raises(Unauthenticated, match=match) as caught:
        verify_response(token, RESOLVE, now=NOW, **context)
    assert_clean(caught.value)


def assert_clean(error: Unauthenticated) -> None:
    """The message is for an operator: short, no library internals, no chained cause."""
    assert error.code.name == "UNAUTHENTICATED"
    assert len(error.message) < 300
    for leak in ("PyJWT", "jwt.", "Error", "Traceback", "(char "):
        assert leak not in error.message
    assert error.__cause__ is None


def segments(token: str) -> list[str]:
    return token.split(".")


def header_bytes(party: Party = MOH) -> bytes:
    return json.dumps({"alg": party.algorithm, "typ": "spean-req+jwt", "kid": party.kid}).encode()


CODE = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)


MEMBERS = st.builds(MemberId, CODE, CODE, CODE)


METHODS = st.from_regex(
    r"/[A-Za-z_][A-Za-z0-9_]{0,6}\.[A-Za-z_][A-Za-z0-9_]{0,6}/[A-Za-z_][A-Za-z0-9_]{0,6}",
    fullmatch=True,
)


TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=40)


TIMES = st.integers(min_value=0, max_value=2**40)


@st.composite
def any_request_claims(draw: st.DrawFn) -> RequestClaims:
    issuer = draw(MEMBERS)
    issued_at = draw(TIMES)
    return RequestClaims(
        issuer=issuer,
        client=SubsystemId(issuer.instance, issuer.member_class, issuer.code, draw(CODE)),
        audience=SubsystemId(*[draw(CODE) for _ in range(4)]),
        method=draw(METHODS),
        exchange_id=str(draw(st.uuids(version=4))),
        issued_at=issued_at,
        expires_at=issued_at + draw(st.integers(1, 300)),
        request_sha256=draw(st.binary(min_size=32, max_size=32)),
        user=draw(TEXT),
        purpose=draw(TEXT),
    )


@st.composite
def any_response_claims(draw: st.DrawFn) -> ResponseClaims:
    issuer = draw(MEMBERS)
    issued_at = draw(TIMES)
    return ResponseClaims(
        issuer=issuer,
        provider=SubsystemId(issuer.instance, issuer.member_class, issuer.code, draw(CODE)),
        audience=SubsystemId(*[draw(CODE) for _ in range(4)]),
        exchange_id=str(draw(st.uuids(version=4))),
        issued_at=issued_at,
        expires_at=issued_at + draw(st.integers(1, 300)),
        status=draw(st.sampled_from(["OK", "NOT_FOUND", "UNAVAILABLE", "PERMISSION_DENIED"])),
        response_sha256=draw(st.binary(min_size=32, max_size=32)),
        response_messages=draw(st.integers(0, 2**31)),
    )


def resolver_for(party: Party, member: MemberId) -> Callable[[str], VerifyingKey | None]:
    # The party's key, trusted as the key of `member` (the claims' issuer).
    return {party.kid: VerifyingKey(member, party.key.public_key(), party.algorithm)}.get


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
