"""Shared test policy.

Tests marked `postgres`, `mariadb` or `nats` use the real servers. Where a server is
unreachable they are skipped with the reason, unless SPEAN_REQUIRE_DATABASES=1
(set by `.ci/run`), in which case they fail: in CI a missing database is an
error, never a silent pass.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import structlog

POSTGRES_URL = os.environ.get(
    "SPEAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("SPEAN_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
NATS_URL = os.environ.get("SPEAN_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("SPEAN_REQUIRE_DATABASES") == "1":
        pytest.fail(f"{message} and SPEAN_REQUIRE_DATABASES=1 makes it mandatory")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    _require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    _require("MariaDB", "127.0.0.1", 3306)
    return MARIADB_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS JetStream server (tests/support/nats.py gives each test a prefix of its own)."""
    _require("NATS JetStream", "127.0.0.1", 4222)
    return NATS_URL


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Commands configure structlog globally; no test sees another test's setup."""
    yield
    structlog.reset_defaults()
