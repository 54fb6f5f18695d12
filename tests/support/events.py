"""A federation with publish/subscribe: MoI publishes, MoH and MPWT subscribe.

The demo's three ministries with events (`demo_plans(events=True)`): MoI's
population register (``KH/GOV/MOI/population``) is a client of MoI's consumer
endpoint and owns the topic ``citizen-address-changed`` (event type
``population.v1.CitizenAddressChanged``, published with its descriptors), and
MPWT's vehicle registry is a client of a consumer endpoint of its own. MoI
grants the topic to MoH's hospital application and MPWT's registry; each
subscribes on its own server. `Subscriber` reads a topic through `Subscribe`
and acknowledges each event, as an application would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import grpc

from spean.demo.population.v1 import events_pb2
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import (
    ADDRESS_CHANGED,
    ADDRESS_TOPIC,
    MOH,
    MOI,
    MPWT,
    NHIS,
    POPULATION,
    VEHICLES,
    demo_plans,
)
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb
from spean.v1 import pubsub_pb2_grpc as pb_grpc

TOPIC = ADDRESS_TOPIC
EVENT_TYPE = "population.v1.CitizenAddressChanged"
FAST_RETRIES = {"initial_backoff_ms": 50, "max_backoff_ms": 400, "poll_ms": 50}


def address_changed(n: int) -> bytes:
    return events_pb2.CitizenAddressChanged(
        id_card_number=f"KH-{n:06d}",
        new_address=f"{n} Preah Norodom Blvd",
        province="Phnom Penh",
        effective_date="2026-12-03",
    ).SerializeToString()


def event_federation(
    root: Path,
    *,
    grants: tuple[str, ...] = (NHIS, VEHICLES),
    subscribers: dict[str, tuple[str, ...]] | None = None,
    delivery: dict[str, int] | None = None,
) -> Federation:
    """Build the demo with events (`demo_plans(events=True)`) under `root`, with MoI's
    grants, the members' subscribing clients and MoI's retry limits as given."""
    taken = subscribers if subscribers is not None else {MOH: (NHIS,), MPWT: (VEHICLES,)}
    plans = []
    for plan in demo_plans(events=True):
        if plan.member == MOI:
            topics = [dataclasses.replace(t, grants=list(grants)) for t in plan.topics]
            plan = dataclasses.replace(
                plan, topics=topics, delivery={**FAST_RETRIES, **(delivery or {})}
            )
        plan = dataclasses.replace(
            plan, subscriptions=[(client, TOPIC) for client in taken.get(plan.member, ())]
        )
        plans.append(plan)
    return build_federation(root, plans)


def publish(channel: grpc.Channel, n: int, event_id: str = "") -> pb.PublishResponse:
    stub = pb_grpc.PublisherStub(channel)
    request = pb.PublishRequest(
        topic=ADDRESS_CHANGED, event_id=event_id, payload=address_changed(n)
    )
    answer: pb.PublishResponse = stub.Publish(request, metadata=((CLIENT, POPULATION),), timeout=10)
    return answer


class Subscriber:
    """An application reading `TOPIC` as `client` and acknowledging every event it takes."""

    def __init__(self, address: str, client: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.client = client

    def take(self, count: int, timeout: float = 20.0) -> list[pb.Event]:
        """Subscribe, acknowledge `count` events one by one, and return them."""
        return self._take(lambda taken: len(taken) == count, timeout)

    def take_until(self, event_id: str, timeout: float = 20.0) -> list[pb.Event]:
        """Subscribe and acknowledge events up to and including `event_id`."""
        return self._take(lambda taken: taken[-1].event_id == event_id, timeout)

    def _take(self, done: Callable[[list[pb.Event]], bool], timeout: float) -> list[pb.Event]:
        stub = pb_grpc.SubscriberStub(self.channel)
        stream = stub.Subscribe(
            pb.SubscribeRequest(topic=TOPIC), metadata=((CLIENT, self.client),), timeout=timeout
        )
        taken: list[pb.Event] = []
        try:
            for event in stream:
                stub.Ack(
                    pb.AckRequest(topic=TOPIC, position=event.position),
                    metadata=((CLIENT, self.client),),
                    timeout=10,
                )
                taken.append(event)
                if done(taken):
                    break
        finally:
            stream.cancel()
        return taken

    def close(self) -> None:
        self.channel.close()


def consumer_channel(federation: Federation, member: str) -> grpc.Channel:
    return grpc.insecure_channel(federation.consumer_addresses[member])
