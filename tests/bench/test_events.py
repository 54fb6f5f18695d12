"""bench/events.py keeps working: a tiny run end to end, Spean beside JetStream.

No timing is asserted (figures come from the benchmark, never from a test):
only that every path moved every event and the result file has its shape.
The JetStream baseline may be skipped when no NATS server answers; the file
then says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import events


@pytest.mark.slow
def test_a_tiny_run_delivers_every_event_on_every_path(tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    assert events.main(["--subscribers", "2", "--events", "10", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["path"]: row for row in result["rows"]}
    spean = rows["spean"]
    assert (spean["subscribers"], spean["events"]) == (2, 10)
    assert spean["events_per_s"] > 0
    assert spean["latency_p99_ms"] >= spean["latency_p50_ms"] >= 0
    assert "jetstream" in rows or "jetstream" in result["skipped"]
    if "jetstream" in rows:
        assert spean["events_per_s_over_jetstream"] > 0
