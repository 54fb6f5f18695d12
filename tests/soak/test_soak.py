"""The CI-sized soak: 2,000 exchanges at concurrency 64 through the demo federation.

The same run as `make soak` (bench/soak.py), fifty times shorter: three
security servers as subprocesses, a load client in its own process, then
every call accounted for in both audit logs and the servers' memory checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import MAX_RSS_GROWTH, run_soak

pytestmark = pytest.mark.slow

CALLS = 2_000


def test_two_thousand_exchanges_all_answered_all_logged_memory_flat(tmp_path: Path) -> None:
    result = run_soak(tmp_path, calls=CALLS, concurrency=64)
    print(result.summary())
    assert result.statuses == {"OK": CALLS}
    assert [(c.records, c.ok) for c in result.audit] == [(CALLS, CALLS), (CALLS, CALLS)]
    assert len(result.memory) == 3
    for server in result.memory:
        assert all(server.quarter_peaks_kib), server
        assert server.growth < MAX_RSS_GROWTH, server
    assert result.ok, result.problems
