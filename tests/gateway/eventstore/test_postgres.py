"""The PostgreSQL event store: the same contract as SQLite, shared by several processes.

Each test gets a schema of its own on the PostgreSQL server (dropped
afterwards); without the server the tests are skipped, and with
SPEAN_REQUIRE_DATABASES=1 they fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.errors import AlreadyExists, EventStoreError, InvalidArgument, Unauthenticated
from spean.gateway.events import Cursor, event_digest
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.eventstore.postgres import PostgresEventStore
from spean.gateway.eventstore.store import DeadLetter
from tests.gateway.eventstore.test_sqlite import (
    LICENSING,
    NHIS,
    TOPIC,
    delivery,
    event_id,
    publish,
)
from tests.support.databases import postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as schema_url:
        yield schema_url


def test_the_engine_is_chosen_by_the_url_and_survives_reopening(url: str, tmp_path: Path) -> None:
    with open_event_store(url, tmp_path) as store:
        assert isinstance(store, PostgresEventStore)
        assert [publish(store, n) for n in (1, 2, 3)] == [1, 2, 3]
    with PostgresEventStore(url) as store:
        assert store.head(TOPIC) == 3
        stored = store.event(TOPIC, 2)
        assert stored is not None
        assert (stored.event_id, stored.payload) == (event_id(2), b"event 2")


def test_two_processes_appending_at_once_never_share_a_sequence_number(url: str) -> None:
    stores = [PostgresEventStore(url) for _ in range(2)]
    got: list[int] = []
    lock = threading.Lock()

    def append(store: PostgresEventStore, first: int) -> None:
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


def test_duplicates_cursors_and_dead_letters(url: str) -> None:
    with PostgresEventStore(url) as store:
        publish(store, 1)
        again = store.append(TOPIC, event_id(1), b"event 1", event_digest(b"event 1"), 5, [])
        assert (again.sequence, again.duplicate) == (1, True)
        with pytest.raises(AlreadyExists, match="with other bytes"):
            store.append(TOPIC, event_id(1), b"x", event_digest(b"x"), 5, [])
        store.append(TOPIC, event_id(2), b"b", event_digest(b"b"), 2, [NHIS, LICENSING])
        assert {c.subscriber: c.acked for c in store.cursors()} == {NHIS: 0, LICENSING: 1}
        moved = Cursor(TOPIC, NHIS, acked=1, last_error="UNAVAILABLE", dead_letters=1)
        store.save_cursor(moved, DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77))
        assert moved in store.cursors()
        assert store.dead_letters(TOPIC, NHIS) == [DeadLetter(TOPIC, NHIS, 1, 3, "UNAVAILABLE", 77)]


def test_the_inbox_keeps_each_event_once_refuses_replays_and_acks_cumulatively(url: str) -> None:
    with PostgresEventStore(url) as store:
        first = store.receive(delivery(1))
        again = store.receive(delivery(1, attempt=99))
        assert (again.position, again.duplicate) == (first.position, True)
        with pytest.raises(Unauthenticated, match="replay"):
            store.receive(delivery(1, attempt=99))
        with pytest.raises(AlreadyExists, match="other bytes"):
            store.receive(delivery(1, attempt=100, payload=b"forged"))
        second = store.receive(delivery(2)).position
        assert [e.event_id for e in store.read_inbox(NHIS, TOPIC, 0, 10)] == [
            event_id(1),
            event_id(2),
        ]
        assert store.ack(NHIS, TOPIC, second).event_id == event_id(2)
        store.ack(NHIS, TOPIC, first.position)
        assert store.acked_position(NHIS, TOPIC) == second
        with pytest.raises(InvalidArgument, match="holds no event"):
            store.ack(NHIS, TOPIC, second + 100)


def test_a_closed_store_refuses(url: str) -> None:
    store = PostgresEventStore(url)
    store.close()
    with pytest.raises(EventStoreError, match="is closed"):
        store.head(TOPIC)


def test_an_unreachable_server_fails_closed_without_showing_the_password() -> None:
    url = "postgresql+psycopg://spean:s3cret@127.0.0.1:1/events?schema=spean_x"
    with pytest.raises(EventStoreError, match=r"127\.0\.0\.1:1") as caught:
        PostgresEventStore(url, connect_timeout_s=2)
    assert "s3cret" not in caught.value.message


def test_one_process_of_a_shared_store_leads_the_deliveries_until_it_goes(url: str) -> None:
    first, second = PostgresEventStore(url), PostgresEventStore(url)
    assert first.leads_delivery()
    assert first.leads_delivery()  # held, not retaken
    assert not second.leads_delivery()
    first.close()  # its session ends: the lease is free
    assert second.leads_delivery()
    second.close()
