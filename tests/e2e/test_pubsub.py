"""MoI publishes CitizenAddressChanged; MoH and MPWT receive each event once, in order.

A real federation on loopback: MoI's population register publishes through
MoI's security server, which pushes every event over mutual TLS, signed, to
the servers of the two subscribers; their applications read them with
Subscribe and acknowledge them. Every step is in the audit logs, and the logs
verify.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from spean.gateway.audit.record import Kind, Side
from spean.gateway.cli import main
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from spean.gateway.events import TopicId
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb
from spean.v1 import pubsub_pb2_grpc as pb_grpc
from tests.support.audit_logs import export_and_verify
from tests.support.events import (
    ADDRESS_CHANGED,
    EVENT_TYPE,
    POPULATION,
    TOPIC,
    Subscriber,
    address_changed,
    consumer_channel,
    event_federation,
    publish,
)
from tests.support.world import World, running


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running(event_federation(tmp_path_factory.mktemp("events"))) as world:
        yield world


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_both_subscribers_receive_each_event_once_in_order(world: World) -> None:
    moi = consumer_channel(world.federation, MOI)
    published = [publish(moi, n) for n in range(1, 6)]
    assert [p.sequence for p in published] == [1, 2, 3, 4, 5]
    for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
        subscriber = Subscriber(world.federation.consumer_addresses[member], client)
        events = subscriber.take(5)
        assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
        assert [e.event_id for e in events] == [p.event_id for p in published]
        assert [e.payload for e in events] == [address_changed(n) for n in range(1, 6)]
        assert {e.event_type for e in events} == {EVENT_TYPE}
        assert {e.topic for e in events} == {TOPIC}
        subscriber.close()
    # Everything was acknowledged: a new subscription starts after the last one.
    publish(moi, 6)
    again = Subscriber(world.federation.consumer_addresses[MOH], NHIS).take(1)
    assert [e.sequence for e in again] == [6]


def test_every_step_is_in_both_audit_logs(world: World) -> None:
    event = publish(consumer_channel(world.federation, MOI), 100)
    wait_for(
        lambda: any(
            r.kind is Kind.EVENT_DELIVERY and r.event_id == event.event_id and r.status == "OK"
            for r in world.records(MOI)
            if r.client == NHIS
        )
    )
    moi = [r for r in world.records(MOI) if r.event_id == event.event_id]
    kinds = {(r.kind, r.side, r.client) for r in moi if r.status == "OK"}
    assert (Kind.EVENT_PUBLISH, Side.PROVIDER, POPULATION) in kinds
    assert (Kind.EVENT_DELIVERY, Side.PROVIDER, NHIS) in kinds
    delivered = next(r for r in moi if r.kind is Kind.EVENT_DELIVERY and r.client == NHIS)
    assert delivered.event_token
    assert delivered.ack_token
    assert (delivered.topic, delivered.sequence) == (ADDRESS_CHANGED, event.sequence)
    moh = world.record(MOH, delivered.exchange_id)
    assert (moh.kind, moh.side, moh.status) == (Kind.EVENT_DELIVERY, Side.CONSUMER, "OK")
    assert moh.event_token == delivered.event_token
    assert moh.ack_token == delivered.ack_token
    assert moh.request_sha256 == delivered.request_sha256


def test_publishing_the_same_event_id_again_appends_nothing(world: World) -> None:
    moi = consumer_channel(world.federation, MOI)
    first = publish(moi, 7, event_id="7b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a")
    again = publish(moi, 7, event_id="7b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a")
    assert (again.sequence, again.duplicate) == (first.sequence, True)
    with pytest.raises(grpc.RpcError) as caught:
        publish(moi, 8, event_id="7b0e6f8e-6a40-4b8e-9c2a-1f0e1d2c3b4a")
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as caught:
        publish(moi, 8, event_id="not-a-uuid")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "event id 'not-a-uuid' must be a lower-case UUID4" in caught.value.details()


@pytest.mark.parametrize(
    ("client", "topic", "payload", "code"),
    [
        (POPULATION, "no-such-topic", b"x", grpc.StatusCode.NOT_FOUND),
        (POPULATION, "Bad Name", b"x", grpc.StatusCode.INVALID_ARGUMENT),
        ("KH/GOV/MOI/idreg", ADDRESS_CHANGED, b"x", grpc.StatusCode.PERMISSION_DENIED),
        (
            POPULATION,
            ADDRESS_CHANGED,
            b"x" * (4 * 1024 * 1024 + 1),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
)
def test_a_bad_publish_is_refused_with_its_status_and_audited(
    world: World, client: str, topic: str, payload: bytes, code: grpc.StatusCode
) -> None:
    stub = pb_grpc.PublisherStub(consumer_channel(world.federation, MOI))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Publish(
            pb.PublishRequest(topic=topic, payload=payload),
            metadata=((CLIENT, client),),
            timeout=10,
        )
    assert caught.value.code() is code
    exchange_id = dict(caught.value.trailing_metadata())["spean-exchange-id"]
    record = world.record(MOI, exchange_id)
    assert (record.kind, record.status) == (Kind.EVENT_PUBLISH, code.name)


def test_subscribing_to_a_topic_not_subscribed_here_is_not_found(world: World) -> None:
    stub = pb_grpc.SubscriberStub(consumer_channel(world.federation, MOH))
    stream = stub.Subscribe(
        pb.SubscribeRequest(topic=f"{POPULATION}:other"), metadata=((CLIENT, NHIS),), timeout=5
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_the_logs_of_all_three_verify_with_the_event_tokens_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = event_federation(tmp_path / "federation")
    with running(federation) as world:
        moi = consumer_channel(federation, MOI)
        for n in range(1, 4):
            publish(moi, n)
        for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
            assert len(Subscriber(federation.consumer_addresses[member], client).take(3)) == 3
        # Counted once per (event, subscriber): what is waited for is that every event
        # reached both subscribers, however many attempts each took on a loaded machine.
        delivered = lambda: len(  # noqa: E731
            {
                (r.event_id, r.client)
                for r in world.records(MOI)
                if r.kind is Kind.EVENT_DELIVERY and r.status == "OK"
            }
        )
        wait_for(lambda: delivered() == 6)
        # MoH away for one event: MoI's unanswered attempts stay out of reconcile's way.
        federation.stop(MOH)
        publish(moi, 4)
        wait_for(
            lambda: any(
                r.kind is Kind.EVENT_DELIVERY and r.status == "UNAVAILABLE"
                for r in world.records(MOI)
            )
        )
        federation.start(MOH)
        for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
            assert len(Subscriber(federation.consumer_addresses[member], client).take(1)) == 1
        wait_for(lambda: delivered() == 8)
    logs = {member: export_and_verify(federation, member, tmp_path) for member in (MOI, MOH, MPWT)}
    kinds = [r.kind for r in logs[MOI].records]
    assert kinds.count(Kind.EVENT_PUBLISH) == 4
    assert kinds.count(Kind.EVENT_DELIVERY) > 8  # the unanswered attempts too
    assert [r.kind for r in logs[MOH].records].count(Kind.EVENT_ACK) == 4
    # Each delivery is one exchange in both logs: reconcile matches them.
    bundles = [str(tmp_path / f"{member.replace('/', '_')}.zip") for member in (MOH, MOI)]
    assert main(["audit", "reconcile", *bundles]) == 0
    # spean audit show judges a delivery's tokens, and says why a publish holds none.
    delivery = next(
        r for r in logs[MOI].records if r.kind is Kind.EVENT_DELIVERY and r.status == "OK"
    )
    published = next(r for r in logs[MOI].records if r.kind is Kind.EVENT_PUBLISH)
    anchor = str(federation.root / "authority" / "signing.crt")
    capsys.readouterr()
    for record, words in (
        (delivery, "tokens: verified: event and ack tokens"),
        (published, "none to check: a record of kind EVENT_PUBLISH"),
    ):
        show = ["audit", "show", record.exchange_id, *bundles, "--anchor", anchor]
        assert main(show) == 0
        assert words in capsys.readouterr().out


def test_a_subscriber_server_offline_catches_up_when_back(world: World) -> None:
    federation = world.federation
    moi = world.server(MOI).pubsub
    assert moi is not None
    federation.stop(MOH)
    try:
        published = [publish(consumer_channel(federation, MOI), 200 + n) for n in range(5)]

        def backing_off() -> bool:
            return any(
                str(c.subscriber) == NHIS and c.attempts >= 2 and "UNAVAILABLE" in c.last_error
                for c in moi.store.cursors()
            )

        wait_for(backing_off)
        # MPWT is not held up by MoH being away.
        mpwt = Subscriber(federation.consumer_addresses[MPWT], VEHICLES)
        taken = mpwt.take_until(published[-1].event_id)
        assert [e.event_id for e in taken][-5:] == [p.event_id for p in published]
    finally:
        federation.start(MOH)
    events = Subscriber(federation.consumer_addresses[MOH], NHIS).take_until(published[-1].event_id)
    assert [e.event_id for e in events][-5:] == [p.event_id for p in published]


def test_a_subscriber_that_keeps_refusing_is_dead_lettered_and_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MoI grants MPWT the topic, but MPWT's server has no pubsub section: every
    # attempt is refused, and after three the event is given up for MPWT alone.
    federation = event_federation(
        tmp_path / "federation", subscribers={MOH: (NHIS,)}, delivery={"max_attempts": 3}
    )
    with running(federation) as world:
        moi = world.server(MOI).pubsub
        assert moi is not None
        published = [publish(consumer_channel(federation, MOI), n) for n in (1, 2)]
        taken = Subscriber(federation.consumer_addresses[MOH], NHIS).take(2)
        assert [e.event_id for e in taken] == [p.event_id for p in published]

        def given_up() -> bool:
            cursor = {str(c.subscriber): c for c in moi.store.cursors()}[VEHICLES]
            return cursor.acked == 2

        wait_for(given_up)
        vehicles = SubsystemId.parse(VEHICLES)
        letters = moi.store.dead_letters(TopicId.parse(TOPIC), vehicles)
        assert [(d.sequence, d.attempts) for d in letters] == [(1, 3), (2, 3)]
        # MPWT's provider endpoint takes the call for an exchange without a request token.
        assert all(d.error.startswith("UNAUTHENTICATED: KH/GOV/MPWT/ss1:") for d in letters)
        capsys.readouterr()
        assert main(["pubsub", "status", "--config", str(federation.configs[MOI])]) == 0
        out = capsys.readouterr().out
        assert f"-> {VEHICLES}: acked 2 of 2 (0 behind), attempts 0" in out
        assert "dead letters 2" in out
