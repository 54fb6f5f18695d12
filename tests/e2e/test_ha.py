"""High availability: one member, two provider security servers, one of them dies.

MPWT runs ``ss1`` and ``ss2``, both listed in the global configuration as
hosting ``KH/GOV/MPWT/vehicles``. MoH's hospital application calls steadily
while ``ss1`` is killed (SIGKILL: no drain, no goodbye). The consumer fails
over to ``ss2``, each retry in a new exchange; the application sees no
error, MoH's log holds every abandoned exchange next to the one that
replaced it, and every audit log involved verifies on its own.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from spean.gateway.cli.doctor import diagnose
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import MOH, MPWT, VEHICLES
from spean.gateway.identifiers import SubsystemId
from tests.support.audit_logs import verified_records
from tests.support.exchanges import Traffic
from tests.support.plans import demo_plans_with_ss2
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow


def test_calls_keep_succeeding_when_a_provider_server_dies(tmp_path: Path) -> None:
    plans = demo_plans_with_ss2()
    federation = build_federation(tmp_path / "federation", plans)
    ss1 = ServerProcess(federation.configs[MPWT], tmp_path / "ss1.log")
    ss2 = ServerProcess(federation.configs[f"{MPWT}/ss2"], tmp_path / "ss2.log")
    traffic: Traffic | None = None
    try:
        ss1.wait_for("server.started")
        ss2.wait_for("server.started")
        moh_server = federation.start(MOH)
        listed = moh_server.current_configuration().servers_for(SubsystemId.parse(VEHICLES))
        assert [str(s.id) for s in listed] == ["KH/GOV/MPWT/ss1", "KH/GOV/MPWT/ss2"]
        traffic = Traffic(federation.consumer_addresses[MOH])
        traffic.wait_for_ok(20)
        ss1.send(signal.SIGKILL)
        ss1.wait()
        traffic.wait_for_ok(30)
        traffic.stop()
        # The doctor on MoH's side names the dead server and what to do.
        findings = diagnose(federation.configs[MOH], peer_timeout=2.0)
        dead = [f for f in findings if f.check == "peers" and "KH/GOV/MPWT/ss1" in f.message]
        assert len(dead) == 1
        assert dead[0].level == "warn"
        assert dead[0].fix
        ss2.send(signal.SIGTERM)
        assert ss2.wait() == 0
    finally:
        if traffic is not None:
            traffic.stop()
        federation.stop_all()
        ss1.kill()
        ss2.kill()
    assert traffic.failures() == []
    mpwt = federation.configs[MPWT].parent
    by_ss1 = verified_records(mpwt / "state" / "audit.db", "KH/GOV/MPWT/ss1#w0")
    by_ss2 = verified_records(mpwt / "state" / "ss2" / "audit.db", "KH/GOV/MPWT/ss2#w0")
    moh = verified_records(federation.configs[MOH].parent / "state" / "audit.db", f"{MOH}/ss1#w0")
    assert len(by_ss1) >= 20  # the first server in the configuration took the traffic
    assert len(by_ss2) >= 30  # until it died; then the second took over
    completed = {r.exchange_id: r for r in moh if r.status == "OK"}
    assert len(completed) == traffic.ok
    # A call that found ss1 dead was retried on ss2 as a new exchange: MoH logged the
    # abandoned one first, UNAVAILABLE, naming the exchange that answered the call.
    abandoned = [r for r in moh if r.status != "OK"]
    assert abandoned, "the calls right after the kill must have found ss1 unreachable"
    for record in abandoned:
        assert record.status == "UNAVAILABLE"
        assert record.message.startswith("provider security server KH/GOV/MPWT/ss1 at ")
        before, _, retried_as = record.message.rpartition(" ")
        assert before.endswith("; retried as exchange")
        assert completed[retried_as].request_sha256 == record.request_sha256
    # Every exchange MoH completed is in a provider log, with the token MoH verified (a
    # call cut off by the kill may be in ss1's log as OK: ss1 answered, the answer never
    # arrived, and MoH abandoned that exchange).
    provider_ok = {r.exchange_id: r for r in by_ss1 + by_ss2 if r.status == "OK"}
    for record in completed.values():
        assert provider_ok[record.exchange_id].response_token == record.response_token
