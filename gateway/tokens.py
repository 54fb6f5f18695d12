"""Request and response tokens: Spean's signed wire contract, in one import (pure).

Every hop carries a compact JWS (RFC 7515/7519) signed with the member's
signing key, EC P-256 (``ES256``) or Ed25519 (``EdDSA``). JOSE header,
exactly these three parameters and nothing else::

    {"alg": "ES256" | "EdDSA", "typ": "spean-req+jwt" | "spean-res+jwt",
     "kid": <lower-case hex SHA-256 of the signer's DER certificate>}

This module is the tokens' public interface and holds no rule of its own:
each name below is the one defined, with its guarantees, in

- `spean.gateway.token_claims`: the claims, exchange ids, limits and the
  trusted `VerifyingKey` / `KeyResolver`;
- `spean.gateway.token_jws`: the JWS segments and signature bytes;
- `spean.gateway.token_signing`: `TokenSigner`;
- `spean.gateway.token_verification`: `verify_request`, `verify_response`
  and the checks binding a verified token to the call.
"""

from __future__ import annotations

from spean.gateway.token_claims import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    EDDSA,
    ES256,
    MAX_TEXT_CLAIM,
    MAX_TOKEN_SIZE,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    KeyResolver,
    RequestClaims,
    ResponseClaims,
    VerifyingKey,
    algorithm_for_key,
    is_exchange_id,
    new_exchange_id,
    parse_exchange_id,
)
from spean.gateway.token_signing import TokenSigner
from spean.gateway.token_verification import (
    check_recorded_subject,
    check_request_binding,
    check_response_binding,
    check_subject_binding,
    verify_request,
    verify_response,
)

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "EDDSA",
    "ES256",
    "MAX_TEXT_CLAIM",
    "MAX_TOKEN_SIZE",
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "KeyResolver",
    "RequestClaims",
    "ResponseClaims",
    "TokenSigner",
    "VerifyingKey",
    "algorithm_for_key",
    "check_recorded_subject",
    "check_request_binding",
    "check_response_binding",
    "check_subject_binding",
    "is_exchange_id",
    "new_exchange_id",
    "parse_exchange_id",
    "verify_request",
    "verify_response",
]
