"""Publish/subscribe on the PostgreSQL event store: MoI's and MoH's servers each keep
their events in a schema of their own; each subscriber gets each event once, in order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from tests.support.databases import postgres_schema
from tests.support.events import Subscriber, consumer_channel, event_federation, publish
from tests.support.world import running

pytestmark = pytest.mark.postgres


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {m: stack.enter_context(postgres_schema(postgres_url)) for m in (MOI, MOH)}


def test_events_flow_through_postgresql_stores(tmp_path: Path, schemas: dict[str, str]) -> None:
    federation = event_federation(tmp_path / "federation")
    for member, url in schemas.items():
        path = federation.configs[member]
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        document["pubsub"]["store"] = url
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    with running(federation):
        published = [publish(consumer_channel(federation, MOI), n) for n in range(5)]
        for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
            events = Subscriber(federation.consumer_addresses[member], client).take(5)
            assert [e.event_id for e in events] == [p.event_id for p in published]
            assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    # Nothing went to a SQLite file on the two servers that use PostgreSQL.
    for member in schemas:
        assert not (federation.configs[member].parent / "state" / "events.db").exists()
