"""bench/audit_reconcile.py keeps working: a short run reconciles its own synthetic
bundles (which must agree) and prints both rows (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reconcile_benchmark_runs_side_by_side(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/audit_reconcile.py", "--exchanges", "2500", "--dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.strip().startswith("2,500")]
    assert [row[1] for row in rows] == ["baseline", "reconcile"], done.stdout
