"""bench/catalogue_search.py keeps working: a small run indexes its synthetic catalogue and
prints the index and the baseline side by side (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_catalogue_search_benchmark_runs_side_by_side(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "bench/catalogue_search.py", "--members", "50", "--services", "500",
            "--queries", "30", "--no-postgres", "--dir", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "50 members, 500 services" in done.stdout
    rows = [line.split()[:2] for line in done.stdout.splitlines() if " ms " in line]
    assert rows == [["sqlite", "index"], ["sqlite", "baseline"]], done.stdout
    assert list(tmp_path.iterdir()) == []  # the SQLite file is removed
