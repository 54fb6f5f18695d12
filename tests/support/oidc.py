"""An OpenID provider on a loopback port, for the console's browser-login tests.

It does what a ministry's identity provider (Keycloak, Entra ID) does in the
authorization code flow with PKCE, and checks what they check: the client
id, the redirect URL, the S256 code challenge against the verifier, a code
used once. Who logs in is set by the test (`user`): the provider signs them
in at once, as a provider with a live session would. Its keys are real RSA
keys served as a JWKS; its ID tokens are real RS256 JWTs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "spean-console"
KID = "idp-key-1"


@dataclass
class _Code:
    claims: dict[str, Any]
    challenge: str
    redirect_uri: str
    nonce: str


@dataclass
class Provider:
    url: str
    key: rsa.RSAPrivateKey
    user: dict[str, Any] = field(default_factory=dict)
    """The claims of whoever logs in next (sub, roles, the id claim...)."""
    codes: dict[str, _Code] = field(default_factory=dict)
    token_requests: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.url

    def oidc_section(self, **extra: Any) -> dict[str, Any]:
        """server.yaml's management.oidc for this provider, browser login included."""
        return {
            "issuer": self.issuer,
            "audience": "spean-management",
            "jwks_url": f"{self.url}/jwks",
            "role_map": {"citizen": "data-subject", "ombudsman": "auditor"},
            "subject_claim": "national_id",
            "login": {
                "authorization_url": f"{self.url}/authorize",
                "token_url": f"{self.url}/token",
                "client_id": CLIENT_ID,
            },
            **extra,
        }

    def id_token(self, claims: dict[str, Any], audience: str, nonce: str) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": audience, "iat": now, "exp": now + 300, **claims}
        if nonce:
            body["nonce"] = nonce
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        data = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "kid": KID,
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@contextmanager
def identity_provider() -> Iterator[Provider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/jwks":
                self._json(200, {"keys": [_jwk(key)]})
            elif url.path == "/authorize":
                self._authorize(query)
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, query: dict[str, str]) -> None:
            problems = []
            if query.get("response_type") != "code":
                problems.append("response_type")
            if query.get("client_id") != CLIENT_ID:
                problems.append("client_id")
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                problems.append("code_challenge")
            if "openid" not in query.get("scope", "").split():
                problems.append("scope")
            redirect = query.get("redirect_uri", "")
            if problems or not redirect:
                provider.refused.append(",".join(problems) or "redirect_uri")
                self._json(400, {"error": "invalid_request", "fields": problems})
                return
            code = secrets.token_urlsafe(16)
            with lock:
                provider.codes[code] = _Code(
                    dict(provider.user), query["code_challenge"], redirect, query.get("nonce", "")
                )
            back = f"{redirect}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"
            self.send_response(302)
            self.send_header("Location", back)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if urllib.parse.urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            with lock:
                provider.token_requests += 1
                grant = provider.codes.pop(form.get("code", ""), None)  # a code is used once
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("client_id") != CLIENT_ID
                or form.get("redirect_uri") != grant.redirect_uri
                or _challenge(form.get("code_verifier", "")) != grant.challenge
            ):
                provider.refused.append("token")
                self._json(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "the code or its verifier is wrong",
                    },
                )
                return
            token = provider.id_token(grant.claims, CLIENT_ID, grant.nonce)
            self._json(200, {"id_token": token, "token_type": "Bearer", "expires_in": 300})

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider = Provider(f"http://127.0.0.1:{server.server_address[1]}", key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
