"""Publish/subscribe with `--workers 2` on both sides: one event store per server, shared
by its workers; only worker 0 delivers, so each subscriber still gets each event once,
in order, whichever worker took the Publish, the Deliver or the Subscribe."""

from __future__ import annotations

from pathlib import Path

import pytest

from spean.gateway.demo.ministries import MOH, MOI, NHIS
from tests.support.events import Subscriber, consumer_channel, event_federation, publish
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow


def test_two_workers_each_side_deliver_each_event_once_in_order(tmp_path: Path) -> None:
    federation = event_federation(
        tmp_path / "federation", grants=(NHIS,), subscribers={MOH: (NHIS,)}
    )
    processes = [
        ServerProcess(federation.configs[member], tmp_path / f"{n}.log", workers=2)
        for n, member in enumerate((MOI, MOH))
    ]
    try:
        for process in processes:
            process.wait_for("server.workers_ready")
        channels = [consumer_channel(federation, MOI) for _ in range(4)]
        # Several connections: the kernel spreads them over both workers.
        published = [publish(channels[n % 4], n) for n in range(20)]
        assert [p.sequence for p in published] == list(range(1, 21))
        events = Subscriber(federation.consumer_addresses[MOH], NHIS).take(20)
        assert [e.event_id for e in events] == [p.event_id for p in published]
        for channel in channels:
            channel.close()
    finally:
        for process in processes:
            process.kill()
