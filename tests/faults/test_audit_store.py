"""The audit store fails under load: requests fail closed, never pass unlogged.

Two failures of the store, each while the application calls steadily:

- disk full: the server process's file size limit (RLIMIT_FSIZE, set on the
  running process with prlimit) drops below what its SQLite audit log needs,
  so every write to the log fails as it would on a full disk; the limit is
  then lifted, as an operator freeing space would;
- PostgreSQL gone: the audit database stops accepting connections and the
  server's own connection is terminated (pg_terminate_backend); it is then
  allowed again.

While the store fails, every call is refused with UNAVAILABLE and none is
answered OK (an answer leaves only after its record is durable). When the
store is back, exchanges resume without restarting the server, and
afterwards both logs verify completely and hold every exchange the
application saw succeed.

A consumer that fails over to another provider server logs the abandoned
exchange first: when its disk is full, the call goes no further.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml

from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import MOH, MPWT, demo_plans
from tests.support.audit_logs import assert_nothing_acknowledged_lost, export_and_verify
from tests.support.databases import PostgresDatabase
from tests.support.exchanges import Traffic, get_vehicle
from tests.support.plans import demo_plans_with_ss2
from tests.support.servers import Servers

pytestmark = pytest.mark.slow

# Below one SQLite page: no write-ahead log frame fits, every commit fails.
TINY_FILE_LIMIT = 1024


def _federation(root: Path) -> Federation:
    plans = [plan for plan in demo_plans() if plan.member in (MOH, MPWT)]
    return build_federation(root, plans)


def _assert_fails_closed(traffic: Traffic) -> list[tuple[grpc.StatusCode, str]]:
    """While the store is failing: refusals keep coming and no call succeeds."""
    traffic.wait_for_failures(5)
    # A call whose record was committed just before the failure may still be
    # on its way back; after this pause none can be.
    time.sleep(0.3)
    ok_before = traffic.ok
    traffic.wait_for_failures(10)
    assert traffic.ok == ok_before, "a call was answered OK while its audit log was failing"
    refused = traffic.failures()
    assert {code for code, _ in refused} == {grpc.StatusCode.UNAVAILABLE}, refused[:3]
    return refused


@pytest.mark.parametrize("side", [MPWT, MOH], ids=["provider", "consumer"])
def test_disk_full_refuses_every_exchange_until_space_returns(
    side: str, tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    federation = _federation(tmp_path / "federation")
    running = servers(federation)
    # The log goes through a pipe: the server's only growing files are its audit store.
    processes = {member: running.start(member, pipe_stderr=True) for member in (MPWT, MOH)}
    victim = processes[side].pid
    soft, hard = resource.prlimit(victim, resource.RLIMIT_FSIZE)
    traffic = Traffic(
        federation.consumer_addresses[MOH], threads=4, expect_failures=True, call_timeout=5.0
    )
    try:
        traffic.wait_for_ok(30)
        resource.prlimit(victim, resource.RLIMIT_FSIZE, (TINY_FILE_LIMIT, hard))
        refused = _assert_fails_closed(traffic)
        assert any("audit" in details for _, details in refused), refused[-3:]
        resource.prlimit(victim, resource.RLIMIT_FSIZE, (soft, hard))
        traffic.wait_for_ok(30)
    finally:
        outcome = traffic.stop()
    running.stop_all()

    logs = assert_nothing_acknowledged_lost(
        federation, [MOH, MPWT], outcome.ok_ids, tmp_path / "bundles"
    )
    consumer, provider = logs
    if side == MPWT:
        # MoH's log, on a healthy disk, holds the provider's refusals too.
        assert consumer.statuses().get("UNAVAILABLE", 0) >= 1
    else:
        # MoH logs an exchange when it ends: the provider answered calls that
        # MoH then refused for want of a log, and the application never saw.
        assert len(provider.ok_ids()) > len(outcome.ok_ids)


@pytest.mark.postgres
def test_postgres_audit_store_gone_refuses_every_exchange_until_it_returns(
    tmp_path: Path,
    servers: Callable[[Federation], Servers],
    postgres_database: PostgresDatabase,
) -> None:
    federation = _federation(tmp_path / "federation")
    config = federation.configs[MPWT]
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["audit"]["store"] = postgres_database.url
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    running = servers(federation)
    running.start(MPWT)
    running.start(MOH)
    traffic = Traffic(
        federation.consumer_addresses[MOH], threads=4, expect_failures=True, call_timeout=5.0
    )
    try:
        traffic.wait_for_ok(30)
        postgres_database.stop()
        refused = _assert_fails_closed(traffic)
        assert any("audit" in details for _, details in refused), refused[-3:]
        postgres_database.start()
        traffic.wait_for_ok(30)
    finally:
        outcome = traffic.stop()
    running.stop_all()

    assert_nothing_acknowledged_lost(federation, [MOH, MPWT], outcome.ok_ids, tmp_path / "b")


def test_a_failover_that_cannot_be_logged_goes_no_further(
    tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    """MPWT's ss1, first in the list, is down and MoH's disk is full: MoH cannot
    log the exchange ss1 did not answer, so it never asks ss2."""
    plans = demo_plans_with_ss2((MOH, MPWT))
    federation = build_federation(tmp_path / "federation", plans)
    ss2 = f"{MPWT}/ss2"
    running = servers(federation)
    running.start(ss2)
    moh = running.start(MOH, pipe_stderr=True)
    soft, hard = resource.prlimit(moh.pid, resource.RLIMIT_FSIZE)
    with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
        resource.prlimit(moh.pid, resource.RLIMIT_FSIZE, (TINY_FILE_LIMIT, hard))
        refused = get_vehicle(channel, timeout=20)
        resource.prlimit(moh.pid, resource.RLIMIT_FSIZE, (soft, hard))
        # Space is back; ss1 is skipped for a while (back-off), ss2 answers.
        answered = get_vehicle(channel, timeout=20)
    running.stop_all()

    assert refused.code is grpc.StatusCode.UNAVAILABLE
    assert refused.details == (
        "the security server cannot write its audit log; the exchange was refused"
    )
    assert refused.exchange_id
    appends_failed = [e["exchange_id"] for e in moh.events("audit.append_failed")]
    assert appends_failed[:1] == [refused.exchange_id]
    assert moh.events("provider.failover") == []
    assert answered.code is grpc.StatusCode.OK, answered.details
    # ss2 only ever saw the call made once MoH could log again.
    (tmp_path / "bundles").mkdir()
    provider = export_and_verify(federation, ss2, tmp_path / "bundles")
    assert [r.exchange_id for r in provider.records] == [answered.exchange_id]
