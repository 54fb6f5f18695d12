"""bench/replay_guard.py keeps working: a short run prints every row (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_replay_benchmark_runs_side_by_side() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.replay_guard", "--seconds", "0.05", "--processes", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    names = [line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()]
    # postgres is measured when a server answers, and says it was skipped otherwise.
    assert {"memory", "sqlite", "sqlite-fsync", "replay-hit"} <= set(names), done.stdout
    assert "postgres" in names or "postgres: skipped" in done.stdout
