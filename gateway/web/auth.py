"""Who is calling the management API: API keys, client certificates, OIDC bearer tokens.

Deny by default. `Authenticator.authenticate` turns a request's credentials
into a `Principal` or raises `Unauthenticated` saying what was wrong:

1. ``Authorization: Bearer spk_...``: an API key, checked against the key
   store (gateway/web/api_keys.py);
2. any other bearer token: an OIDC access or ID token of the ministry's
   identity provider, verified against its JWKS (signature, issuer,
   audience, expiry), its roles claim mapped to a Spean role; the keys are
   fetched by pyjwt's `PyJWKClient` and cached, so a request costs no round
   trip until the provider rotates its key;
3. no Authorization header: the TLS client certificate verified during the
   handshake against ``management.tls.client_ca``, its subject common name
   mapped to a role by ``management.client_certificates``.

A credential that is presented but wrong is refused; the next kind is not
tried. Where several identity-provider roles map to Spean roles, the first
in the role table (spean.gateway.web.roles) wins.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi import Request

from spean.gateway.config import OidcConfig
from spean.gateway.errors import Unauthenticated, Unavailable
from spean.gateway.subjects import is_subject
from spean.gateway.web.api_keys import PREFIX, ApiKeyStore
from spean.gateway.web.roles import PERMISSIONS, Principal, Role

JWKS_CACHE_SECONDS = 300


class OidcVerifier:
    """Bearer tokens of one identity provider."""

    def __init__(self, config: OidcConfig) -> None:
        self._config = config
        self._jwks = jwt.PyJWKClient(
            config.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=10
        )

    def verify(self, token: str) -> Principal:
        """The principal of an access token presented as a bearer token (aud: this API)."""
        return self.verify_token(token, self._config.audience)[0]

    def verify_token(
        self, token: str, audience: str, nonce: str | None = None
    ) -> tuple[Principal, int]:
        """The principal of a token for `audience` and its expiry (seconds since the epoch).

        `nonce`, for an ID token of a browser login, must equal its nonce claim.
        """
        config = self._config
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(
                f"cannot fetch the identity provider's keys from {config.jwks_url}: {exc}"
            ) from exc
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise Unauthenticated(f"the bearer token cannot be checked: {exc}") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(config.algorithms),
                audience=audience,
                issuer=config.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the bearer token was refused: {exc}") from exc
        if nonce is not None and not hmac.compare_digest(
            str(claims.get("nonce", "")).encode(), nonce.encode()
        ):
            raise Unauthenticated("the ID token's nonce is not this login's: log in again")
        role = _mapped_role(claims.get(config.roles_claim), config.role_map)
        if role is None:
            raise Unauthenticated(
                f"the bearer token of {claims['sub']} carries no role that this server maps"
                f" (claim {config.roles_claim!r}; mapped: {', '.join(sorted(config.role_map))})"
            )
        subject = None
        if role is Role.DATA_SUBJECT:
            assert config.subject_claim is not None  # the configuration requires it
            value = claims.get(config.subject_claim)
            if not isinstance(value, str) or not is_subject(value):
                raise Unauthenticated(
                    f"the token of {claims['sub']} grants data-subject but its claim"
                    f" {config.subject_claim!r} holds no person's id"
                )
            subject = value
        principal = Principal(
            name=f"oidc:{claims['sub']}", role=role, method="oidc", subject=subject
        )
        return principal, int(claims["exp"])


def _mapped_role(values: object, role_map: Mapping[str, str]) -> Role | None:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        return None
    granted = {Role(role_map[v]) for v in values if isinstance(v, str) and v in role_map}
    return next((role for role in PERMISSIONS if role in granted), None)


def _common_name(pem: str) -> str | None:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class Authenticator:
    """The credentials a management listener accepts."""

    def __init__(
        self,
        api_keys: ApiKeyStore,
        certificate_roles: Mapping[str, Role] | None = None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.api_keys = api_keys
        self._certificate_roles = dict(certificate_roles or {})
        self._oidc = oidc

    def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("the Authorization header must be 'Bearer <key or token>'")
            if token.startswith(PREFIX):
                return self.api_keys.authenticate(token)
            if self._oidc is None:
                raise Unauthenticated(
                    "bearer tokens are not accepted here: management.oidc is not configured"
                )
            return self._oidc.verify(token)
        return self._certificate(request.scope.get("extensions", {}).get("tls", {}))

    def _certificate(self, tls: Mapping[str, Sequence[str]]) -> Principal:
        chain = tls.get("client_cert_chain") or []
        if not chain:
            raise Unauthenticated(
                "no credentials: present an API key (Authorization: Bearer spk_...), an OIDC"
                " bearer token or a client certificate"
            )
        name = _common_name(chain[0])
        role = self._certificate_roles.get(name or "")
        if role is None:
            raise Unauthenticated(
                f"the client certificate of {name!r} is valid but has no role here (add it to"
                " management.client_certificates)"
            )
        return Principal(name=f"certificate:{name}", role=role, method="client-certificate")
