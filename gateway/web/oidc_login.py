"""Logging in to a console through the identity provider: authorization code with PKCE.

The flow (RFC 6749 section 4.1, RFC 7636, OpenID Connect Core 3.1):

1. ``GET /console/login/oidc`` makes a pending login (random state, nonce
   and code verifier), sets its id in the cookie ``spean_oidc`` (HttpOnly,
   SameSite=Lax so that the provider's redirect back carries it, path
   /console/login/oidc, ten minutes) and sends the browser to the
   authorization endpoint with ``response_type=code``, the client id, the
   redirect URL, the scopes, the state, the nonce and the S256 code
   challenge.
2. ``GET /console/login/oidc/callback?code=...&state=...``: the cookie's
   pending login must exist, be fresh and carry that state (compared in
   constant time); it is used once, whatever happens next. The code is
   exchanged at the token endpoint with the code verifier (and the client
   secret of a confidential client); the ID token is checked against the
   provider's JWKS like a bearer token (signature, issuer, expiry), with
   this console's client id as audience and the login's nonce; its roles
   are mapped as a bearer token's are.
3. A session starts, lasting no longer than the ID token. The provider's
   redirect was a cross-site navigation, on which browsers do not send the
   SameSite=Strict session cookie to a further redirect, so the answer is a
   page of this origin that continues to the console.

Every refusal (an error from the provider, a wrong state, a refused code or
token) is logged and shown on the login page with the reason, never a
stack trace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from spean.gateway.config import OidcConfig, OidcLoginConfig
from spean.gateway.errors import ConfigError, Unauthenticated, Unavailable
from spean.gateway.web.auth import OidcVerifier
from spean.gateway.web.roles import Principal

log = structlog.get_logger("spean.web")

COOKIE = "spean_oidc"
COOKIE_PATH = "/console/login/oidc"
CALLBACK_PATH = "/console/login/oidc/callback"
PENDING_SECONDS = 600
MAX_PENDING = 10_000
TOKEN_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Pending:
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    created: float


@dataclass(frozen=True, slots=True)
class LoggedIn:
    principal: Principal
    expires_at: int
    """The ID token's expiry (seconds since the epoch): the session ends there."""


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcLogin:
    """Browser logins through one identity provider (`management.oidc.login`)."""

    def __init__(
        self, config: OidcConfig, verifier: OidcVerifier, resolve: Callable[[Path], Path]
    ) -> None:
        assert config.login is not None
        self.config: OidcLoginConfig = config.login
        self._verifier = verifier
        self._secret: str | None = None
        if self.config.client_secret_file is not None:
            path = resolve(self.config.client_secret_file)
            try:
                self._secret = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"management.oidc.login.client_secret_file: cannot read {path}: {exc.strerror}"
                ) from None
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}

    def begin(self, redirect_uri: str) -> tuple[str, str]:
        """A new pending login: (its id for the cookie, the authorization URL to go to)."""
        redirect_uri = self.config.redirect_url or redirect_uri
        pending = Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            redirect_uri=redirect_uri,
            created=time.monotonic(),
        )
        pending_id = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            if len(self._pending) >= MAX_PENDING:
                oldest = min(self._pending, key=lambda k: self._pending[k].created)
                del self._pending[oldest]
            self._pending[pending_id] = pending
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": code_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in self.config.authorization_url else "?"
        return pending_id, f"{self.config.authorization_url}{separator}{query}"

    def finish(self, pending_id: str | None, code: str | None, state: str | None) -> LoggedIn:
        """The login the provider's redirect completes; `Unauthenticated` saying why not."""
        with self._lock:
            self._expire()
            pending = self._pending.pop(pending_id or "", None)
        if pending is None:
            raise Unauthenticated(
                "no login is waiting for this answer (it expired after ten minutes, was"
                " already used, or cookies are off): log in again"
            )
        if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise Unauthenticated("the identity provider's answer is not for this login (state)")
        if not code:
            raise Unauthenticated("the identity provider's answer carries no code")
        id_token = self._redeem(code, pending)
        principal, expires_at = self._verifier.verify_token(
            id_token, self.config.client_id, nonce=pending.nonce
        )
        return LoggedIn(principal, expires_at)

    def _redeem(self, code: str, pending: Pending) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": pending.verifier,
        }
        auth = (self.config.client_id, self._secret) if self._secret is not None else None
        try:
            response = httpx.post(
                self.config.token_url,
                data=form,
                auth=auth,
                headers={"accept": "application/json"},
                timeout=TOKEN_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"cannot reach the identity provider's token endpoint {self.config.token_url}:"
                f" {exc}"
            ) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200:
            reason = answer.get("error_description") or answer.get("error") or response.text[:200]
            raise Unauthenticated(
                f"the identity provider refused the login code ({response.status_code}: {reason})"
            )
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthenticated("the identity provider's token answer holds no id_token")
        return token

    def _expire(self) -> None:
        oldest = time.monotonic() - PENDING_SECONDS
        for key in [k for k, p in self._pending.items() if p.created < oldest]:
            del self._pending[key]
