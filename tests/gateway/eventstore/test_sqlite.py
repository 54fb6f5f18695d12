"""The SQLite event store: MoI's topic log and cursors, MoH's inbox, across reopenings."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from spean.gateway.errors import AlreadyExists, EventStoreError, InvalidArgument, Unauthenticated
from spean.gateway.events import Cursor, TopicId, event_digest
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import DeadLetter, Delivery, EventStore
from spean.gateway.identifiers import MemberId, SubsystemId

TOPIC = TopicId.parse("KH/GOV/MOI/population:citizen-address-changed")
NHIS = SubsystemId.parse("KH/GOV/MOH/nhis")
LICENSING = SubsystemId.parse("KH/GOV/MPWT/licensing")
MOI = MemberId.parse("KH/GOV/MOI")


def event_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def publish(store: EventStore, n: int, payload: bytes = b"") -> int:
    body = payload or f"event {n}".encode()
    return store.append(TOPIC, event_id(n), body, event_digest(body), 1000 + n, [NHIS]).sequence


def delivery(n: int, attempt: int | None = None, payload: bytes = b"") -> Delivery:
    body = payload or f"event {n}".encode()
    return Delivery(
        subscriber=NHIS,
        topic=TOPIC,
        sequence=n,
        event_id=event_id(n),
        payload=body,
        event_sha256=event_digest(body),
        published_at_ms=1000 + n,
        issuer=MOI,
        attempt_id=f"10000000-0000-4000-8000-{attempt if attempt is not None else n:012d}",
        token_expires_at=4_000_000_000,
    )


def test_sequence_numbers_are_dense_and_survive_reopening(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        assert [publish(store, n) for n in (1, 2, 3)] == [1, 2, 3]
    with SqliteEventStore(tmp_path / "events.db") as store:
        assert store.head(TOPIC) == 3
        assert publish(store, 4) == 4
        stored = store.event(TOPIC, 2)
        assert stored is not None
        assert (stored.event_id, stored.payload) == (event_id(2), b"event 2")
        assert store.event(TOPIC, 9) is None


def test_republishing_an_event_id_is_idempotent_and_other_bytes_are_refused(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        publish(store, 1)
        again = store.append(TOPIC, event_id(1), b"event 1", event_digest(b"event 1"), 5, [])
        assert (again.sequence, again.duplicate, again.published_at_ms) == (1, True, 1001)
        with pytest.raises(AlreadyExists, match="with other bytes"):
            store.append(TOPIC, event_id(1), b"changed", event_digest(b"changed"), 5, [])
        assert store.head(TOPIC) == 1


def test_a_subscriber_starts_at_the_first_event_appended_after_it_is_known(
    tmp_path: Path,
) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        store.append(TOPIC, event_id(1), b"a", event_digest(b"a"), 1, [])
        store.append(TOPIC, event_id(2), b"b", event_digest(b"b"), 2, [NHIS])
        store.append(TOPIC, event_id(3), b"c", event_digest(b"c"), 3, [NHIS, LICENSING])
        cursors = {c.subscriber: c for c in store.cursors()}
        assert cursors[NHIS].acked == 1
        assert cursors[LICENSING].acked == 2


def test_cursors_and_dead_letters_are_saved(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        publish(store, 1)
        moved = Cursor(TOPIC, NHIS, acked=1, last_error="UNAVAILABLE", dead_letters=1)
        store.save_cursor(moved, DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77))
    with SqliteEventStore(tmp_path / "events.db") as store:
        assert store.cursors() == [moved]
        assert store.dead_letters(TOPIC, NHIS) == [DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77)]


def test_the_inbox_keeps_each_event_once_and_refuses_a_replayed_token(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
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
        assert events[0].position < events[1].position


def test_application_acks_are_cumulative_durable_and_never_move_back(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        positions = [store.receive(delivery(n)).position for n in (1, 2, 3)]
        assert store.acked_position(NHIS, TOPIC) == 0
        assert store.ack(NHIS, TOPIC, positions[1]).event_id == event_id(2)
        store.ack(NHIS, TOPIC, positions[0])
        with pytest.raises(InvalidArgument, match="holds no event"):
            store.ack(NHIS, TOPIC, positions[2] + 10)
    with SqliteEventStore(tmp_path / "events.db") as store:
        assert store.acked_position(NHIS, TOPIC) == positions[1]
        rest = store.read_inbox(NHIS, TOPIC, after=positions[1], limit=10)
        assert [e.event_id for e in rest] == [event_id(3)]


def _publish_then_die(path: Path, count: int) -> None:
    store = SqliteEventStore(path)
    for n in range(1, count + 1):
        publish(store, n)
    os.kill(os.getpid(), signal.SIGKILL)


def test_every_append_that_returned_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    process = multiprocessing.get_context("spawn").Process(
        target=_publish_then_die, args=(path, 50)
    )
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    with SqliteEventStore(path) as store:
        assert store.head(TOPIC) == 50


def test_a_closed_store_refuses_and_a_missing_folder_is_named(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    store.close()
    store.close()
    with pytest.raises(EventStoreError, match="is closed"):
        store.head(TOPIC)
    with pytest.raises(EventStoreError, match="does its directory exist"):
        SqliteEventStore(tmp_path / "missing" / "events.db")
