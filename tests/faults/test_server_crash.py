"""A security server killed under load (SIGKILL) and restarted on its ports and audit store.

MPWT's provider server, then MoH's consumer server, dies in the middle of a
steady stream of calls. While it is down the application sees UNAVAILABLE and
nothing else; once it is back (same configuration, same ports, same audit
log), calls succeed again without touching the other server. Afterwards both
audit logs verify completely, and every exchange the application saw succeed
is in both, including those answered just before the kill.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import MOH, MPWT, demo_plans
from tests.support.audit_logs import assert_nothing_acknowledged_lost
from tests.support.exchanges import Traffic
from tests.support.servers import Servers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("victim", [MPWT, MOH], ids=["provider", "consumer"])
def test_a_killed_server_restarts_and_loses_no_acknowledged_exchange(
    victim: str, tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    plans = [plan for plan in demo_plans() if plan.member in (MOH, MPWT)]
    federation = build_federation(tmp_path / "federation", plans)
    running = servers(federation)
    running.start(MPWT)
    running.start(MOH)
    traffic = Traffic(
        federation.consumer_addresses[MOH], threads=4, expect_failures=True, call_timeout=5.0
    )
    try:
        traffic.wait_for_ok(40)
        running.crash(victim)
        traffic.wait_for_failures(3)
        down = len(traffic.failures())
        running.start(victim)
        traffic.wait_for_ok(40)
        assert len(traffic.failures()) >= down
    finally:
        outcome = traffic.stop()
    running.stop_all()

    unexpected = [(c, d) for c, d in outcome.failures if c is not grpc.StatusCode.UNAVAILABLE]
    assert not unexpected, unexpected[:5]
    logs = assert_nothing_acknowledged_lost(
        federation, [MOH, MPWT], outcome.ok_ids, tmp_path / "bundles"
    )
    consumer = logs[0]
    # The consumer logged every call it answered; a call cut off by the kill of
    # the consumer itself may have reached the provider and stayed unanswered.
    assert len(consumer.ok_ids()) >= len(outcome.ok_ids)
