"""bench/opendata.py keeps working: a small run generates the dataset through the exchange path,
downloads it from `spean catalogue serve`, and prints each beside its baseline (no timing is
asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_opendata_benchmark_runs_side_by_side(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/opendata.py", "--rows", "2000", "--no-postgres",
         "--dir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "mpwt-fleet: version 1, 2000 rows" in out
    rows = [line.split()[:2] for line in out.splitlines() if " rows/s" in line]
    assert rows == [["spean", "exchange"], ["stream", "exchange"], ["baseline", "SQLite"]], out
    speeds = [
        line.split()[0]
        for line in out.splitlines()
        if "spean serve" in line and "peak RSS" not in line
    ]
    assert speeds == ["csv", "json", "parquet"], out
    assert "peak RSS: spean serve" in out
    assert not (tmp_path / "work").exists()  # the work folder is removed
