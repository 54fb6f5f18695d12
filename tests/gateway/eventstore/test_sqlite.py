"""The SQLite event store's own behaviour (every engine's contract: test_store_contract.py).

The helpers here (topic, subscribers, `publish`, `delivery`) serve every engine's tests."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from spean.gateway.errors import EventStoreError
from spean.gateway.events import TopicId, event_digest
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import Delivery, EventStore
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
