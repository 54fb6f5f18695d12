"""Errors of the management API as RFC 9457 problem details (application/problem+json).

Every refusal leaves the API the same way: a `SpeanError` (raised by the
core or translated at the edge) becomes a problem whose `status` is the HTTP
status of its gRPC code (or the error's own `http_status`), whose `detail`
is the error's operator-readable message and whose `type` names the kind of
problem. FastAPI's own refusals (validation, unknown path, wrong method) are
rewritten in the same shape. A bug (any other exception) is logged with its
stack trace and answered 500 with a generic detail: no trace ever reaches
the client. Every 401 and 403 is logged as a ``management.refused`` event.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import grpc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from spean.gateway.errors import SpeanError

log = structlog.get_logger("spean.web")

MEDIA_TYPE = "application/problem+json"

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str


def http_status(error: SpeanError) -> int:
    own = getattr(error, "http_status", None)
    return own if isinstance(own, int) else HTTP_STATUS.get(error.code, 500)


def log_refusal(request: Request, status: int, reason: str) -> None:
    """The one log event of every refused request (401, 403), from the API or the console."""
    log.warning(
        "management.refused",
        status=status,
        method=request.method,
        path=request.url.path,
        peer=request.client.host if request.client else None,
        reason=reason,
    )


def problem(request: Request, status: int, detail: str, kind: str) -> JSONResponse:
    if status in (401, 403):
        log_refusal(request, status, detail)
    body = Problem(
        type=f"urn:spean:problem:{kind}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
    )
    headers = {"WWW-Authenticate": 'Bearer realm="spean"'} if status == 401 else None
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _spean(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpeanError)
    return problem(request, http_status(exc), exc.message, exc.code.name.lower())


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(tuple(e.get("loc", ())) == ("header", "if-match") for e in errors):
        # RFC 6585: a conditional request is required, and this one is not conditional.
        return problem(
            request,
            428,
            "this change needs an If-Match header with the ETag of the resource (a GET"
            " answers it), so that a concurrent change is not lost",
            "precondition_required",
        )
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return problem(request, 422, "; ".join(parts) or "the request is invalid", "invalid_request")


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(request, exc.status_code, str(exc.detail), f"http_{exc.status_code}")


def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("management.internal_error", method=request.method, path=request.url.path)
    return problem(
        request, 500, "an internal error occurred; the server's log has the details", "internal"
    )


def install(app: FastAPI) -> None:
    """Answer every error of `app` as a problem."""
    app.add_exception_handler(SpeanError, _spean)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "content": {MEDIA_TYPE: {}},
        "description": HTTPStatus(status).phrase,
    }
    for status in (400, 401, 403, 404, 409, 412, 413, 422, 428, 503)
}
