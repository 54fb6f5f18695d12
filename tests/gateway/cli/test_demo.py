"""`spean demo --once` builds a federation, makes the hospital's calls and reports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spean.gateway.cli import main


def test_demo_runs_every_call_and_reports_it(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "spean.gateway.cli", "demo", "--dir", str(folder), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    statuses = {
        line.split()[0]: line.split()[2]
        for line in out.splitlines()
        if line.startswith("  ") and len(line.split()) > 3 and "KH/GOV/" in line.split()[1]
    }
    assert statuses["VerifyCitizen"] == "OK"
    assert statuses["GetVehicle"] == "OK"
    assert statuses["ListVehiclesByOwner"] == "OK"
    assert statuses["GetMonthlyReport"] == "OK"
    assert "match=True" in out
    assert "PERMISSION_DENIED" in out  # GetCitizen is not granted to the hospital
    assert f"spean call --config {folder / 'moh' / 'server.yaml'}" in out
    assert (folder / "authority" / "globalconf.signed").exists()
    assert (folder / "moh" / "state" / "audit.db").exists()
    # The demo citizen sees the hospital's call about them, and its proof holds offline.
    assert "the citizen asks MPWT who looked at their records" in out
    assert "ListVehiclesByOwner" in out
    assert "checked against the federation's anchor, holds" in out
    proof = folder / "citizen-proof.json"
    anchor = folder / "mpwt" / "keys" / "authority.crt"
    assert main(["audit", "verify-proof", str(proof), "--anchor", str(anchor)]) == 0


def test_demo_refuses_to_clear_a_folder_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--dir", str(tmp_path), "--once"]) == 1
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_requires_no_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--unknown-flag"])
