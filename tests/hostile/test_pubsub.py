"""Hostile deliveries: forged, replayed, misaddressed, oversized, and a subscriber without
the right.

MoI grants its topic to MoH's hospital application only; MPWT subscribes to
it all the same. A rogue sender holding MoI's real TLS and signing keys, or
MPWT's, delivers straight to MoH's provider endpoint; each defect alone is
refused with its status, audited, and stores nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest

from spean.gateway.audit.record import Kind
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from spean.gateway.events import TopicId, event_digest
from spean.gateway.identifiers import SubsystemId
from spean.gateway.token_events import EventClaims, sign_event
from spean.v1 import pubsub_pb2 as pb
from tests.support.events import (
    TOPIC,
    address_changed,
    consumer_channel,
    event_federation,
    publish,
)
from tests.support.rogue import provider_channel, signer_of, tls_identity
from tests.support.world import World, running

DELIVER = "/spean.v1.EventDelivery/Deliver"
NHIS_ID = SubsystemId.parse(NHIS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    federation = event_federation(tmp_path_factory.mktemp("events"), grants=(NHIS,))
    with running(federation) as world:
        yield world


def claims(**changes: object) -> EventClaims:
    now = int(time.time())
    payload = address_changed(1)
    made = EventClaims(
        issuer=TopicId.parse(TOPIC).owner.member,
        topic=TopicId.parse(TOPIC),
        subscriber=NHIS_ID,
        sequence=1000,
        event_id=str(uuid.uuid4()),
        event_sha256=event_digest(payload),
        published_at_ms=now * 1000,
        attempt_id=str(uuid.uuid4()),
        issued_at=now,
        expires_at=now + 60,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def deliver(
    world: World, token: str, payload: bytes, *, sender: str = MOI
) -> tuple[grpc.StatusCode, str]:
    folder = world.folder(sender)
    key, cert = tls_identity(folder)
    conf = world.server(MOH).current_configuration()
    server = conf.servers_for(NHIS_ID)[0]
    channel = provider_channel(
        conf.ca_pem, server.address, str(server.id), key_pem=key, cert_pem=cert
    )
    call = channel.unary_unary(DELIVER)
    try:
        call(pb.DeliverRequest(event_token=token, payload=payload).SerializeToString(), timeout=10)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""  # type: ignore[attr-defined]
    finally:
        channel.close()
    return grpc.StatusCode.OK, ""


def moi_token(world: World, made: EventClaims) -> str:
    return sign_event(signer_of(world.folder(MOI)), made)


def test_an_honest_rogue_delivery_is_accepted_once_and_its_replay_refused(world: World) -> None:
    made = claims()
    token = moi_token(world, made)
    assert deliver(world, token, address_changed(1)) == (grpc.StatusCode.OK, "")
    code, details = deliver(world, token, address_changed(1))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "replay" in details


def test_an_altered_event_is_refused(world: World) -> None:
    token = moi_token(world, claims())
    code, details = deliver(world, token, address_changed(2))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "does not match the digest" in details


def test_an_event_signed_by_another_member_is_refused(world: World) -> None:
    token = sign_event(signer_of(world.folder(MPWT)), claims())
    code, details = deliver(world, token, address_changed(1))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "does not own signing key" in details


def test_mpwt_cannot_deliver_moi_events_even_with_moi_signing_them(world: World) -> None:
    code, details = deliver(world, moi_token(world, claims()), address_changed(1), sender=MPWT)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "arrived from security server KH/GOV/MPWT/ss1" in details


def test_a_delivery_for_a_topic_the_subscriber_did_not_take_is_refused(world: World) -> None:
    other = TopicId.parse(f"{TopicId.parse(TOPIC).owner}:citizen-deceased")
    code, details = deliver(world, moi_token(world, claims(topic=other)), address_changed(1))
    assert code is grpc.StatusCode.NOT_FOUND
    assert "not published" in details


def test_an_oversized_event_is_refused(world: World) -> None:
    payload = b"x" * (4 * 1024 * 1024 + 1)
    token = moi_token(world, claims(event_sha256=event_digest(payload)))
    code, details = deliver(world, token, payload)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "bytes, more than" in details


def test_refused_deliveries_are_audited_and_store_nothing(world: World) -> None:
    refused = [r for r in world.records(MOH) if r.kind is Kind.EVENT_DELIVERY and r.status != "OK"]
    assert {r.status for r in refused} >= {"UNAUTHENTICATED", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
    store = world.server(MOH).pubsub
    assert store is not None
    inbox = store.store.read_inbox(NHIS_ID, TopicId.parse(TOPIC), 0, 100)
    assert len([e for e in inbox if e.sequence == 1000]) == 1  # only the honest one


def test_a_subscriber_without_the_right_receives_nothing(world: World) -> None:
    published = publish(consumer_channel(world.federation, MOI), 42)
    moi = world.server(MOI).pubsub
    assert moi is not None
    deadline = time.monotonic() + 20
    while not any(c.acked >= published.sequence for c in moi.store.cursors()):
        assert time.monotonic() < deadline, "MoH never acknowledged the event"
        time.sleep(0.05)
    # Only the granted subscriber has a cursor at MoI; MPWT's inbox stays empty.
    assert [str(c.subscriber) for c in moi.store.cursors()] == [NHIS]
    mpwt = world.server(MPWT).pubsub
    assert mpwt is not None
    assert mpwt.store.read_inbox(SubsystemId.parse(VEHICLES), TopicId.parse(TOPIC), 0, 10) == []
