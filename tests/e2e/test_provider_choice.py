"""The consumer skips a provider server that was just unreachable.

MPWT runs ``ss1`` and ``ss2`` (in that order in the global configuration);
``ss1`` is stopped. The first call after that finds ss1 unreachable and fails
over to ss2, in a new exchange; the calls that follow go straight to ss2:
MoH's log shows one ``provider.unreachable`` event per back-off period, not
one per call, and every call succeeds. Each call that did try ss1 first left
two records in MoH's audit log: the abandoned exchange, UNAVAILABLE and
naming its retry, and the retry that ss2 answered; MoH counts the abandoned
exchanges in its metrics, and the hop's span names each one in a
``provider.failover`` event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from spean.gateway.backoff import INITIAL_BACKOFF_SECONDS
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES
from spean.gateway.identifiers import SubsystemId
from tests.support.audit_logs import verified_records
from tests.support.exchanges import get_vehicle
from tests.support.observe import recording_spans, scrape, value
from tests.support.plans import demo_plans_with_ss2

SS2 = f"{MPWT}/ss2"


def probes_allowed(elapsed: float) -> int:
    """How many times a dead server may be tried in `elapsed` seconds after it first failed.

    The back-off doubles from INITIAL_BACKOFF_SECONDS after each failed probe,
    so the probes fall at 1, 3, 7, 15 ... initial intervals.
    """
    count, next_probe, interval = 1, INITIAL_BACKOFF_SECONDS, INITIAL_BACKOFF_SECONDS
    while next_probe <= elapsed:
        count += 1
        interval *= 2
        next_probe += interval
    return count


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from recording_spans()


def test_a_dead_provider_server_is_not_tried_first_on_every_call(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    plans = demo_plans_with_ss2()
    federation = build_federation(tmp_path / "federation", plans)
    config = federation.configs[MOH]
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["metrics"] = {"listen": "127.0.0.1:0"}
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    try:
        federation.start(MPWT)
        federation.start(SS2)
        moh = federation.start(MOH)
        listed = moh.current_configuration().servers_for(SubsystemId.parse(VEHICLES))
        assert [str(s.id) for s in listed] == [f"{MPWT}/ss1", f"{MPWT}/ss2"]
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            assert get_vehicle(channel).code is grpc.StatusCode.OK
            federation.stop(MPWT)  # ss1, first in the list, is gone

            with capture_logs() as events:
                started = time.monotonic()
                codes = [get_vehicle(channel).code for _ in range(40)]
                elapsed = time.monotonic() - started
        unreachable = [e for e in events if e["event"] == "provider.unreachable"]
        failovers = [e for e in events if e["event"] == "provider.failover"]
        samples = scrape(federation, MOH)
    finally:
        federation.stop_all()
    assert codes == [grpc.StatusCode.OK] * 40
    assert unreachable, "the first call after the stop must find ss1 unreachable"
    assert {e["server"] for e in unreachable} == {f"{MPWT}/ss1"}
    # ss1 was skipped: tried once per back-off period at most, not on each of the 40 calls.
    assert len(unreachable) <= probes_allowed(elapsed) < 40
    assert len(unreachable) < len(codes)
    # ss2 answered every call after the stop: its log verifies and holds them all.
    database = federation.configs[SS2].parent / "state" / "ss2" / "audit.db"
    answered = verified_records(database, f"{SS2}#w0")
    assert sum(r.status == "OK" for r in answered) == 40
    # Each probe of ss1 was abandoned, logged, and retried on ss2 as a new exchange.
    assert len(failovers) == len(unreachable)
    moh_log = federation.configs[MOH].parent / "state" / "audit.db"
    logged = {r.exchange_id: r for r in verified_records(moh_log, f"{MOH}/ss1#w0")}
    assert sum(r.status == "OK" for r in logged.values()) == 41
    answered_ids = {r.exchange_id for r in answered}
    for event in failovers:
        assert (event["server"], event["next_server"]) == (f"{MPWT}/ss1", SS2)
        abandoned, retry = logged[event["exchange_id"]], logged[event["retried_as"]]
        assert abandoned.status == "UNAVAILABLE"
        assert abandoned.message == (
            f"provider security server {MPWT}/ss1 at {listed[0].address} is unreachable;"
            f" retried as exchange {retry.exchange_id}"
        )
        assert retry.status == "OK"
        assert retry.exchange_id in answered_ids
        assert abandoned.exchange_id not in answered_ids
    assert len(logged) == 41 + len(failovers)
    # Each abandoned exchange ended in the log like any other, before its failover event.
    abandoned_events = [
        e["exchange_id"]
        for e in events
        if e["event"] == "exchange.completed" and e["status"] == "UNAVAILABLE"
    ]
    assert abandoned_events == [e["exchange_id"] for e in failovers]
    # Counted like any exchange: one UNAVAILABLE consumer exchange per failover.
    labels = {"side": "consumer", "client": NHIS, "service": VEHICLES, "method": GET_VEHICLE}
    assert value(samples, "spean_exchanges_total", **labels, status="UNAVAILABLE") == len(failovers)
    assert value(samples, "spean_exchanges_total", **labels, status="OK") == 41
    # The consumer span carries the answering exchange's id and names the abandoned one.
    span_failovers = {
        (
            str(event.attributes["spean.exchange_id"]),
            str(event.attributes["spean.retried_as"]),
        ): span
        for span in spans.get_finished_spans()
        for event in span.events
        if event.name == "provider.failover" and event.attributes is not None
    }
    assert set(span_failovers) == {(e["exchange_id"], e["retried_as"]) for e in failovers}
    for (_, retried_as), span in span_failovers.items():
        assert span.attributes is not None
        assert span.attributes["spean.side"] == "consumer"
        assert span.attributes["spean.exchange_id"] == retried_as
