"""The NATS JetStream event store's own behaviour (every engine's contract:
test_store_contract.py).

Each test gets a prefix of its own on the NATS server at 127.0.0.1:4222 (its
streams and buckets deleted afterwards); the outage test runs a nats-server
of its own. Without the server the tests are skipped, and with
SPEAN_REQUIRE_DATABASES=1 they fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.errors import EventStoreError
from spean.gateway.events import Cursor, event_digest
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.eventstore.nats import NatsEventStore
from tests.gateway.eventstore.test_sqlite import (
    LICENSING,
    NHIS,
    TOPIC,
    delivery,
    event_id,
    publish,
)
from tests.support.nats import NatsServer, nats_prefix, stream_names

pytestmark = pytest.mark.nats


@pytest.fixture
def url(nats_url: str) -> Iterator[str]:
    with nats_prefix(nats_url) as prefixed:
        yield prefixed


def test_the_engine_is_chosen_by_the_url_and_keeps_to_its_prefix(url: str, tmp_path: Path) -> None:
    prefix = url.rsplit("=", 1)[1]
    with open_event_store(url, tmp_path) as store:
        assert isinstance(store, NatsEventStore)
        assert [publish(store, n) for n in (1, 2)] == [1, 2]
        store.receive(delivery(1))
    names = stream_names(url.split("?", 1)[0], prefix)
    assert f"{prefix}_inbox" in names
    assert {f"KV_{prefix}_{b}" for b in ("cursors", "dead", "acks", "seen", "lease")} <= set(names)
    assert len([n for n in names if n.startswith(f"{prefix}_topic_")]) == 1
    # Another prefix on the same broker is another store.
    with nats_prefix(url.split("?", 1)[0]) as other_url, NatsEventStore(other_url) as other:
        assert other.head(TOPIC) == 0
        assert other.read_inbox(NHIS, TOPIC, 0, 10) == []
    assert not (tmp_path / "state").exists()


def test_an_unreachable_broker_fails_closed_naming_it() -> None:
    with pytest.raises(EventStoreError, match=r"nats://127\.0\.0\.1:1 \(prefix spean\)"):
        NatsEventStore("nats://127.0.0.1:1", timeout_s=1)


def test_one_process_of_a_shared_store_leads_the_deliveries_until_it_goes(url: str) -> None:
    first, second = NatsEventStore(url), NatsEventStore(url)
    assert first.leads_delivery()
    assert first.leads_delivery()  # held and renewed, not retaken
    assert not second.leads_delivery()
    first.close()  # releases the lease
    assert second.leads_delivery()
    assert not first.leads_delivery()
    second.close()


def test_a_broker_outage_fails_calls_closed_and_the_store_resumes_after_it(tmp_path: Path) -> None:
    broker = NatsServer(tmp_path / "nats")
    broker.start()
    try:
        store = NatsEventStore(f"{broker.url}?prefix=outage", timeout_s=1)
        assert publish(store, 1) == 1
        broker.kill()
        with pytest.raises(EventStoreError, match=rf"{broker.url} \(prefix outage\) could not"):
            publish(store, 2)
        assert not store.leads_delivery()
        broker.start()  # same folder, same port: the client reconnects by itself
        stored = None
        for _ in range(100):
            try:
                stored = store.event(TOPIC, 1)
                break
            except EventStoreError:
                continue
        assert stored is not None
        assert stored.event_id == event_id(1)
        # The append that failed may or may not be stored; its retry is answered once.
        assert publish(store, 2) == 2
        assert store.head(TOPIC) == 2
        store.close()
    finally:
        broker.stop()


def test_the_leader_sees_other_processes_cursors_and_a_new_leader_the_last_moves(
    url: str,
) -> None:
    leader, other = NatsEventStore(url), NatsEventStore(url)
    assert leader.leads_delivery()
    publish(leader, 1)
    assert [c.subscriber for c in leader.cursors()] == [NHIS]
    # Another process's append creates a cursor: the leader sees it at its next read.
    other.append(TOPIC, event_id(2), b"b", event_digest(b"b"), 2, [NHIS, LICENSING])
    deadline = time.monotonic() + 30
    while LICENSING not in {c.subscriber for c in leader.cursors()}:
        assert time.monotonic() < deadline, "the new cursor never appeared"
        time.sleep(0.05)
    assert {c.subscriber: c.acked for c in leader.cursors()} == {NHIS: 0, LICENSING: 1}
    # The leader moves a cursor and goes; the next leader starts from that move at once.
    assert {c.subscriber: c.acked for c in other.cursors()} == {NHIS: 0, LICENSING: 1}
    leader.save_cursor(Cursor(TOPIC, NHIS, acked=2))
    leader.close()
    assert other.leads_delivery()
    assert {c.subscriber: c.acked for c in other.cursors()} == {NHIS: 2, LICENSING: 1}
    other.close()
