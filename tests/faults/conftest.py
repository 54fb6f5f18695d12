"""Fault injection around a live federation of subprocess security servers.

Every fault test tells the same story: the hospital application (a pool of
client threads, `Traffic` of tests/support/exchanges.py) calls MPWT's
GetVehicle through MoH's security server while one part of the path fails and
comes back. What the application saw is kept per call: the exchange id of
every OK answer, the status and message of every failure. After the servers
have stopped cleanly, both audit logs are exported and verified completely,
and the invariant of the issue is checked
(`assert_nothing_acknowledged_lost`, tests/support/audit_logs.py):

    no exchange whose answer reached the application is missing from either
    audit log (nothing acknowledged is lost, nothing passed unlogged).

The fixtures kill every process they started on teardown, whatever failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spean.gateway.demo.federation import Federation
from tests.support import databases
from tests.support.databases import PostgresDatabase
from tests.support.servers import Servers


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[Federation], Servers]]:
    """A factory of `Servers` for a federation; every process it starts dies on teardown."""
    holder: list[Servers] = []

    def make(federation: Federation) -> Servers:
        made = Servers(federation, tmp_path)
        holder.append(made)
        return made

    yield make
    for made in holder:
        made.kill_all()


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[PostgresDatabase]:
    """A database of its own on the PostgreSQL server, that the test may take down."""
    with databases.postgres_database(postgres_url) as database:
        yield database
