"""The outbox adapter on SQLite, PostgreSQL and MariaDB, publishing to a running federation.

MoI's population register writes outbox rows beside its own changes; the
relay (adapters/outbox.py) publishes them through MoI's security server, in
id order, and removes or marks each only after the server answered that the
event is durable. A relay SIGKILLed between a publish and its delete
publishes that row again when restarted, and the server answers it as a
duplicate: the topic holds each event once.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, select

from spean.adapters.outbox import GrpcPublisher, OutboxRelay, OutboxTable, Refused, load_relay
from spean.gateway.audit.record import Kind
from spean.gateway.demo.ministries import MOH, MOI, NHIS, POPULATION
from spean.gateway.errors import Unavailable
from spean.gateway.events import TopicId
from tests.support.child import run_child
from tests.support.databases import Backend
from tests.support.events import (
    ADDRESS_CHANGED,
    TOPIC,
    Subscriber,
    address_changed,
    event_federation,
)
from tests.support.world import World, running


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    federation = event_federation(
        tmp_path_factory.mktemp("outbox"), grants=(NHIS,), subscribers={MOH: (NHIS,)}
    )
    with running(federation) as world:
        yield world


def outbox_table(backend: Backend, name: str) -> Table:
    """A fresh outbox table on `backend`, as an application would create it."""
    meta = MetaData()
    outbox = Table(
        name,
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("topic", String(64), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("published_at", DateTime, nullable=True),
    )
    meta.drop_all(backend.admin, tables=[outbox])
    meta.create_all(backend.admin, tables=[outbox])
    return outbox


def write_rows(backend: Backend, outbox: Table, numbers: range) -> list[str]:
    """The application's transaction: its rows of the outbox, with new event ids."""
    ids = [str(uuid.uuid4()) for _ in numbers]
    with backend.admin.begin() as conn:
        for n, event_id in zip(numbers, ids, strict=True):
            conn.execute(
                outbox.insert().values(
                    topic=ADDRESS_CHANGED, event_id=event_id, payload=address_changed(n)
                )
            )
    return ids


def remaining(backend: Backend, outbox: Table) -> list[tuple[str, object]]:
    with backend.admin.connect() as conn:
        rows = conn.execute(select(outbox.c.event_id, outbox.c.published_at).order_by(outbox.c.id))
        return [(str(r[0]), r[1]) for r in rows]


def relay(world: World, backend: Backend, name: str, after: str = "delete") -> OutboxRelay:
    publisher = GrpcPublisher(world.federation.consumer_addresses[MOI], POPULATION)
    return OutboxRelay(backend.admin, OutboxTable(name, after=after), publisher)


def stored_ids(world: World, sequences: list[int]) -> list[str]:
    node = world.server(MOI).pubsub
    assert node is not None
    events = [node.store.event(TopicId.parse(TOPIC), s) for s in sequences]
    return [e.event_id for e in events if e is not None]


def config_file(tmp_path: Path, world: World, backend: Backend, name: str) -> Path:
    path = tmp_path / "outbox.yaml"
    document = {
        "database": backend.url,
        "table": name,
        "server": world.federation.consumer_addresses[MOI],
        "client": POPULATION,
        "poll_ms": 50,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_rows_are_published_in_id_order_and_deleted_once_durable(
    world: World, backend: Backend
) -> None:
    outbox = outbox_table(backend, "outbox_delete")
    ids = write_rows(backend, outbox, range(1, 4))
    answers = relay(world, backend, "outbox_delete").run_once()
    assert [a.event_id for a in answers] == ids
    assert not any(a.duplicate for a in answers)
    sequences = [a.sequence for a in answers]
    assert sequences == sorted(sequences)
    assert stored_ids(world, sequences) == ids
    assert remaining(backend, outbox) == []
    published = {r.event_id for r in world.records(MOI) if r.kind is Kind.EVENT_PUBLISH}
    assert set(ids) <= published
    # The subscriber receives them, in that order.
    taken = Subscriber(world.federation.consumer_addresses[MOH], NHIS).take_until(ids[-1])
    assert [e.event_id for e in taken][-3:] == ids


def test_mark_mode_keeps_the_rows_marked_and_publishes_them_once(
    world: World, backend: Backend
) -> None:
    outbox = outbox_table(backend, "outbox_mark")
    ids = write_rows(backend, outbox, range(10, 12))
    runner = relay(world, backend, "outbox_mark", after="mark")
    assert [a.event_id for a in runner.run_once()] == ids
    rows = remaining(backend, outbox)
    assert [r[0] for r in rows] == ids
    assert all(r[1] is not None for r in rows)
    assert runner.run_once() == []


def test_a_relay_killed_between_publish_and_delete_republishes_as_a_duplicate(
    world: World, backend: Backend, tmp_path: Path
) -> None:
    outbox = outbox_table(backend, "outbox_kill")
    ids = write_rows(backend, outbox, range(20, 23))
    config = config_file(tmp_path, world, backend, "outbox_kill")
    # The relay process dies (SIGKILL) right after the server answered the second event.
    child = run_child(
        tmp_path,
        """
        import os, signal, sys
        from pathlib import Path
        from spean.adapters.outbox import load_relay
        relay = load_relay(Path(sys.argv[1]))
        publisher = relay._publisher
        calls = []
        original = publisher.publish
        def publish(*args):
            answer = original(*args)
            calls.append(answer)
            if len(calls) == 2:
                print(answer.event_id, answer.sequence, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return answer
        publisher.publish = publish
        relay.run()
        """,
        str(config),
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_id, killed_sequence = out.decode().split()
    assert killed_id == ids[1]
    # Published but not deleted: the row is still there, and the later one too.
    assert [r[0] for r in remaining(backend, outbox)] == ids[1:]
    restarted = load_relay(config)
    try:
        answers = restarted.run_once()
    finally:
        restarted.close()
    assert [(a.event_id, a.duplicate) for a in answers] == [(ids[1], True), (ids[2], False)]
    assert answers[0].sequence == int(killed_sequence)
    assert remaining(backend, outbox) == []
    # The topic holds each event once, in order.
    first = answers[0].sequence - 1
    assert stored_ids(world, [first, first + 1, first + 2]) == ids
    node = world.server(MOI).pubsub
    assert node is not None
    assert node.store.head(TopicId.parse(TOPIC)) == first + 2


def test_a_refused_row_stops_the_outbox_at_that_row(world: World, backend: Backend) -> None:
    outbox = outbox_table(backend, "outbox_refused")
    with backend.admin.begin() as conn:
        conn.execute(
            outbox.insert().values(
                topic=ADDRESS_CHANGED, event_id=str(uuid.uuid4()), payload=b"\xff\xff"
            )
        )
    later = write_rows(backend, outbox, range(30, 31))
    with pytest.raises(Refused) as caught:
        relay(world, backend, "outbox_refused").run_once()
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a population.v1.CitizenAddressChanged" in caught.value.message
    assert len(remaining(backend, outbox)) == 2
    assert later[0] not in {r.event_id for r in world.records(MOI)}


def test_an_unreachable_server_leaves_every_row(backend: Backend) -> None:
    outbox = outbox_table(backend, "outbox_away")
    write_rows(backend, outbox, range(40, 42))
    publisher = GrpcPublisher("127.0.0.1:1", POPULATION, timeout_s=2)
    with pytest.raises(Unavailable):
        OutboxRelay(backend.admin, OutboxTable("outbox_away"), publisher).run_once()
    assert len(remaining(backend, outbox)) == 2
