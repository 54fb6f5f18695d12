"""SIGKILL of a subscriber's security server between a webhook's 2xx and its acknowledgement.

MoH's server POSTs the hospital's events to an internal receiver (`pubsub.push`).
The receiver processes the third event and, before it answers, MoH's server is
killed with SIGKILL: the POST was acted on, its acknowledgement never made.
Restarted on the same configuration and stores, the server POSTs that event
again with the same `Spean-Event-Id`; the receiver, keeping the ids it
processed, answers it without acting twice. Afterwards the receiver holds
every published event once, in sequence order, and MoH's log verifies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from spean.gateway.audit.record import Kind
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MOI, NHIS
from tests.support.audit_logs import export_and_verify
from tests.support.events import event_federation, publish
from tests.support.servers import Servers
from tests.support.webhooks import SECRET, Receiver, add_push

pytestmark = pytest.mark.slow

EVENTS = 6
KILLED_AT = 3


def wait_for(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_server_posts_the_event_again_under_its_id_and_it_is_taken_once(
    tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    federation = event_federation(
        tmp_path / "federation", grants=(NHIS,), subscribers={MOH: (NHIS,)}
    )
    receiver = Receiver(failures_per_event=0, secret=SECRET)
    url = receiver.start()
    add_push(federation, MOH, NHIS, url)
    running = servers(federation)
    killed = threading.Event()

    def crash_on_third(event_id: str, count: int) -> None:
        if count == KILLED_AT and not killed.is_set():
            running.crash(MOH)  # acted on, not yet answered: no acknowledgement is made
            killed.set()

    receiver.on_accept = crash_on_third
    try:
        running.start(MOI)
        running.start(MOH)
        channel = grpc.insecure_channel(federation.consumer_addresses[MOI])
        published = [publish(channel, n).event_id for n in range(EVENTS)]
        wait_for(killed.is_set)
        assert receiver.repeats == 0
        running.start(MOH)
        wait_for(lambda: len(receiver.ids()) == EVENTS and receiver.repeats >= 1)
        assert receiver.ids() == published  # each once, in order
        assert receiver.attempts[published[KILLED_AT - 1]] == 2  # the one POSTed again
        running.stop_all()
    finally:
        receiver.stop()
    log = export_and_verify(federation, MOH, tmp_path)
    acks = [r.event_id for r in log.records if r.kind is Kind.EVENT_ACK]
    assert acks == published
