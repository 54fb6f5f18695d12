"""Signing this member's request and response tokens (pure: claims in, token text out).

A `TokenSigner` holds the member's signing key and certificate. Guarantees:

- the key is EC P-256 or Ed25519 and is the certificate's (else
  `ConfigError` at construction), so every token it makes verifies with the
  certificate the global configuration lists;
- every token has exactly the header ``{"alg", "typ", "kid"}``: the key's one
  algorithm, ``spean-req+jwt`` or ``spean-res+jwt``, and the certificate's
  thumbprint (`pki.thumbprint`) as ``kid``;
- the payload holds exactly the claims of `spean.gateway.token_claims`
  (``usr``, ``pur`` and ``sbj`` omitted when empty), from claims whose construction
  already checked every invariant;
- signing is on the hot path: the two encoded headers are computed once per
  signer, and the signature is made as `spean.gateway.token_jws` describes.

The signer never shows its key: `repr` names the algorithm and the kid only.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from spean.gateway import pki
from spean.gateway.digests import b64url
from spean.gateway.errors import ConfigError
from spean.gateway.token_claims import (
    KID_SHOWN,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    RequestClaims,
    ResponseClaims,
    algorithm_for_key,
)
from spean.gateway.token_jws import encode_segment, sign_raw


class TokenSigner:
    """Signs this member's tokens with its signing key and certificate."""

    __slots__ = ("_key", "_prefixes", "_request_prefix", "_response_prefix", "algorithm", "kid")

    def __init__(self, private_key: PrivateKeyTypes, certificate: x509.Certificate) -> None:
        self.algorithm = algorithm_for_key(private_key)
        self.kid = pki.thumbprint(certificate)
        if pki.public_key_bytes(private_key.public_key()) != pki.public_key_bytes(
            certificate.public_key()
        ):
            raise ConfigError(
                f"signing key does not match the public key of certificate {self.kid[:KID_SHOWN]}"
            )
        self._key = private_key
        self._request_prefix = self._header(REQUEST_TYPE)
        self._response_prefix = self._header(RESPONSE_TYPE)
        self._prefixes: dict[str, str] = {}

    def _header(self, typ: str) -> str:
        return encode_segment({"alg": self.algorithm, "typ": typ, "kid": self.kid}) + "."

    def sign_request(self, claims: RequestClaims) -> str:
        payload: dict[str, object] = {
            "iss": str(claims.issuer),
            "sub": str(claims.client),
            "aud": str(claims.audience),
            "mth": claims.method,
            "jti": claims.exchange_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "req": b64url(claims.request_sha256),
        }
        if claims.user:
            payload["usr"] = claims.user
        if claims.purpose:
            payload["pur"] = claims.purpose
        return self._finish(self._request_prefix, payload)

    def sign_response(self, claims: ResponseClaims) -> str:
        payload: dict[str, object] = {
            "iss": str(claims.issuer),
            "sub": str(claims.provider),
            "aud": str(claims.audience),
            "jti": claims.exchange_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "sts": claims.status,
            "res": b64url(claims.response_sha256),
            "cnt": claims.response_messages,
        }
        if claims.subject_pseudonym:
            payload["sbj"] = b64url(claims.subject_pseudonym)
        return self._finish(self._response_prefix, payload)

    def sign_typed(self, typ: str, payload: dict[str, object]) -> str:
        """A token of another Spean type (`spean.gateway.token_events`): the same
        header rule, key and signature, over claims its module has checked."""
        prefix = self._prefixes.get(typ)
        if prefix is None:
            prefix = self._prefixes[typ] = self._header(typ)
        return self._finish(prefix, payload)

    def _finish(self, prefix: str, payload: dict[str, object]) -> str:
        signing_input = prefix + encode_segment(payload)
        signature = sign_raw(self.algorithm, self._key, signing_input.encode("ascii"))
        return signing_input + "." + b64url(signature)

    def __repr__(self) -> str:
        return f"TokenSigner(algorithm={self.algorithm!r}, kid={self.kid[:KID_SHOWN]!r})"
