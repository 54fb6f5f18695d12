"""SIGKILL of the NATS JetStream broker that holds both servers' event stores, mid-stream.

The story of test_pubsub_crash.py with the broker as the victim: MoI's
population register publishes a steady stream of events (retrying each event
id until it is acknowledged); MoH's hospital application reads them with
Subscribe and acknowledges each. MoI's and MoH's servers keep their event
stores on a nats-server of the test's own (a free loopback port, a store
folder of its own: the machine's broker is never touched), under a prefix
each. In the middle the nats-server is killed with SIGKILL and started again
on the same folder and port, after longer than the store's request timeout;
the servers fail closed meanwhile (UNAVAILABLE) and reconnect by themselves. Afterwards:

- every event whose Publish was acknowledged reached the application
  (0 acknowledged events lost);
- the application acknowledged no event twice and saw them in sequence order
  (0 delivered twice);
- all audit logs verify completely.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MOI, NHIS
from tests.e2e.test_pubsub_nats import use_stores
from tests.faults.test_pubsub_crash import EVENTS, Application, Publisher, wait_for
from tests.support.audit_logs import export_and_verify
from tests.support.events import address_changed, event_federation, publish
from tests.support.nats import NatsServer
from tests.support.servers import Servers

pytestmark = pytest.mark.slow


class CountingPublisher(Publisher):
    """`Publisher`, keeping the status of each refused attempt (the outage must be seen)."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.refused: list[grpc.StatusCode] = []

    def run(self) -> None:
        channel = grpc.insecure_channel(self.address)
        for n in range(EVENTS):
            event_id = str(uuid.uuid4())
            while True:
                try:
                    answer = publish(channel, n, event_id=event_id)
                except grpc.RpcError as exc:
                    self.refused.append(exc.code())
                    time.sleep(0.1)
                    continue
                self.acknowledged[event_id] = answer.sequence
                break
            time.sleep(0.05)
        channel.close()


def test_a_killed_broker_loses_no_acknowledged_event_and_delivers_none_twice(
    tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    broker = NatsServer(tmp_path / "nats")
    broker.start()
    try:
        federation = event_federation(
            tmp_path / "federation", grants=(NHIS,), subscribers={MOH: (NHIS,)}
        )
        use_stores(federation, {MOI: f"{broker.url}?prefix=moi", MOH: f"{broker.url}?prefix=moh"})
        running = servers(federation)
        running.start(MOI)
        running.start(MOH)
        publisher = CountingPublisher(federation.consumer_addresses[MOI])
        application = Application(federation.consumer_addresses[MOH])
        publisher.start()
        application.start()
        try:
            wait_for(lambda: len(application.taken) >= 10)
            broker.kill()
            # Down for longer than the store's request timeout (5 s): calls fail closed
            # meanwhile, rather than waiting out a short outage in the client's buffer.
            time.sleep(7.0)
            broker.start()
            publisher.join(120)
            assert not publisher.is_alive(), "the publisher never finished"
            wait_for(lambda: {e.event_id for e in application.taken} >= set(publisher.acknowledged))
        finally:
            application.stopping.set()
        # Wake the application's stream with one more event so that it sees it should stop.
        publish(
            grpc.insecure_channel(federation.consumer_addresses[MOI]), len(publisher.acknowledged)
        )
        application.join(30)
        running.stop_all()
    finally:
        broker.stop()

    assert publisher.refused, "no Publish was refused: the broker's death went unseen"
    assert set(publisher.refused) == {grpc.StatusCode.UNAVAILABLE}
    assert len(publisher.acknowledged) == EVENTS
    taken = [e.event_id for e in application.taken]
    assert len(taken) == len(set(taken)), "an event was handed to the application twice"
    sequences = [e.sequence for e in application.taken]
    assert sequences == sorted(sequences)
    lost = set(publisher.acknowledged) - set(taken)
    assert not lost, f"{len(lost)} acknowledged events never reached the application"
    assert len(set(publisher.acknowledged.values())) == len(publisher.acknowledged)
    for e in application.taken:
        # Event n was published n-th, once, whatever was retried: sequence n + 1.
        assert e.payload == address_changed(e.sequence - 1)
        if e.event_id in publisher.acknowledged:
            assert publisher.acknowledged[e.event_id] == e.sequence
    for member in (MOI, MOH):
        export_and_verify(federation, member, tmp_path)
