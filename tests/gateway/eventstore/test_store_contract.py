"""The EventStore contract (gateway/eventstore/store.py), on every engine.

Each test runs on SQLite (a file of its own), PostgreSQL (a schema of its
own) and NATS JetStream (a prefix of its own, its streams and buckets
deleted afterwards). Without a server its tests are skipped, and with
SPEAN_REQUIRE_DATABASES=1 they fail. `open_store()` opens the same store
again, as a restarted process (or a second one) would.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spean.gateway.errors import AlreadyExists, EventStoreError, InvalidArgument, Unauthenticated
from spean.gateway.events import Cursor, event_digest
from spean.gateway.eventstore.store import DeadLetter, EventStore, Retention
from tests.gateway.eventstore.test_sqlite import (
    LICENSING,
    NHIS,
    TOPIC,
    delivery,
    event_id,
    publish,
)
from tests.support.databases import postgres_schema
from tests.support.nats import nats_prefix

Opener = Callable[[], EventStore]
DAY = 86_400.0
KEEP_A_DAY = Retention(events_s=DAY, inbox_s=DAY, dead_letters_s=DAY)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    if request.param == "sqlite":
        from spean.gateway.eventstore.sqlite import SqliteEventStore

        yield lambda: SqliteEventStore(tmp_path / "events.db")
    elif request.param == "postgres":
        from spean.gateway.eventstore.postgres import PostgresEventStore

        with postgres_schema(request.getfixturevalue("postgres_url")) as url:
            yield lambda: PostgresEventStore(url)
    else:
        from spean.gateway.eventstore.nats import NatsEventStore

        with nats_prefix(request.getfixturevalue("nats_url")) as url:
            yield lambda: NatsEventStore(url)


def test_sequence_numbers_are_dense_and_survive_reopening(open_store: Opener) -> None:
    with open_store() as store:
        assert store.head(TOPIC) == 0
        assert [publish(store, n) for n in (1, 2, 3)] == [1, 2, 3]
    with open_store() as store:
        assert store.head(TOPIC) == 3
        assert publish(store, 4) == 4
        stored = store.event(TOPIC, 2)
        assert stored is not None
        assert (stored.event_id, stored.payload) == (event_id(2), b"event 2")
        assert stored.event_sha256 == event_digest(b"event 2")
        assert stored.published_at_ms == 1002
        assert store.event(TOPIC, 9) is None


def test_republishing_an_event_id_is_idempotent_and_other_bytes_are_refused(
    open_store: Opener,
) -> None:
    with open_store() as store:
        publish(store, 1)
        again = store.append(TOPIC, event_id(1), b"event 1", event_digest(b"event 1"), 5, [])
        assert (again.sequence, again.duplicate, again.published_at_ms) == (1, True, 1001)
        with pytest.raises(AlreadyExists, match="with other bytes"):
            store.append(TOPIC, event_id(1), b"changed", event_digest(b"changed"), 5, [])
        assert store.head(TOPIC) == 1


def test_two_writers_appending_at_once_never_share_a_sequence_number(open_store: Opener) -> None:
    stores = [open_store() for _ in range(2)]
    got: list[int] = []
    lock = threading.Lock()

    def append(store: EventStore, first: int) -> None:
        for n in range(first, first + 20):
            sequence = publish(store, n)
            with lock:
                got.append(sequence)

    threads = [threading.Thread(target=append, args=(s, 1 + 100 * i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(1, 41))
    for store in stores:
        store.close()


def test_a_subscriber_starts_at_the_first_event_appended_after_it_is_known(
    open_store: Opener,
) -> None:
    with open_store() as store:
        store.append(TOPIC, event_id(1), b"a", event_digest(b"a"), 1, [])
        store.append(TOPIC, event_id(2), b"b", event_digest(b"b"), 2, [NHIS])
        store.append(TOPIC, event_id(3), b"c", event_digest(b"c"), 3, [NHIS, LICENSING])
        cursors = {c.subscriber: c for c in store.cursors()}
        assert cursors[NHIS].acked == 1
        assert cursors[LICENSING].acked == 2


def test_cursors_and_dead_letters_are_saved(open_store: Opener) -> None:
    with open_store() as store:
        publish(store, 1)
        moved = Cursor(TOPIC, NHIS, acked=1, last_error="UNAVAILABLE", dead_letters=1)
        store.save_cursor(moved, DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77))
    with open_store() as store:
        assert store.cursors() == [moved]
        assert store.dead_letters(TOPIC, NHIS) == [DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77)]
        assert store.dead_letters(TOPIC, LICENSING) == []


def test_the_inbox_keeps_each_event_once_and_refuses_a_replayed_token(open_store: Opener) -> None:
    with open_store() as store:
        first = store.receive(delivery(1))
        assert not first.duplicate
        again = store.receive(delivery(1, attempt=99))
        assert (again.position, again.duplicate) == (first.position, True)
        with pytest.raises(Unauthenticated, match="replay"):
            store.receive(delivery(1, attempt=99))
        with pytest.raises(AlreadyExists, match="other bytes"):
            store.receive(delivery(1, attempt=100, payload=b"forged"))
        store.receive(delivery(2))
        events = store.read_inbox(NHIS, TOPIC, after=0, limit=10)
        assert [e.event_id for e in events] == [event_id(1), event_id(2)]
        assert [e.sequence for e in events] == [1, 2]
        assert events[0].position < events[1].position
        assert store.read_inbox(NHIS, TOPIC, after=0, limit=1) == events[:1]
        assert store.read_inbox(LICENSING, TOPIC, after=0, limit=10) == []


def test_application_acks_are_cumulative_durable_and_never_move_back(open_store: Opener) -> None:
    with open_store() as store:
        positions = [store.receive(delivery(n)).position for n in (1, 2, 3)]
        assert store.acked_position(NHIS, TOPIC) == 0
        assert store.ack(NHIS, TOPIC, positions[1]).event_id == event_id(2)
        store.ack(NHIS, TOPIC, positions[0])
        with pytest.raises(InvalidArgument, match="holds no event"):
            store.ack(NHIS, TOPIC, positions[2] + 10)
        with pytest.raises(InvalidArgument, match="holds no event"):
            store.ack(LICENSING, TOPIC, positions[2])
    with open_store() as store:
        assert store.acked_position(NHIS, TOPIC) == positions[1]
        rest = store.read_inbox(NHIS, TOPIC, after=positions[1], limit=10)
        assert [e.event_id for e in rest] == [event_id(3)]


def test_a_closed_store_refuses(open_store: Opener) -> None:
    store = open_store()
    store.close()
    store.close()
    with pytest.raises(EventStoreError, match="is closed"):
        store.head(TOPIC)


# -- retention ----------------------------------------------------------------------------------


def test_an_old_event_every_cursor_passed_goes_and_one_still_needed_stays(
    open_store: Opener,
) -> None:
    with open_store() as store:
        for n in (1, 2, 3, 4):
            publish(store, n)  # published in 1970: old; NHIS's cursor starts at 0
        store.save_cursor(Cursor(TOPIC, NHIS, acked=2))
        forever = Retention(events_s=1e12, inbox_s=DAY, dead_letters_s=DAY)
        assert store.prune(forever, time.time_ns()).events == 0
        assert store.prune(KEEP_A_DAY, time.time_ns()).events == 2
        assert [store.event(TOPIC, n) is not None for n in (1, 2, 3, 4)] == [
            False,
            False,
            True,
            True,
        ]
        store.save_cursor(Cursor(TOPIC, NHIS, acked=4))
        assert store.prune(KEEP_A_DAY, time.time_ns()).events == 1
        # The newest event stays: it holds the head, and numbering goes on from it.
        assert store.event(TOPIC, 4) is not None
        assert store.head(TOPIC) == 4
        assert publish(store, 5) == 5


def test_an_old_acknowledged_inbox_entry_goes_and_an_unacknowledged_one_stays(
    open_store: Opener,
) -> None:
    with open_store() as store:
        positions = [store.receive(delivery(n)).position for n in (1, 2, 3)]
        store.ack(NHIS, TOPIC, positions[1])
        assert store.prune(KEEP_A_DAY, time.time_ns()).inbox == 0  # received just now
        later = time.time_ns() + int(2 * DAY * 1e9)
        assert store.prune(KEEP_A_DAY, later).inbox == 2
        assert [e.event_id for e in store.read_inbox(NHIS, TOPIC, 0, 10)] == [event_id(3)]
        assert store.acked_position(NHIS, TOPIC) == positions[1]
        assert store.ack(NHIS, TOPIC, positions[2]).event_id == event_id(3)


def test_a_dead_letter_goes_after_its_retention(open_store: Opener) -> None:
    with open_store() as store:
        publish(store, 1)
        publish(store, 2)
        now = time.time_ns()
        store.save_cursor(
            Cursor(TOPIC, NHIS, acked=1, dead_letters=1), DeadLetter(TOPIC, NHIS, 1, 3, "old", 77)
        )
        store.save_cursor(
            Cursor(TOPIC, NHIS, acked=2, dead_letters=2), DeadLetter(TOPIC, NHIS, 2, 3, "new", now)
        )
        assert store.prune(KEEP_A_DAY, now).dead_letters == 1
        assert [d.error for d in store.dead_letters(TOPIC, NHIS)] == ["new"]


def test_the_replay_memory_forgets_a_token_only_after_it_expired(open_store: Opener) -> None:
    now_s = int(time.time())
    expired = dataclasses.replace(delivery(1, attempt=500), token_expires_at=now_s - 3600)
    valid = dataclasses.replace(delivery(2, attempt=600), token_expires_at=now_s + 60)
    with open_store() as store:
        store.receive(expired)
        store.receive(valid)
        store.prune(KEEP_A_DAY, time.time_ns())
        # The expired token is forgotten: presented again it is no replay, and the
        # event is still stored once.
        assert store.receive(expired) == store.receive(dataclasses.replace(expired, attempt_id="x"))
        with pytest.raises(Unauthenticated, match="replay"):
            store.receive(valid)
