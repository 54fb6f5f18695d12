"""Publish/subscribe on the NATS JetStream event store: MoI's and MoH's servers each keep
their events under a prefix of their own on the broker; each subscriber gets each event
once, in order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from tests.support.events import Subscriber, consumer_channel, event_federation, publish
from tests.support.nats import nats_prefix, stream_names
from tests.support.world import running

pytestmark = pytest.mark.nats


@pytest.fixture
def stores(nats_url: str) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {m: stack.enter_context(nats_prefix(nats_url)) for m in (MOI, MOH)}


def use_stores(federation: Federation, stores: dict[str, str]) -> None:
    """Point each member's `pubsub.store` at its URL."""
    for member, url in stores.items():
        path = federation.configs[member]
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        document["pubsub"]["store"] = url
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def test_events_flow_through_nats_stores(
    tmp_path: Path, nats_url: str, stores: dict[str, str]
) -> None:
    federation = event_federation(tmp_path / "federation")
    use_stores(federation, stores)
    with running(federation):
        published = [publish(consumer_channel(federation, MOI), n) for n in range(5)]
        assert [p.sequence for p in published] == [1, 2, 3, 4, 5]
        for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
            events = Subscriber(federation.consumer_addresses[member], client).take(5)
            assert [e.event_id for e in events] == [p.event_id for p in published]
            assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    # MoI's topic log and MoH's inbox are on the broker, under their prefixes.
    moi, moh = (stores[m].rsplit("=", 1)[1] for m in (MOI, MOH))
    assert any(name.startswith(f"{moi}_topic_") for name in stream_names(nats_url, moi))
    assert f"{moh}_inbox" in stream_names(nats_url, moh)
    for member in stores:
        assert not (federation.configs[member].parent / "state" / "events.db").exists()
