"""SIGKILL of the publisher's or the subscriber's security server mid-stream.

MoI's population register publishes a steady stream of events (retrying each
event id until it is acknowledged, as a publisher should); MoH's hospital
application reads them with Subscribe and acknowledges each. In the middle,
MoI's server, or MoH's, is killed with SIGKILL and restarted on the same
configuration, ports and stores. Afterwards:

- every event whose Publish was acknowledged reached the application
  (0 acknowledged events lost);
- the application acknowledged no event twice and saw them in sequence order
  (0 delivered twice);
- all audit logs verify completely.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MOI, NHIS
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb
from spean.v1 import pubsub_pb2_grpc as pb_grpc
from tests.support.audit_logs import export_and_verify
from tests.support.events import TOPIC, address_changed, event_federation, publish
from tests.support.servers import Servers

pytestmark = pytest.mark.slow

EVENTS = 40


class Publisher(threading.Thread):
    """Publishes EVENTS events, each retried under its own id until acknowledged."""

    def __init__(self, address: str) -> None:
        super().__init__(name="publisher", daemon=True)
        self.address = address
        self.acknowledged: dict[str, int] = {}

    def run(self) -> None:
        channel = grpc.insecure_channel(self.address)
        for n in range(EVENTS):
            event_id = str(uuid.uuid4())
            while True:
                try:
                    answer = publish(channel, n, event_id=event_id)
                except grpc.RpcError:
                    time.sleep(0.1)
                    continue
                self.acknowledged[event_id] = answer.sequence
                break
            time.sleep(0.05)
        channel.close()


class Application(threading.Thread):
    """Reads the topic and acknowledges each event; an event counts once its Ack returned."""

    def __init__(self, address: str) -> None:
        super().__init__(name="application", daemon=True)
        self.address = address
        self.taken: list[pb.Event] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            channel = grpc.insecure_channel(self.address)
            stub = pb_grpc.SubscriberStub(channel)
            metadata = ((CLIENT, NHIS),)
            try:
                stream = stub.Subscribe(pb.SubscribeRequest(topic=TOPIC), metadata=metadata)
                for event in stream:
                    stub.Ack(
                        pb.AckRequest(topic=TOPIC, position=event.position),
                        metadata=metadata,
                        timeout=5,
                    )
                    self.taken.append(event)
                    if self.stopping.is_set():
                        stream.cancel()
                        break
            except grpc.RpcError:
                time.sleep(0.1)
            finally:
                channel.close()


def wait_for(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("victim", [MOI, MOH], ids=["publisher", "subscriber"])
def test_a_killed_server_loses_no_acknowledged_event_and_delivers_none_twice(
    victim: str, tmp_path: Path, servers: Callable[[Federation], Servers]
) -> None:
    federation = event_federation(
        tmp_path / "federation", grants=(NHIS,), subscribers={MOH: (NHIS,)}
    )
    running = servers(federation)
    running.start(MOI)
    running.start(MOH)
    publisher = Publisher(federation.consumer_addresses[MOI])
    application = Application(federation.consumer_addresses[MOH])
    publisher.start()
    application.start()
    try:
        wait_for(lambda: len(application.taken) >= 10)
        running.crash(victim)
        time.sleep(0.5)
        running.start(victim)
        publisher.join(120)
        assert not publisher.is_alive(), "the publisher never finished"
        wait_for(lambda: {e.event_id for e in application.taken} >= set(publisher.acknowledged))
    finally:
        application.stopping.set()
    # Wake the application's stream with one more event so that it sees it should stop.
    publish(grpc.insecure_channel(federation.consumer_addresses[MOI]), EVENTS)
    application.join(30)
    running.stop_all()

    taken = [e.event_id for e in application.taken]
    assert len(taken) == len(set(taken)), "an event was handed to the application twice"
    sequences = [e.sequence for e in application.taken]
    assert sequences == sorted(sequences)
    lost = set(publisher.acknowledged) - set(taken)
    assert not lost, f"{len(lost)} acknowledged events never reached the application"
    for e in application.taken:
        # Event n was published n-th, once, whatever was retried: sequence n + 1.
        assert e.payload == address_changed(e.sequence - 1)
        if e.event_id in publisher.acknowledged:
            assert publisher.acknowledged[e.event_id] == e.sequence
    for member in (MOI, MOH):
        export_and_verify(federation, member, tmp_path)
