"""The shared FastAPI application factory of Spean's management APIs and consoles.

`create_app` gives every API the same ground: the OpenAPI 3.1 document at
``/api/v1/openapi.json`` (generated from the routes' pydantic models; no
documentation pages, which would load scripts from a CDN), errors as RFC
9457 problems (gateway/web/problems.py), a request body limit (413 before
the body is read when Content-Length says so, and while it is read
otherwise), and response headers that forbid caching, framing and MIME
sniffing (and, on TLS, plain HTTP). `requires(permission)` is the dependency every route declares:
deny by default, so a route without it is a bug the tests catch
(tests/gateway/management/test_api.py asks every route without credentials).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spean.gateway.web import problems
from spean.gateway.web.auth import Authenticator
from spean.gateway.web.roles import Permission, Principal, require

API_PREFIX = "/api/v1"

# Every answer's headers (the catalogue's pages take them too, without the no-store).
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# On TLS only (RFC 6797): browsers then never try this origin over plain HTTP.
_HSTS = [(b"strict-transport-security", b"max-age=31536000")]


class _Limits:
    """ASGI middleware: the body limit and the response headers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            # Refused before a byte of the body is read.
            too_large = problems.problem(
                Request(scope), 413, f"the request body is larger than {limit} bytes", "too_large"
            )
            await too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTPException: FastAPI passes it on from a body read (anything
                # else it reports as 400), and the problem handler answers it.
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        headers = SECURITY_HEADERS + (_HSTS if scope.get("scheme") == "https" else [])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, limited_receive, with_headers)


def create_app(
    title: str,
    version: str,
    routers: Sequence[APIRouter],
    authenticator: Authenticator,
    max_body_bytes: int,
) -> FastAPI:
    app = FastAPI(
        title=title,
        version=version,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.authenticator = authenticator
    problems.install(app)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, responses=problems.PROBLEM_RESPONSES)
    app.add_middleware(_Limits, max_body_bytes=max_body_bytes)
    return app


# Declares the bearer scheme in the OpenAPI document (API keys and OIDC tokens); the
# credential itself is read and checked by the `Authenticator`, which also accepts a
# client certificate (mutual TLS, which OpenAPI 3.1 names `mutualTLS`).
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key (spk_...) or an OIDC access token of the ministry's identity provider",
)


def requires(permission: Permission) -> Callable[..., Any]:
    """A dependency: the caller's `Principal` if it holds `permission`, else refused."""

    def dependency(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        return require(authenticator.authenticate(request), permission)

    return dependency
