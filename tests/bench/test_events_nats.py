"""bench/events.py --store nats keeps working: Spean on the NATS event store, beside SQLite.

No timing is asserted (figures come from the benchmark, never from a test):
only that both Spean paths moved every event and left nothing on the broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import events
from tests.support.nats import stream_names


@pytest.mark.slow
@pytest.mark.nats
def test_a_tiny_run_on_both_stores(tmp_path: Path, nats_url: str) -> None:
    out = tmp_path / "events.json"
    argv = ["--subscribers", "2", "--events", "10", "--store", "sqlite,nats"]
    assert events.main([*argv, "--nats", nats_url, "--out", str(out)]) == 0
    rows = {row["path"]: row for row in json.loads(out.read_text(encoding="utf-8"))["rows"]}
    for path in ("spean", "spean-nats"):
        assert (rows[path]["subscribers"], rows[path]["events"]) == (2, 10)
        assert rows[path]["latency_p99_ms"] >= rows[path]["latency_p50_ms"] >= 0
        assert rows[path]["events_per_s_over_jetstream"] > 0
    assert stream_names(nats_url, "bench", starting=True) == []
