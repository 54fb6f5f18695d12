"""Progress bars of the long audit commands: drawn for a person at a terminal, never
into a pipe, a file or a `--json` document.

Run as subprocesses, with standard output a pseudo-terminal or a pipe: whether
stdout is a terminal is a property of the process.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spean.gateway.demo.ministries import MPWT
from tests.support.audit_logs import DemoBundles, demo_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return demo_bundles(tmp_path_factory.mktemp("progress"))


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spean.gateway.cli", *args]


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `spean ARGS` with stdout a terminal; its exit code and what the terminal showed."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    process = subprocess.Popen(
        _command(*args), stdout=secondary, stderr=subprocess.DEVNULL, env=env
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    return process.wait(timeout=120), shown.decode("utf-8", "replace")


def _piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=120, check=False)


def _export(bundles: DemoBundles, out: Path) -> list[str]:
    config = str(bundles.federation.configs[MPWT])
    return ["audit", "export", "--config", config, "--out", str(out)]


def test_export_draws_a_progress_bar_on_a_terminal_only(
    bundles: DemoBundles, tmp_path: Path
) -> None:
    code, shown = _on_a_terminal(*_export(bundles, tmp_path / "a.zip"))
    assert code == 0, shown
    assert f"exporting {MPWT}/ss1#w0" in shown
    assert "exported " in shown

    piped = _piped(*_export(bundles, tmp_path / "b.zip"))
    assert piped.returncode == 0, piped.stderr
    assert "exporting" not in piped.stdout + piped.stderr


def test_replay_draws_a_progress_bar_on_a_terminal_unless_json(bundles: DemoBundles) -> None:
    key = str(bundles.federation.root / "auditor" / "auditor.key")
    replay = ["audit", "replay", str(bundles.provider), "--auditor-key", key]
    code, shown = _on_a_terminal(*replay)
    assert code == 0, shown
    assert "decrypting bodies" in shown

    code, shown = _on_a_terminal(*replay, "--json")
    assert code == 0, shown
    assert "decrypting bodies" not in shown
    piped = _piped(*replay)
    assert piped.returncode == 0, piped.stderr
    assert "decrypting bodies" not in piped.stdout + piped.stderr


def test_archive_draws_a_progress_bar_on_a_terminal_only(
    bundles: DemoBundles, tmp_path: Path
) -> None:
    # Archive deletes what it archived: work on a copy of the provider's folder.
    original = bundles.federation.configs[MPWT]
    folder = tmp_path / "mpwt"
    shutil.copytree(original.parent, folder)
    config = str(folder / original.name)
    archive = ["audit", "archive", "--config", config, "--older-than", "0"]
    code, shown = _on_a_terminal(*archive, "--archive-dir", str(tmp_path / "a"))
    assert code == 0, shown
    assert f"archiving {MPWT}/ss1" in shown
    assert "archived " in shown

    piped = _piped(*archive, "--archive-dir", str(tmp_path / "b"))
    assert piped.returncode == 0, piped.stderr
    assert "archiving" not in piped.stdout + piped.stderr
