"""Request and response tokens, as a security server signs and checks them.

Real keys (EC P-256, Ed25519) with self-signed certificates. Refusals are
checked on tokens that are otherwise perfectly signed by the trusted key
(`forge`), so each test shows that its one defect alone is refused.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spean.gateway import pki
from spean.gateway.digests import b64url, request_digest, response_digest
from spean.gateway.errors import ConfigError, InvalidArgument, Unauthenticated
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import (
    MAX_TOKEN_SIZE,
    KeyResolver,
    RequestClaims,
    ResponseClaims,
    TokenSigner,
    VerifyingKey,
    algorithm_for_key,
    check_request_binding,
    check_response_binding,
    is_exchange_id,
    new_exchange_id,
    parse_exchange_id,
    verify_request,
    verify_response,
)

NOW = 1_700_000_000
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

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


# --- forging tokens with full control over every byte ---------------------------------------


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


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_request_round_trip(algorithm: str) -> None:
    party = PARTIES[algorithm]
    claims = request_claims(party, user="KH1234567", purpose="case 2024/17 (Health Act §5)")
    token = party.signer.sign_request(claims)
    assert verify_request(token, RESOLVE, now=NOW) == claims


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_response_round_trip(algorithm: str) -> None:
    party = PARTIES[algorithm]
    claims = response_claims(party, status="NOT_FOUND", response_sha256=response_digest([]))
    claims = replace(claims, response_messages=0)
    token = party.signer.sign_response(claims)
    verified = verify_response(
        token,
        RESOLVE,
        now=NOW,
        expected_exchange_id=EXCHANGE,
        expected_provider=party.member.child("vehicles"),
        expected_client=NHIS,
    )
    assert verified == claims


def test_request_wire_form_follows_the_contract() -> None:
    token = MOH.signer.sign_request(request_claims(user="KH1234567"))
    header_part, payload_part, signature_part = segments(token)
    header = json.loads(base64.urlsafe_b64decode(header_part + "=="))
    assert header == {"alg": "ES256", "typ": "spean-req+jwt", "kid": MOH.kid}
    assert (
        MOH.kid
        == hashlib.sha256(MOH.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    payload = json.loads(base64.urlsafe_b64decode(payload_part + "=="))
    assert payload == {
        "iss": "KH/GOV/MOH",
        "sub": "KH/GOV/MOH/nhis",
        "aud": "KH/GOV/MPWT/vehicles",
        "mth": METHOD,
        "jti": EXCHANGE,
        "iat": NOW,
        "exp": NOW + 60,
        "req": b64url(hashlib.sha256(BODY).digest()),
        "usr": "KH1234567",
    }  # 'pur' is omitted because it is empty
    assert len(base64.urlsafe_b64decode(signature_part + "==")) == 64
    assert token.isascii()


def test_response_wire_form_follows_the_contract() -> None:
    token = MPWT.signer.sign_response(response_claims())
    header_part, payload_part, _ = segments(token)
    header = json.loads(base64.urlsafe_b64decode(header_part + "=="))
    assert header == {"alg": "EdDSA", "typ": "spean-res+jwt", "kid": MPWT.kid}
    payload = json.loads(base64.urlsafe_b64decode(payload_part + "=="))
    assert payload == {
        "iss": "KH/GOV/MPWT",
        "sub": "KH/GOV/MPWT/vehicles",
        "aud": "KH/GOV/MOH/nhis",
        "jti": EXCHANGE,
        "iat": NOW,
        "exp": NOW + 60,
        "sts": "OK",
        "res": b64url(hashlib.sha256(b"\x00\x00\x00\x07vehicle").digest()),
        "cnt": 1,
    }


def test_non_ascii_user_and_purpose_survive() -> None:
    claims = request_claims(user="ស្ពាន", purpose="Ünïcode ✓ 𝄞")
    token = MOH.signer.sign_request(claims)
    assert token.isascii()
    assert verify_request(token, RESOLVE, now=NOW) == claims


def test_a_forged_token_with_the_documented_shape_verifies() -> None:
    # The forging helper itself must be right, or the refusal tests prove nothing.
    claims = verify_request(forge(request_payload(usr="u", pur="p")), RESOLVE, now=NOW)
    assert claims == request_claims(user="u", purpose="p")


# --- binding to the call ----------------------------------------------------------------------


def test_request_binding_accepts_the_call_it_was_made_for() -> None:
    check_request_binding(
        request_claims(), audience=VEHICLES, method=METHOD, body_sha256=request_digest(BODY)
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"audience": SubsystemId.parse("KH/GOV/MPWT/licences")},
            "addressed to KH/GOV/MPWT/vehicles",
        ),
        ({"method": "/vehicles.v1.VehicleRegistry/ListVehicles"}, "is for method"),
        ({"body_sha256": request_digest(BODY + b"\x00")}, "request body does not match"),
    ],
)
def test_request_binding_refuses_another_call(change: dict[str, Any], match: str) -> None:
    call: dict[str, Any] = {
        "audience": VEHICLES,
        "method": METHOD,
        "body_sha256": request_digest(BODY),
    }
    call.update(change)
    with pytest.raises(Unauthenticated, match=match):
        check_request_binding(request_claims(), **call)


def test_response_binding() -> None:
    claims = response_claims()
    good: dict[str, Any] = {
        "status": "OK",
        "response_sha256": response_digest([b"vehicle"]),
        "response_messages": 1,
    }
    check_response_binding(claims, **good)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"response_messages": 2}, "counts 1 messages, but 2 arrived"),
        ({"response_sha256": response_digest([b"vehicle", b""])}, "do not match the digest"),
        ({"status": "INTERNAL"}, "status OK, but the call ended with INTERNAL"),
    ]
    for change, match in changes:
        with pytest.raises(Unauthenticated, match=match):
            check_response_binding(claims, **{**good, **change})


# --- header and key refusals ------------------------------------------------------------------


def test_unknown_kid_is_refused_naming_the_key() -> None:
    stranger = Party("KH/GOV/MOJ", ec.generate_private_key(ec.SECP256R1()))
    token = stranger.signer.sign_request(request_claims(stranger))
    refused(token, f"request token signed by an unknown key {stranger.kid[:16]}")


def test_alg_none_is_refused() -> None:
    header = {"alg": "none", "typ": "spean-req+jwt", "kid": MOH.kid}
    unsigned = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(request_payload()).encode())
    )
    refused(unsigned + ".", "not a compact JWS")  # the classic form: empty signature
    refused(unsigned + ".AAAA", "algorithm 'none' is not accepted")


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    # Algorithm confusion: the attacker knows the public key and "signs" with it as an HMAC key.
    public_pem = MOH.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "spean-req+jwt", "kid": MOH.kid}
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(request_payload()).encode())
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    refused(signing_input + "." + b64url(mac), "algorithm 'HS256' is not accepted")


@pytest.mark.parametrize(("party", "claimed"), [(MPWT, "ES256"), (MOH, "EdDSA")])
def test_header_alg_must_be_the_algorithm_of_the_key(party: Party, claimed: str) -> None:
    header = {"alg": claimed, "typ": "spean-req+jwt", "kid": party.kid}
    token = forge(request_payload(party), party, header=header)
    refused(token, f"header says {claimed}, but key {party.kid[:16]} of {party.member} takes")


@pytest.mark.parametrize(
    "alg", ["ES384", "ES512", "RS256", "PS256", "HS512", "NONE", "", None, 1, ["ES256"]]
)
def test_other_algorithms_are_refused(alg: Any) -> None:
    header = {"alg": alg, "typ": "spean-req+jwt", "kid": MOH.kid}
    refused(forge(request_payload(), header=header), "algorithm .* is not accepted")


@pytest.mark.parametrize(
    "name", ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "cty", "b64", "zip", "nonce"]
)
def test_extra_header_parameters_are_refused(name: str) -> None:
    header: dict[str, Any] = {"alg": "ES256", "typ": "spean-req+jwt", "kid": MOH.kid, name: "x"}
    refused(forge(request_payload(), header=header), f"unexpected parameters '{name}'")


@pytest.mark.parametrize("name", ["alg", "typ", "kid"])
def test_every_header_parameter_is_required(name: str) -> None:
    header = {"alg": "ES256", "typ": "spean-req+jwt", "kid": MOH.kid}
    del header[name]
    refused(forge(request_payload(), header=header), f"header lacks '{name}'")


@pytest.mark.parametrize("typ", ["JWT", "spean-res+jwt", "SPEAN-REQ+JWT", None])
def test_request_type_is_required(typ: Any) -> None:
    header = {"alg": "ES256", "typ": typ, "kid": MOH.kid}
    refused(forge(request_payload(), header=header), "expected 'spean-req\\+jwt'")


def test_a_response_token_is_not_a_request_and_back() -> None:
    response = MPWT.signer.sign_response(response_claims())
    refused(response, "type 'spean-res\\+jwt', expected 'spean-req\\+jwt'")
    request = MOH.signer.sign_request(request_claims())
    refused_response(request, "type 'spean-req\\+jwt', expected 'spean-res\\+jwt'")


@pytest.mark.parametrize("kid", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, 7])
def test_kid_must_be_a_sha256_thumbprint(kid: Any) -> None:
    header = {"alg": "ES256", "typ": "spean-req+jwt", "kid": kid}
    refused(forge(request_payload(), header=header), "kid must be 64 lower-case hex")


def test_kid_naming_another_members_key_fails_the_signature() -> None:
    # Signed by MOH, but the header points at MOF's (same type) key.
    header = {"alg": "ES256", "typ": "spean-req+jwt", "kid": MOF.kid}
    token = forge(request_payload(), header=header, key=MOH.key)
    refused(token, f"signature does not verify with key {MOF.kid[:16]} of KH/GOV/MOF")


def test_a_member_cannot_sign_in_another_members_name() -> None:
    # MOF signs validly with its own key but claims to be MOH.
    token = forge(request_payload(MOH), MOF)
    refused(
        token,
        f"issuer KH/GOV/MOH does not own signing key {MOF.kid[:16]}, which belongs to KH/GOV/MOF",
    )


def test_client_must_be_a_subsystem_of_the_issuer() -> None:
    token = forge(request_payload(sub="KH/GOV/MOF/treasury"))
    refused(token, "client KH/GOV/MOF/treasury is not a subsystem of issuer KH/GOV/MOH")


def test_a_resolver_refusal_passes_through_unchanged() -> None:
    def revoked(kid: str) -> VerifyingKey | None:
        raise Unauthenticated(f"signing key {kid[:16]} was revoked")

    refused(
        MOH.signer.sign_request(request_claims()),
        f"signing key {MOH.kid[:16]} was revoked",
        revoked,
    )


# --- framing and signature refusals -----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "..",
        "a..c",
        "a.b.",
        ".b.c",
        "a b.c.d",
        "a.b.c ",
        "é.b.c",
        "a=.b.c",
    ],
)
def test_garbage_is_refused(token: str) -> None:
    refused(token, "not a compact JWS")


def test_non_text_is_refused() -> None:
    token = MOH.signer.sign_request(request_claims())
    refused(token.encode(), "must be text, got bytes")
    refused(None, "must be text, got NoneType")


def test_one_megabyte_token_is_refused_before_parsing() -> None:
    token = MOH.signer.sign_request(request_claims())
    huge = token + "A" * (1 << 20)
    refused(huge, f"is {len(huge)} characters long, more than the {MAX_TOKEN_SIZE} allowed")
    refused("A" * (MAX_TOKEN_SIZE + 1), "more than the 8192 allowed")


@pytest.mark.parametrize("defect", ["\x00", "\n", "\r\n", " ", "\t", "="])
def test_stray_characters_anywhere_are_refused(defect: str) -> None:
    token = MOH.signer.sign_request(request_claims())
    for position in (0, 10, token.index(".") + 1, len(token) - 1, len(token)):
        refused(token[:position] + defect + token[position:], "not a compact JWS")


def test_tampered_payload_is_refused() -> None:
    token = MOH.signer.sign_request(request_claims())
    header_part, _, signature_part = segments(token)
    other = b64url(json.dumps(request_payload(aud="KH/GOV/MPWT/licences")).encode())
    refused(f"{header_part}.{other}.{signature_part}", "signature does not verify")


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_tampered_signature_is_refused(algorithm: str) -> None:
    party = PARTIES[algorithm]
    token = party.signer.sign_request(request_claims(party))
    header_part, payload_part, signature_part = segments(token)
    signature = bytearray(base64.urlsafe_b64decode(signature_part + "=="))
    for index in (0, 31, 32, 63):
        flipped = bytearray(signature)
        flipped[index] ^= 0x01
        refused(
            f"{header_part}.{payload_part}.{b64url(bytes(flipped))}", "signature does not verify"
        )


@pytest.mark.parametrize("size", [0, 1, 63, 65, 72, 128])
def test_signature_of_the_wrong_size_is_refused(size: int) -> None:
    header_part, payload_part, _ = segments(MOH.signer.sign_request(request_claims()))
    signature = b64url(b"\x01" * size) or "AA"  # an empty segment is not a JWS at all
    refused(
        f"{header_part}.{payload_part}.{signature}",
        "signature is \\d+ bytes; ES256 signatures are 64",
    )


def test_a_der_encoded_ecdsa_signature_is_refused() -> None:
    # JWS carries r || s; a DER signature (another encoding of the same values) is not accepted.
    token = MOH.signer.sign_request(request_claims())
    header_part, payload_part, signature_part = segments(token)
    raw = base64.urlsafe_b64decode(signature_part + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    refused(f"{header_part}.{payload_part}.{b64url(der)}", "signature is \\d+ bytes")


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_no_character_can_change_without_the_token_failing(algorithm: str) -> None:
    """Every position, including the low bits of each segment's last character.

    A lenient base64 decoder ignores the 2 or 4 unused low bits of a segment's
    last character, so up to 15 other spellings decode to the same bytes; for
    the signature segment those would verify. Decoding is canonical, so there
    is no such no-op position: every single-character change must fail.
    """
    party = PARTIES[algorithm]
    token = party.signer.sign_request(request_claims(party))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position, char in enumerate(token):
        if char == ".":
            continue
        replacement = alphabet[(alphabet.index(char) + 1) % 64]
        with pytest.raises(Unauthenticated):
            verify_request(token[:position] + replacement + token[position + 1 :], RESOLVE, now=NOW)
    signature_part = segments(token)[2]
    lenient_same = 0
    for replacement in alphabet.replace(token[-1], ""):
        variant = signature_part[:-1] + replacement
        if base64.urlsafe_b64decode(variant + "==") == base64.urlsafe_b64decode(
            signature_part + "=="
        ):
            lenient_same += 1
            refused(token[:-1] + replacement, "signature: base64url value is not canonical")
        else:
            refused(token[:-1] + replacement, "signature")
    assert lenient_same == 15  # 86 characters carry 516 bits for 512: 4 spare bits


def test_replay_detection_must_key_on_jti_not_on_token_text() -> None:
    # ECDSA: (r, n - s) is a second valid signature, so one exchange can be
    # presented as two different token texts. Both verify to the same claims.
    token = MOH.signer.sign_request(request_claims())
    header_part, payload_part, signature_part = segments(token)
    raw = base64.urlsafe_b64decode(signature_part + "==")
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = f"{header_part}.{payload_part}.{b64url(r + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert twin != token
    assert verify_request(twin, RESOLVE, now=NOW) == verify_request(token, RESOLVE, now=NOW)


# --- JSON refusals (on validly signed tokens) ------------------------------------------------


def header_bytes(party: Party = MOH) -> bytes:
    return json.dumps({"alg": party.algorithm, "typ": "spean-req+jwt", "kid": party.kid}).encode()


def test_duplicate_names_are_refused() -> None:
    header = b'{"alg":"ES256","typ":"spean-req+jwt","kid":"%s","alg":"none"}' % MOH.kid.encode()
    payload = json.dumps(request_payload()).encode()
    refused(forge_raw(header, payload, MOH.key), "header repeats the name 'alg'")
    doubled = payload[:-1] + b',"aud":"KH/GOV/MPWT/licences"}'
    refused(forge_raw(header_bytes(), doubled, MOH.key), "payload repeats the name 'aud'")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"[]", "payload is not a JSON object"),
        (b'"text"', "payload is not a JSON object"),
        (b"", "payload: base64url|not a compact JWS"),
        (b"{", "not valid UTF-8 JSON"),
        (b'{"iss":"\xe9"}', "not valid UTF-8 JSON"),
        (b"\xef\xbb\xbf{}", "not valid UTF-8 JSON"),  # a byte order mark
        ('{"a":1}'.encode("utf-16"), "not valid UTF-8 JSON"),
        (b'{"iat":NaN}', "not valid UTF-8 JSON"),
        (b'{"iat":Infinity}', "not valid UTF-8 JSON"),
        (b"[" * 2000 + b"]" * 2000, "not valid UTF-8 JSON"),
    ],
)
def test_payload_must_be_a_plain_json_object(payload: bytes, match: str) -> None:
    refused(forge_raw(header_bytes(), payload, MOH.key), match)


def test_header_must_be_a_json_object() -> None:
    refused(
        forge_raw(b"[1]", json.dumps(request_payload()).encode(), MOH.key),
        "header is not a JSON object",
    )
    refused(
        forge_raw(b"{alg}", json.dumps(request_payload()).encode(), MOH.key),
        "header is not valid UTF-8 JSON",
    )


# --- claim refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "mth", "jti", "iat", "exp", "req"])
def test_every_request_claim_is_required(name: str) -> None:
    payload = request_payload()
    del payload[name]
    refused(forge(payload), f"request token lacks claim '{name}'")


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "jti", "iat", "exp", "sts", "res", "cnt"])
def test_every_response_claim_is_required(name: str) -> None:
    payload = response_payload()
    del payload[name]
    refused_response(forge_response(payload), f"response token lacks claim '{name}'")


@pytest.mark.parametrize("name", ["nbf", "scope", "cnt", "sts", "usr2", ""])
def test_extra_request_claims_are_refused(name: str) -> None:
    refused(forge(request_payload(**{name: 1})), f"unexpected claim '{name}'")


@pytest.mark.parametrize("name", ["usr", "pur", "mth", "req", "nbf"])
def test_extra_response_claims_are_refused(name: str) -> None:
    refused_response(forge_response(response_payload(**{name: "x"})), f"unexpected claim '{name}'")


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("iat", str(NOW), "'iat' must be an integer"),
        ("iat", float(NOW), "'iat' must be an integer"),
        ("exp", True, "'exp' must be an integer"),
        ("exp", None, "'exp' must be an integer"),
        ("iat", -1, "'iat' must not be negative"),
        ("iss", ["KH/GOV/MOH"], "'iss' must be a string"),
        ("sub", None, "'sub' must be a string"),
        ("aud", ["KH/GOV/MPWT/vehicles"], "'aud' must be a string"),
        ("mth", 5, "'mth' must be a string"),
        ("jti", 123, "'jti' must be a string"),
        ("req", {"sha256": "x"}, "'req' must be a string"),
        ("usr", 5, "'usr' must be a string"),
        ("pur", False, "'pur' must be a string"),
    ],
)
def test_request_claims_must_have_their_types(name: str, value: Any, match: str) -> None:
    refused(forge(request_payload(**{name: value})), f"request token claim {match}")


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("cnt", True, "claim 'cnt' must be an integer"),
        ("cnt", "1", "claim 'cnt' must be an integer"),
        ("cnt", 1.0, "claim 'cnt' must be an integer"),
        ("cnt", -1, "message count -1 must be a non-negative integer"),
        ("sts", 0, "claim 'sts' must be a string"),
        ("sts", "ok", "status 'ok' is not a gRPC status code name"),
        ("sts", "FINE", "status 'FINE' is not a gRPC status code name"),
        ("iat", "1700000000", "claim 'iat' must be an integer"),
        ("res", b64url(b"\x00" * 31), "claim 'res': .*32 bytes take 43"),
    ],
)
def test_response_claims_must_have_their_types(name: str, value: Any, match: str) -> None:
    refused_response(forge_response(response_payload(**{name: value})), match)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("iss", "KH/GOV", "claim 'iss': member identifier"),
        ("iss", "KH/GOV/MOH/nhis", "claim 'iss': member identifier"),
        ("sub", "KH/GOV/MOH", "claim 'sub': subsystem identifier"),
        ("sub", "KH/GOV/MOH/-nhis", "claim 'sub': subsystem identifier"),
        ("aud", "KH/GOV/MPWT/vehicles:/x.Y/Z", "claim 'aud': subsystem identifier"),
        ("mth", "GetVehicle", "claim 'mth': method"),
        ("mth", "/vehicles.v1.VehicleRegistry/GetVehicle/", "claim 'mth': method"),
        ("jti", EXCHANGE.upper(), "'jti' must be a lower-case UUID4"),
        ("jti", str(uuid.uuid1()), "'jti' must be a lower-case UUID4"),
        ("jti", EXCHANGE.replace("-", ""), "'jti' must be a lower-case UUID4"),
        ("jti", EXCHANGE + "\n", "'jti' must be a lower-case UUID4"),
        ("req", b64url(b"\x00" * 31), "claim 'req': .*32 bytes take 43"),
        ("req", b64url(b"\x00" * 32) + "=", "claim 'req': .*padding"),
        ("req", "A" * 42 + "B", "claim 'req': .*not canonical"),
        ("req", request_digest(BODY).hex(), "claim 'req'"),
        ("usr", "", "claim 'usr' must be omitted when empty"),
        ("pur", "", "claim 'pur' must be omitted when empty"),
        ("usr", "alice\nINFO forged log line", "user contains control characters"),
        ("pur", "x" * 1025, "purpose is longer than 1024 characters"),
    ],
)
def test_malformed_claim_values_are_refused(name: str, value: Any, match: str) -> None:
    refused(forge(request_payload(**{name: value})), match)


# --- time -------------------------------------------------------------------------------------


def test_expired_token_says_how_long_ago() -> None:
    token = MOH.signer.sign_request(request_claims(issued_at=NOW - 105, expires_at=NOW - 45))
    refused(token, "request token expired 45 s ago")


def test_expiry_leeway_boundary() -> None:
    at_edge = MOH.signer.sign_request(request_claims(issued_at=NOW - 90, expires_at=NOW - 30))
    refused(at_edge, "expired 30 s ago")
    inside = MOH.signer.sign_request(request_claims(issued_at=NOW - 89, expires_at=NOW - 29))
    assert verify_request(inside, RESOLVE, now=NOW).expires_at == NOW - 29
    refused(inside, "expired 29 s ago", leeway=0)


def test_token_from_the_future_is_refused() -> None:
    token = MOH.signer.sign_request(request_claims(issued_at=NOW + 31, expires_at=NOW + 91))
    refused(token, "issued 31 s in the future; check the clocks")
    on_edge = MOH.signer.sign_request(request_claims(issued_at=NOW + 30, expires_at=NOW + 90))
    assert verify_request(on_edge, RESOLVE, now=NOW).issued_at == NOW + 30


def test_lifetime_is_bounded() -> None:
    too_long = MOH.signer.sign_request(request_claims(expires_at=NOW + 301))
    refused(too_long, "lifetime of 301 s exceeds the maximum of 300 s")
    longest = MOH.signer.sign_request(request_claims(expires_at=NOW + 300))
    assert verify_request(longest, RESOLVE, now=NOW).expires_at == NOW + 300
    refused(longest, "maximum of 60 s", max_lifetime=60)


@pytest.mark.parametrize("exp", [NOW, NOW - 1])
def test_expiry_must_follow_issue(exp: int) -> None:
    refused(forge(request_payload(exp=exp)), "expires \\(exp\\) at or before it was issued")


def test_response_time_checks() -> None:
    refused_response(
        forge_response(response_payload(iat=NOW - 400, exp=NOW - 100)), "expired 100 s ago"
    )
    refused_response(forge_response(response_payload(exp=NOW + 3600)), "lifetime of 3600 s")


# --- response context -------------------------------------------------------------------------


def test_response_must_answer_this_exchange() -> None:
    other = new_exchange_id()
    refused_response(
        forge_response(response_payload(jti=other)),
        f"answers exchange {other}, not this exchange {EXCHANGE}",
    )


def test_response_must_come_from_the_provider_called() -> None:
    token = forge_response(response_payload(sub="KH/GOV/MPWT/licences"))
    refused_response(token, "comes from KH/GOV/MPWT/licences, not from KH/GOV/MPWT/vehicles")


def test_response_must_be_addressed_to_the_client() -> None:
    token = forge_response(response_payload(aud="KH/GOV/MOH/hospital"))
    refused_response(token, "addressed to KH/GOV/MOH/hospital, not to KH/GOV/MOH/nhis")


def test_response_issuer_must_own_the_key() -> None:
    # MOF signs a response in MPWT's name.
    header = {"alg": MOF.algorithm, "typ": "spean-res+jwt", "kid": MOF.kid}
    token = forge(response_payload(MPWT), MOF, header=header)
    refused_response(token, "issuer KH/GOV/MPWT does not own signing key")


def test_response_provider_must_belong_to_issuer() -> None:
    token = forge_response(response_payload(sub="KH/GOV/MOF/treasury"))
    expected = SubsystemId.parse("KH/GOV/MOF/treasury")
    refused_response(
        token,
        "provider KH/GOV/MOF/treasury is not a subsystem of issuer KH/GOV/MPWT",
        expected_provider=expected,
    )


# --- keys and signers -------------------------------------------------------------------------


def test_kid_is_the_certificate_thumbprint() -> None:
    assert MOH.signer.kid == MOH.certificate.fingerprint(hashes.SHA256()).hex()
    assert MOH.signer.kid == pki.thumbprint(MOH.certificate)


def test_algorithm_comes_from_the_key_type() -> None:
    assert algorithm_for_key(MOH.key) == algorithm_for_key(MOH.key.public_key()) == "ES256"
    assert algorithm_for_key(MPWT.key) == "EdDSA"
    with pytest.raises(ConfigError, match="signing key: elliptic curve secp384r1 is not supported"):
        algorithm_for_key(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(
        ConfigError, match="RSAPrivateKey is not supported; use EC P-256 or Ed25519"
    ):
        algorithm_for_key(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def test_a_verifying_key_cannot_be_given_another_algorithm() -> None:
    with pytest.raises(ConfigError, match="signing key of KH/GOV/MPWT is an EdDSA key"):
        VerifyingKey(MPWT.member, MPWT.key.public_key(), "ES256")
    with pytest.raises(ConfigError, match="not usable with 'HS256'"):
        VerifyingKey(MOH.member, MOH.key.public_key(), "HS256")
    assert VerifyingKey.from_certificate(MOH.member, MOH.certificate).algorithm == "ES256"


def test_signer_refuses_a_key_that_does_not_match_its_certificate() -> None:
    with pytest.raises(
        ConfigError, match=f"does not match the public key of certificate {MOF.kid[:16]}"
    ):
        TokenSigner(MOH.key, MOF.certificate)


def test_signer_does_not_show_its_key() -> None:
    text = repr(MOH.signer)
    assert text == f"TokenSigner(algorithm='ES256', kid='{MOH.kid[:16]}')"


def test_ecdsa_tokens_differ_each_time_eddsa_tokens_do_not() -> None:
    claims = request_claims()
    assert MOH.signer.sign_request(claims) != MOH.signer.sign_request(claims)
    mpwt_claims = request_claims(MPWT)
    assert MPWT.signer.sign_request(mpwt_claims) == MPWT.signer.sign_request(mpwt_claims)


# --- claim invariants -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"client": SubsystemId.parse("KH/GOV/MOF/treasury")},
            "client KH/GOV/MOF/treasury is not a subsystem",
        ),
        ({"issuer": "KH/GOV/MOH"}, "issuer must be a MemberId"),
        ({"audience": "KH/GOV/MPWT/vehicles"}, "must be SubsystemId values"),
        ({"method": "GetVehicle"}, "method 'GetVehicle' must be a gRPC path"),
        ({"exchange_id": EXCHANGE.upper()}, "must be a lower-case UUID4"),
        ({"issued_at": True}, "must be integers"),
        ({"expires_at": NOW}, "is not after issued-at time"),
        ({"issued_at": -5, "expires_at": 5}, "is negative"),
        ({"request_sha256": b"\x00" * 31}, "request digest must be 32 bytes"),
        ({"user": "a\x00b"}, "user contains control characters"),
        ({"purpose": "\ud800"}, "lone surrogates"),
        ({"user": 5}, "user must be a string"),
    ],
)
def test_request_claims_check_their_invariants(change: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        request_claims(**change)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"provider": SubsystemId.parse("KH/GOV/MOF/treasury")},
            "provider KH/GOV/MOF/treasury is not",
        ),
        ({"status": "Ok"}, "not a gRPC status code name"),
        ({"response_messages": -1}, "non-negative"),
        ({"response_messages": True}, "non-negative integer"),
        ({"response_sha256": "00" * 32}, "response digest must be 32 bytes"),
    ],
)
def test_response_claims_check_their_invariants(change: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        response_claims(**change)


# --- exchange ids -----------------------------------------------------------------------------


def test_new_exchange_ids_are_canonical_uuid4() -> None:
    ids = {new_exchange_id() for _ in range(1000)}
    assert len(ids) == 1000
    for exchange_id in ids:
        assert is_exchange_id(exchange_id)
        assert uuid.UUID(exchange_id).version == 4
        assert str(uuid.UUID(exchange_id)) == exchange_id
        assert parse_exchange_id(exchange_id) == exchange_id


@pytest.mark.parametrize(
    "text",
    [
        EXCHANGE.upper(),
        "{" + EXCHANGE + "}",
        "urn:uuid:" + EXCHANGE,
        EXCHANGE.replace("-", ""),
        EXCHANGE + "\n",
        EXCHANGE[:-1],
        "0b0e6f8e-6a40-1b8e-9c2a-1f0e1d2c3b4a",  # version 1
        "0b0e6f8e-6a40-4b8e-cc2a-1f0e1d2c3b4a",  # not the RFC 4122 variant
        "",
    ],
)
def test_exchange_ids_are_strict(text: str) -> None:
    assert not is_exchange_id(text)
    with pytest.raises(InvalidArgument, match="must be a lower-case UUID4"):
        parse_exchange_id(text)
    assert not is_exchange_id(None)


# --- properties -------------------------------------------------------------------------------

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


@FAST
@given(claims=any_request_claims(), algorithm=st.sampled_from(["ES256", "EdDSA"]))
def test_any_request_round_trips(claims: RequestClaims, algorithm: str) -> None:
    party = PARTIES[algorithm]
    token = party.signer.sign_request(claims)
    assert len(token) <= MAX_TOKEN_SIZE
    now = claims.issued_at
    assert verify_request(token, resolver_for(party, claims.issuer), now=now) == claims


@FAST
@given(claims=any_response_claims(), algorithm=st.sampled_from(["ES256", "EdDSA"]))
def test_any_response_round_trips(claims: ResponseClaims, algorithm: str) -> None:
    party = PARTIES[algorithm]
    token = party.signer.sign_response(claims)
    verified = verify_response(
        token,
        resolver_for(party, claims.issuer),
        now=claims.expires_at,
        expected_exchange_id=claims.exchange_id,
        expected_provider=claims.provider,
        expected_client=claims.audience,
    )
    assert verified == claims


@FAST
@given(
    claims=any_request_claims(),
    algorithm=st.sampled_from(["ES256", "EdDSA"]),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    byte=st.integers(0, 255),
)
def test_any_single_byte_mutation_is_refused(
    claims: RequestClaims, algorithm: str, where: float, byte: int
) -> None:
    """No byte of a token can change and still verify.

    Canonical base64url leaves no no-op positions (see
    test_no_character_can_change_without_the_token_failing), the signing
    input covers every header and payload character, and a changed signature
    byte breaks the signature, so the assertion is exact: always refused.
    """
    party = PARTIES[algorithm]
    token = party.signer.sign_request(claims).encode("ascii")
    position = int(where * len(token))
    if token[position] == byte:
        byte ^= 0x80
    mutated = (token[:position] + bytes([byte]) + token[position + 1 :]).decode("latin-1")
    with pytest.raises(Unauthenticated):
        verify_request(mutated, resolver_for(party, claims.issuer), now=claims.issued_at)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_signatures_interoperate_with_pyjwt_both_ways(algorithm: str) -> None:
    import jwt

    party = PARTIES[algorithm]
    claims = request_claims(party) if party is MOH else response_claims(party)
    token = (
        party.signer.sign_request(claims)
        if isinstance(claims, RequestClaims)
        else party.signer.sign_response(claims)
    )
    # What Spean signs, pyjwt verifies with the certificate's public key ...
    decoded = jwt.decode(
        token,
        party.key.public_key(),
        algorithms=[algorithm],
        options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
    )
    assert decoded["jti"] == EXCHANGE
    # ... and what pyjwt signs over the same header and claims, Spean verifies.
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    resigned = jwt.encode(decoded, party.key, algorithm=algorithm, headers=header)

    def verify(text: str) -> RequestClaims | ResponseClaims:
        if isinstance(claims, RequestClaims):
            return verify_request(text, RESOLVE, now=NOW)
        return verify_response(
            text,
            RESOLVE,
            now=NOW,
            expected_exchange_id=EXCHANGE,
            expected_provider=claims.provider,
            expected_client=NHIS,
        )

    assert verify(resigned) == claims
    # A changed signature is refused.
    head, _, _ = resigned.rpartition(".")
    forged = raw_signature(MOF.key, head.encode("ascii"))  # right size, wrong key
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        verify(head + "." + b64url(forged))
