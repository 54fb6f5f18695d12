"""Schemathesis against the OpenAPI document the server publishes.

Generated requests of every operation, valid and not, with a system
administrator's key: no answer is a server error, and every answer
conforms to the document (status, content type, body schema, and refusal
without credentials where the document declares the bearer scheme).

Schemathesis's pytest plugin does not run under this pytest version (its
lazy fixture loader reads a private attribute), so each operation's cases
are drawn from its Hypothesis strategy here, in one test per operation.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from spean.gateway.web.roles import Role
from tests.support.management import Admin
from tests.support.world import World

pytestmark = pytest.mark.slow

OPERATIONS = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/global-configuration"),
    ("GET", "/api/v1/certificates"),
    ("GET", "/api/v1/services"),
    ("GET", "/api/v1/clients"),
    ("GET", "/api/v1/access"),
    ("POST", "/api/v1/access/grants"),
    ("POST", "/api/v1/access/revocations"),
    ("POST", "/api/v1/services/disablements"),
    ("POST", "/api/v1/services/enablements"),
    ("POST", "/api/v1/reload"),
    ("GET", "/api/v1/admin-log"),
    ("GET", "/api/v1/traffic"),
    ("GET", "/api/v1/audit/records"),
    ("GET", "/api/v1/audit/proof"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys/{kind}/next"),
    ("PUT", "/api/v1/keys/{kind}/next/certificate"),
    ("POST", "/api/v1/keys/{kind}/next/activation"),
    ("DELETE", "/api/v1/keys/{kind}/next"),
    ("GET", "/api/v1/transparency/me"),
    ("POST", "/api/v1/transparency/lookups"),
]
# A schema-valid certificate is any text; one that is not the authority's for the next key
# is refused (400) by its meaning, which no schema can say: the other checks still hold.
SEMANTIC = {("PUT", "/api/v1/keys/{kind}/next/certificate")}
# Each operation is driven with the role it is for (the others are refused before any work).
ROLE_OF = {"/api/v1/transparency/lookups": Role.AUDITOR}


@pytest.fixture(scope="module")
def api_schema(managed: tuple[World, Admin]) -> Any:
    _, admin = managed
    with admin.client() as client:
        document = client.get("/openapi.json").json()
    # A schema-valid change still meets its precondition: a generated ETag is stale (412).
    config = schemathesis.Config.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "412"]
                }
            }
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


def test_the_list_covers_every_operation(api_schema: Any) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_answers_conform_to_the_document(
    api_schema: Any, managed: tuple[World, Admin], method: str, path: str
) -> None:
    _, admin = managed
    operation = api_schema[path][method]
    role = ROLE_OF.get(path, Role.SYSTEM_ADMINISTRATOR)
    headers = {"Authorization": f"Bearer {admin.keys[role]}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=admin.url.removesuffix("/api/v1"),
            headers=headers,
            verify=str(admin.ca),
            excluded_checks=[positive_data_acceptance] if (method, path) in SEMANTIC else [],
        )

    check()
