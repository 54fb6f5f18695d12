"""The provider's database stops and starts under load; Spean is not restarted.

MPWT's vehicle registry lives in PostgreSQL. While the application calls
steadily, the database stops serving: it refuses new connections and every
open one (the adapter's pooled connections included) is terminated. Every
call is then refused with UNAVAILABLE naming the database; none succeeds.
The database comes back: the adapter's pool replaces its dead connections
and calls succeed again, with no restart of any security server. Both audit
logs verify and hold every exchange the application saw succeed, and the
provider's log holds its refusals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine

from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import MOH, MPWT, demo_plans
from tests.support.audit_logs import assert_nothing_acknowledged_lost
from tests.support.databases import PostgresDatabase
from tests.support.exchanges import Traffic
from tests.support.servers import Servers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SERVICE = "vehicles.v1.VehicleRegistry"


def _serve_vehicles_from(federation: Federation, database: PostgresDatabase) -> None:
    engine = create_engine(database.url)
    try:
        demo_data.create_mpwt_database(engine)
    finally:
        engine.dispose()
    mapping = federation.configs[MPWT].parent / "mpwt-vehicles.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert "database: sqlite:///mpwt-vehicles.db" in text
    mapping.write_text(
        text.replace("database: sqlite:///mpwt-vehicles.db", f"database: {database.url}"),
        encoding="utf-8",
    )


def test_database_outage_is_unavailable_and_recovers_without_restart(
    tmp_path: Path,
    servers: Callable[[Federation], Servers],
    postgres_database: PostgresDatabase,
) -> None:
    plans = [plan for plan in demo_plans() if plan.member in (MOH, MPWT)]
    federation = build_federation(tmp_path / "federation", plans)
    _serve_vehicles_from(federation, postgres_database)
    running = servers(federation)
    mpwt = running.start(MPWT)
    running.start(MOH)
    traffic = Traffic(
        federation.consumer_addresses[MOH], threads=4, expect_failures=True, call_timeout=5.0
    )
    try:
        traffic.wait_for_ok(30)
        postgres_database.stop()
        traffic.wait_for_failures(5)
        time.sleep(0.3)  # a call that had its rows before the stop may still be answering
        ok_before = traffic.ok
        traffic.wait_for_failures(10)
        assert traffic.ok == ok_before, "a call succeeded while the database was down"
        refused = traffic.failures()
        assert {code for code, _ in refused} == {grpc.StatusCode.UNAVAILABLE}, refused[:3]
        assert refused[-1][1] == f"the database behind {SERVICE} is unavailable", refused[-1]
        postgres_database.start()
        traffic.wait_for_ok(30)
    finally:
        outcome = traffic.stop()
    assert mpwt.events("sql.database_unavailable"), "the provider did not log the outage"
    running.stop_all()

    _, provider = assert_nothing_acknowledged_lost(
        federation, [MOH, MPWT], outcome.ok_ids, tmp_path / "bundles"
    )
    assert provider.statuses().get("UNAVAILABLE", 0) >= 10
