"""Schemathesis against the OpenAPI document the authority publishes.

Generated requests of every operation, valid and not, with a system
administrator's key and with a registration officer's: no answer is a
server error, and every answer conforms to the document (status, content
type, body schema, refusal without credentials). Each operation's cases are
drawn from its Hypothesis strategy, one test per operation and role, as in
tests/gateway/management/test_api_schema.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from spean.gateway.web.roles import Role
from tests.support.authority_desk import Desk, authority_desk

pytestmark = pytest.mark.slow

OPERATIONS = [
    ("GET", "/api/v1/registration-requests"),
    ("POST", "/api/v1/registration-requests"),
    ("POST", "/api/v1/registration-requests/approvals"),
    ("POST", "/api/v1/registration-requests/rejections"),
    ("GET", "/api/v1/registration-policy"),
    ("PUT", "/api/v1/registration-policy"),
    ("GET", "/api/v1/members"),
    ("POST", "/api/v1/members"),
    ("GET", "/api/v1/servers"),
    ("POST", "/api/v1/servers/certificates"),
    ("POST", "/api/v1/servers/certificate-retirements"),
    ("GET", "/api/v1/subsystems"),
    ("POST", "/api/v1/service-descriptions"),
    ("GET", "/api/v1/revocations"),
    ("POST", "/api/v1/revocations"),
    ("GET", "/api/v1/global-configuration"),
    ("POST", "/api/v1/publications"),
    ("GET", "/api/v1/admin-log"),
]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with authority_desk(tmp_path_factory.mktemp("authority-schema")) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(desk: Desk) -> Any:
    with desk.client() as client:
        document = client.get("/openapi.json").json()
    # A schema-valid change still meets its preconditions: a generated ETag is stale (412)
    # or blank (428), a generated identifier names nothing (404) or is not one (400).
    config = schemathesis.Config.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412", "428"]
                }
            }
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


def test_the_list_covers_every_operation(api_schema: Any) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


ROLES = [Role.SYSTEM_ADMINISTRATOR, Role.REGISTRATION_OFFICER]
CHANGES = [(method, path) for method, path in OPERATIONS if method != "GET"]


def _check(api_schema: Any, desk: Desk, method: str, path: str, role: Role, fresh: bool) -> None:
    operation = api_schema[path][method]
    key = desk.keys[role]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        if fresh:
            with desk.client(key) as client:
                headers["If-Match"] = client.get("/members").headers["etag"]
        case.call_and_validate(base_url=desk.base_url, headers=headers, verify=str(desk.ca))

    check()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_answers_conform_to_the_document(
    api_schema: Any, desk: Desk, method: str, path: str, role: Role
) -> None:
    """With a generated If-Match, most changes stop at the precondition (412)."""
    _check(api_schema, desk, method, path, role, fresh=False)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), CHANGES)
def test_changes_with_the_current_etag_conform_to_the_document(
    api_schema: Any, desk: Desk, method: str, path: str, role: Role
) -> None:
    """With the registry's current ETag, the generated bodies reach the change itself."""
    _check(api_schema, desk, method, path, role, fresh=True)
