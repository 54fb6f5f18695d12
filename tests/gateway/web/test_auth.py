"""Credentials to principals: OIDC tokens checked against a JWKS served on loopback,
client certificates by their verified name, and nothing without a credential."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.requests import Request

from spean.gateway import pki
from spean.gateway.config import OidcConfig
from spean.gateway.errors import Unauthenticated, Unavailable
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.auth import Authenticator, OidcVerifier
from spean.gateway.web.roles import Role
from tests.support.pki import self_signed

ISSUER = "https://login.mpwt.gov.kh/realms/staff"
AUDIENCE = "spean-mpwt-ss1"


class _Jwks:
    """A JWKS document on a loopback port, counting how often it is fetched."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
def idp() -> Iterator[tuple[_Jwks, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = _Jwks([_jwk(key, "k1")])
    yield jwks, key
    jwks.close()


def _token(key: Any, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
    now = dt.datetime.now(dt.UTC)
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "sokha",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "roles": ["spean-admins"],
        **claims,
    }
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _request(authorization: str | None = None, cert_pem: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    if cert_pem is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": [cert_pem]}}
    return Request(scope)


def _authenticator(tmp_path: Path, jwks_url: str) -> Authenticator:
    oidc = OidcConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks_url,
        role_map={"spean-admins": "system-administrator", "spean-auditors": "auditor"},
    )
    return Authenticator(
        ApiKeyStore(tmp_path / "keys.json"),
        certificate_roles={"auditor.mpwt.gov.kh": Role.AUDITOR},
        oidc=OidcVerifier(oidc),
    )


def test_a_token_of_the_identity_provider_maps_to_its_role(tmp_path: Path, idp: Any) -> None:
    jwks, key = idp
    auth = _authenticator(tmp_path, jwks.url)
    principal = auth.authenticate(_request(f"Bearer {_token(key)}"))
    assert (principal.name, principal.role, principal.method) == (
        "oidc:sokha",
        Role.SYSTEM_ADMINISTRATOR,
        "oidc",
    )
    # The keys are cached: a second token costs no fetch.
    auth.authenticate(_request(f"Bearer {_token(key, roles=['spean-auditors'])}"))
    assert jwks.fetches == 1


def test_the_strongest_mapped_role_wins(tmp_path: Path, idp: Any) -> None:
    jwks, key = idp
    token = _token(key, roles=["spean-auditors", "spean-admins", "other"])
    role = _authenticator(tmp_path, jwks.url).authenticate(_request(f"Bearer {token}")).role
    assert role is Role.SYSTEM_ADMINISTRATOR


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-api"}, "Audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, "expired"),
        ({"roles": ["staff"]}, "carries no role"),
    ],
)
def test_tokens_for_others_or_expired_or_without_a_role_are_refused(
    tmp_path: Path, idp: Any, claims: dict[str, Any], reason: str
) -> None:
    jwks, key = idp
    with pytest.raises(Unauthenticated, match=reason):
        _authenticator(tmp_path, jwks.url).authenticate(_request(f"Bearer {_token(key, **claims)}"))


def test_a_token_signed_by_another_key_is_refused(tmp_path: Path, idp: Any) -> None:
    jwks, _ = idp
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        _authenticator(tmp_path, jwks.url).authenticate(_request(f"Bearer {_token(stranger)}"))
    with pytest.raises(Unauthenticated, match="cannot be checked"):
        _authenticator(tmp_path, jwks.url).authenticate(
            _request(f"Bearer {_token(stranger, kid='k9')}")
        )


def test_an_algorithm_not_allowed_is_refused(tmp_path: Path, idp: Any) -> None:
    jwks, _ = idp
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwks.keys.append({**public, "kid": "e1", "use": "sig"})
    oidc = OidcConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks.url,
        algorithms=["RS256"],
        role_map={"spean-admins": "system-administrator"},
    )
    auth = Authenticator(ApiKeyStore(tmp_path / "k.json"), oidc=OidcVerifier(oidc))
    with pytest.raises(Unauthenticated, match="alg value is not allowed"):
        auth.authenticate(_request(f"Bearer {_token(ec_key, kid='e1', alg='ES256')}"))


def test_an_unreachable_identity_provider_is_unavailable(tmp_path: Path, idp: Any) -> None:
    jwks, key = idp
    url = jwks.url
    jwks.close()
    with pytest.raises(Unavailable, match="cannot fetch the identity provider's keys"):
        _authenticator(tmp_path, url).authenticate(_request(f"Bearer {_token(key)}"))


def test_client_certificates_by_name_and_nothing_without_credentials(
    tmp_path: Path, idp: Any
) -> None:
    jwks, _ = idp
    auth = _authenticator(tmp_path, jwks.url)
    key = pki.generate_key()
    known = pki.certificate_pem(self_signed(key, "auditor.mpwt.gov.kh")).decode()
    unknown = pki.certificate_pem(self_signed(key, "someone.else")).decode()
    assert auth.authenticate(_request(cert_pem=known)).role is Role.AUDITOR
    with pytest.raises(Unauthenticated, match=r"'someone\.else' is valid but has no role"):
        auth.authenticate(_request(cert_pem=unknown))
    with pytest.raises(Unauthenticated, match="no credentials"):
        auth.authenticate(_request())
    with pytest.raises(Unauthenticated, match="must be 'Bearer"):
        auth.authenticate(_request("Basic YWRtaW46YWRtaW4="))
