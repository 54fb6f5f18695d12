"""The demo's events: MoI publishes address changes, MoH and MPWT receive them.

`run_demo_events` plays MoI's population register and the two subscribing
applications against a running demo federation built with events
(`ministries.build_demo(..., events=True)`): the register publishes a few
synthetic `CitizenAddressChanged` events through MoI's security server, and
the hospital application (MoH) and the vehicle registry (MPWT) each read them
with Subscribe through their own server and acknowledge them. It returns what
each application saw, in order, with the time from publishing to receipt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import (
    ADDRESS_CHANGED,
    ADDRESS_TOPIC,
    MOH,
    MOI,
    MPWT,
    NHIS,
    POPULATION,
    VEHICLES,
)
from spean.gateway.metadata import CLIENT

_ADDRESSES = (
    ("12 Street 310, Boeung Keng Kang", "Phnom Penh"),
    ("4 National Road 6, Svay Dangkum", "Siem Reap"),
    ("88 Street 7 Makara, Sangkat 1", "Battambang"),
)


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One event as a subscribing application saw it."""

    subscriber: str
    sequence: int
    event_id: str
    id_card_number: str
    province: str
    ms: float


def run_demo_events(federation: Federation, timeout: float = 20.0) -> list[ReceivedEvent]:
    """Publish the demo's address changes and read them at both subscribers."""
    from spean.demo.population.v1 import events_pb2
    from spean.v1 import pubsub_pb2 as pb

    published_at: dict[str, float] = {}
    with grpc.insecure_channel(federation.consumer_addresses[MOI]) as channel:
        publish = channel.unary_unary(
            "/spean.v1.Publisher/Publish",
            request_serializer=pb.PublishRequest.SerializeToString,
            response_deserializer=pb.PublishResponse.FromString,
        )
        for index, (address, province) in enumerate(_ADDRESSES):
            event = events_pb2.CitizenAddressChanged(
                id_card_number=f"{demo_data.SAMPLE_CITIZEN.id_number[:-1]}{index}",
                new_address=address,
                province=province,
                effective_date="2026-12-01",
            )
            started = time.perf_counter()
            answer = publish(
                pb.PublishRequest(topic=ADDRESS_CHANGED, payload=event.SerializeToString()),
                metadata=((CLIENT, POPULATION),),
                timeout=timeout,
            )
            published_at[answer.event_id] = started
    received: list[ReceivedEvent] = []
    for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
        with grpc.insecure_channel(federation.consumer_addresses[member]) as channel:
            subscribe = channel.unary_stream(
                "/spean.v1.Subscriber/Subscribe",
                request_serializer=pb.SubscribeRequest.SerializeToString,
                response_deserializer=pb.Event.FromString,
            )
            ack = channel.unary_unary(
                "/spean.v1.Subscriber/Ack",
                request_serializer=pb.AckRequest.SerializeToString,
                response_deserializer=pb.AckResponse.FromString,
            )
            stream = subscribe(
                pb.SubscribeRequest(topic=ADDRESS_TOPIC),
                metadata=((CLIENT, client),),
                timeout=timeout,
            )
            for seen, message in enumerate(stream, 1):
                arrived = time.perf_counter()
                ack(
                    pb.AckRequest(topic=ADDRESS_TOPIC, position=message.position),
                    metadata=((CLIENT, client),),
                    timeout=timeout,
                )
                event = events_pb2.CitizenAddressChanged.FromString(message.payload)
                started = published_at.get(message.event_id, arrived)
                received.append(
                    ReceivedEvent(
                        client,
                        message.sequence,
                        message.event_id,
                        event.id_card_number,
                        event.province,
                        (arrived - started) * 1000,
                    )
                )
                if seen == len(_ADDRESSES):
                    stream.cancel()
                    break
    return received
