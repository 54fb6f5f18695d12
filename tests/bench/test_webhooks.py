"""bench/webhooks.py keeps working: a tiny run over every publishing path.

No timing is asserted (figures come from the benchmark, never from a test):
only that every path published every event and the result file has its shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import webhooks


@pytest.mark.slow
def test_a_tiny_run_publishes_every_event_on_every_path(tmp_path: Path) -> None:
    out = tmp_path / "webhooks.json"
    assert webhooks.main(["--events", "5", "--rounds", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    rows = {row["path"]: row for row in result["results"]}
    assert set(rows) == {"grpc", "webhook-protobuf", "webhook-json", "outbox"}
    for row in rows.values():
        assert row["events"] == 5
        assert row["events_per_s"] > 0
        assert row["p99_ms"] >= row["p50_ms"] >= 0
    assert rows["grpc"]["ratio_to_grpc"] == 1.0
