"""The benchmark keeps working: `python -m bench --smoke` end to end.

Runs the few-second smoke mode in a subprocess (real federation, real
security servers, real load) and checks the shape of its JSON and that
every path moved requests. No timing is asserted: performance is measured by
`make bench`, never by a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_run_writes_results_with_every_path(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text(encoding="utf-8"))

    assert {"meta", "skipped", "unary", "ratios", "streaming", "audit_verify", "globalconf"} <= set(
        results
    )
    paths = {row["path"] for row in results["unary"]}
    assert {"direct", "spean"} <= paths
    # nginx is optional; when it is absent the run says so instead.
    assert "nginx" in paths or "nginx" in results["skipped"]
    assert {row["concurrency"] for row in results["unary"]} == {1, 32}
    for row in results["unary"]:
        assert row["throughput_rps"] > 0, row
        assert row["server_ok"] > 0, row
        assert row["status_check"] == "ok", row
        assert row["p99_ms"] >= row["p50_ms"] > 0, row
        assert row["cpu_us_per_exchange"], row
    for level in ("concurrency 1", "concurrency 32"):
        assert results["ratios"][level]["throughput c/a"] > 0
    for stream in results["streaming"]:
        assert stream["bytes"] > 0, stream
        assert stream["failed"] == 0, stream
        assert stream["rss_peak_mib"], stream
    assert results["audit_verify"]["records"] > 0
    assert results["audit_verify"]["structure_records_per_s"] > 0
    conf = results["globalconf"]
    assert conf["members"] == 20
    assert conf["services"] == 200
    assert conf["load_verify_s"] > 0
    assert "GetVehicle, side by side" in done.stdout  # the table was printed
