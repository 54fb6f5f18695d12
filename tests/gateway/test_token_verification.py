"""Verifying request and response tokens, as a security server checks them.

Real keys (EC P-256, Ed25519) with self-signed certificates. Refusals are
checked on tokens that are otherwise perfectly signed by the trusted key
(`forge`, tests/support/tokens.py), so each test shows that its one defect
alone is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from spean.gateway.digests import b64url, request_digest, response_digest
from spean.gateway.errors import Unauthenticated
from spean.gateway.identifiers import SubsystemId
from spean.gateway.token_claims import MAX_TOKEN_SIZE, RequestClaims, VerifyingKey, new_exchange_id
from spean.gateway.token_verification import (
    check_recorded_subject,
    check_request_binding,
    check_response_binding,
    check_subject_binding,
    verify_request,
    verify_response,
)
from tests.support.tokens import (
    BODY,
    EXCHANGE,
    FAST,
    METHOD,
    MOF,
    MOH,
    MPWT,
    NHIS,
    NOW,
    PARTIES,
    RESOLVE,
    VEHICLES,
    Party,
    any_request_claims,
    forge,
    forge_response,
    refused,
    refused_response,
    request_claims,
    request_payload,
    resolver_for,
    response_claims,
    response_payload,
    segments,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_a_forged_token_with_the_documented_shape_verifies() -> None:
    # The forging helper itself must be right, or the refusal tests prove nothing.
    claims = verify_request(forge(request_payload(usr="u", pur="p")), RESOLVE, now=NOW)
    assert claims == request_claims(user="u", purpose="p")


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


def test_unknown_kid_is_refused_naming_the_key() -> None:
    stranger = Party("KH/GOV/MOJ", ec.generate_private_key(ec.SECP256R1()))
    token = stranger.signer.sign_request(request_claims(stranger))
    refused(token, f"request token signed by an unknown key {stranger.kid[:16]}")


def test_a_key_the_resolver_refuses_is_named_with_its_reason() -> None:
    # A listed key that cannot be trusted (revoked, or outside its period) is
    # not an unknown key: the resolver says why, and the refusal passes it on.
    def revoking(kid: str) -> VerifyingKey | None:
        if kid == MOH.kid:
            raise Unauthenticated(
                "signing certificate of KH/GOV/MOH (serial 1f) is revoked"
                " (global configuration version 4)"
            )
        return RESOLVE(kid)

    token = MOH.signer.sign_request(request_claims(MOH))
    refused(
        token,
        f"^request token signed by key {MOH.kid[:16]}: signing certificate of KH/GOV/MOH"
        r" \(serial 1f\) is revoked \(global configuration version 4\)$",
        revoking,
    )


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


# --- the data subject (protocol.md 4.4) ---------------------------------------------------

PSEUDONYM = hashlib.sha256(b"pseudonym").digest()


def _response(payload: dict[str, Any]) -> Any:
    return verify_response(
        forge_response(payload),
        RESOLVE,
        now=NOW,
        expected_exchange_id=EXCHANGE,
        expected_provider=VEHICLES,
        expected_client=NHIS,
    )


def test_a_response_token_without_sbj_verifies_as_before() -> None:
    assert _response(response_payload()).subject_pseudonym == b""
    assert _response(response_payload(sbj=b64url(PSEUDONYM))).subject_pseudonym == PSEUDONYM


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "claim 'sbj'"),
        (b64url(PSEUDONYM[:16]), "claim 'sbj'"),
        (7, "claim 'sbj' must be a string"),
    ],
)
def test_a_malformed_sbj_is_refused(value: Any, match: str) -> None:
    refused_response(forge_response(response_payload(sbj=value)), match)


def test_the_subject_binding_follows_what_the_consumer_sent() -> None:
    with_subject = response_claims(subject_pseudonym=PSEUDONYM)
    check_subject_binding(with_subject, subject_sent=True)
    check_subject_binding(response_claims(), subject_sent=False)
    with pytest.raises(Unauthenticated, match="does not acknowledge the data subject"):
        check_subject_binding(response_claims(), subject_sent=True)
    # The provider refused at step 5a (no key, a malformed subject): no record was read.
    check_subject_binding(response_claims(status="FAILED_PRECONDITION"), subject_sent=True)
    with pytest.raises(Unauthenticated, match="names a data subject this call did not send"):
        check_subject_binding(with_subject, subject_sent=False)


def test_a_record_must_hold_the_pseudonym_its_response_token_signs() -> None:
    check_recorded_subject(response_claims(subject_pseudonym=PSEUDONYM), PSEUDONYM)
    check_recorded_subject(response_claims(), b"")
    with pytest.raises(Unauthenticated, match="not the record's subject_pseudonym"):
        check_recorded_subject(response_claims(subject_pseudonym=PSEUDONYM), b"")
    with pytest.raises(Unauthenticated, match="not the record's subject_pseudonym"):
        check_recorded_subject(response_claims(), PSEUDONYM)
