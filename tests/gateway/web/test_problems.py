"""Errors answer as RFC 9457 problems; every refusal (401, 403) is one logged event."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from spean.gateway.errors import InvalidArgument, PermissionDenied, Unauthenticated
from spean.gateway.web import problems


def app_raising() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    errors = {
        "unauthenticated": Unauthenticated("no credentials: give an API key"),
        "denied": PermissionDenied("the auditor role may not change access rights"),
        "invalid": InvalidArgument("since must be an ISO 8601 time"),
    }

    @app.get("/{name}")
    def fail(name: str) -> None:
        raise errors[name]

    return app


def test_refusals_are_problems_and_each_is_logged_with_what_was_asked() -> None:
    with TestClient(app_raising()) as client, capture_logs() as logs:
        unauthenticated = client.get("/unauthenticated")
        denied = client.get("/denied")
        invalid = client.get("/invalid")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == problems.MEDIA_TYPE
    assert unauthenticated.json()["detail"] == "no credentials: give an API key"
    assert denied.status_code == 403
    assert invalid.status_code == 400
    refused = [entry for entry in logs if entry["event"] == "management.refused"]
    assert [(e["status"], e["path"], e["method"]) for e in refused] == [
        (401, "/unauthenticated", "GET"),
        (403, "/denied", "GET"),
    ]
    assert refused[1]["reason"] == "the auditor role may not change access rights"
