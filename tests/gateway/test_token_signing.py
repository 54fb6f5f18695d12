"""Signing tokens: the wire form the contract fixes, and every signed token verifies.

Real keys (EC P-256, Ed25519) with self-signed certificates (tests/support/tokens.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given
from hypothesis import strategies as st

from spean.gateway import pki
from spean.gateway.digests import b64url, response_digest
from spean.gateway.errors import ConfigError
from spean.gateway.token_claims import MAX_TOKEN_SIZE, RequestClaims, ResponseClaims
from spean.gateway.token_signing import TokenSigner
from spean.gateway.token_verification import verify_request, verify_response
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
    any_request_claims,
    any_response_claims,
    request_claims,
    resolver_for,
    response_claims,
    segments,
)


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


def test_kid_is_the_certificate_thumbprint() -> None:
    assert MOH.signer.kid == MOH.certificate.fingerprint(hashes.SHA256()).hex()
    assert MOH.signer.kid == pki.thumbprint(MOH.certificate)


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


def test_a_response_naming_a_data_subject_carries_its_pseudonym_as_sbj() -> None:
    pseudonym = hashlib.sha256(b"a subject's pseudonym").digest()
    token = MPWT.signer.sign_response(response_claims(subject_pseudonym=pseudonym))
    payload = json.loads(base64.urlsafe_b64decode(segments(token)[1] + "=="))
    assert payload["sbj"] == b64url(pseudonym)
    assert len(payload["sbj"]) == 43
    verified = verify_response(
        token,
        RESOLVE,
        now=NOW,
        expected_exchange_id=EXCHANGE,
        expected_provider=MPWT.member.child("vehicles"),
        expected_client=NHIS,
    )
    assert verified.subject_pseudonym == pseudonym
