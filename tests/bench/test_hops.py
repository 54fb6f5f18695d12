"""The framework prototype keeps working: `python -m bench.hops compare`, briefly.

Real processes, real mutual TLS, real h2load; the test checks that every mode
answered with grpc-status OK (the front's own count against h2load's) and
wrote its rows. No timing is asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is absent")
def test_compare_measures_each_mode_with_checked_statuses(tmp_path: Path) -> None:
    out = tmp_path / "hops.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.hops", "compare", "--seconds", "0.5", "--audit"),
            *("--modes", "sync,sync-unary-both,aio", "--concurrency", "1,4", "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads(out.read_text(encoding="utf-8"))
    assert run["audit"] is True
    assert run["grpcio"]
    rows = {(row["mode"], row["concurrency"]): row for row in run["rows"]}
    assert set(rows) == {(m, c) for m in ("sync", "sync-unary-both", "aio") for c in (1, 4)}
    for row in rows.values():
        assert row["rps"] > 0, row
        assert row["failed"] == 0, row
        assert row["status_check"] == "ok", row
        assert set(row["cpu_us_per_call"]) == {f"front {row['mode']}", f"back {row['mode']}"}
