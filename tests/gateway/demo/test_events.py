"""The demo's events: MoI's three address changes reach both subscribers once, in order."""

from __future__ import annotations

from pathlib import Path

from spean.gateway.demo.events import run_demo_events
from spean.gateway.demo.ministries import NHIS, VEHICLES, build_demo


def test_both_subscribers_read_the_three_address_changes_in_order(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "demo", events=True)
    with federation.running():
        received = run_demo_events(federation)
    for subscriber in (NHIS, VEHICLES):
        seen = [e for e in received if e.subscriber == subscriber]
        assert [e.sequence for e in seen] == [1, 2, 3]
        assert [e.province for e in seen] == ["Phnom Penh", "Siem Reap", "Battambang"]
        assert all(e.ms >= 0 for e in seen)
    assert len({e.event_id for e in received}) == 3
