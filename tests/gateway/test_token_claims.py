"""Token claims: their invariants, exchange ids, and the one algorithm a key takes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.identifiers import SubsystemId
from spean.gateway.token_claims import (
    HEADER_PARAMETERS,
    OPTIONAL_REQUEST_CLAIMS,
    REQUEST_CLAIMS,
    RESPONSE_CLAIMS,
    VerifyingKey,
    algorithm_for_key,
    is_exchange_id,
    new_exchange_id,
    parse_exchange_id,
    quote,
    quote_names,
)
from tests.support.tokens import EXCHANGE, MOH, MPWT, NOW, request_claims, response_claims


def test_the_claim_names_are_the_contract() -> None:
    assert {"alg", "typ", "kid"} == HEADER_PARAMETERS
    assert {"iss", "sub", "aud", "mth", "jti", "iat", "exp", "req"} == REQUEST_CLAIMS
    assert {"usr", "pur"} == OPTIONAL_REQUEST_CLAIMS
    assert {"iss", "sub", "aud", "jti", "iat", "exp", "sts", "res", "cnt"} == RESPONSE_CLAIMS


def test_a_wire_value_is_quoted_escaped_and_cut_short() -> None:
    assert quote("a\nb") == "'a\\nb'"
    assert quote("x" * 100) == "'" + "x" * 36 + "..."
    assert len(quote("x" * 100)) == 40
    assert quote_names(["alg", "kid"]) == "'alg', 'kid'"


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
