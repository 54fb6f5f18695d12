"""The `spean` command line's own behaviour, whatever the command: its output and exit codes.

Standard output carries only a command's result (logs go to standard error),
and a reader that closes standard output early (``spean audit verify | head``)
ends the command quietly with exit code 141, never with a traceback. Run as
subprocesses: a closed pipe is a property of the process's file descriptors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spean.gateway.cli import EXIT_STDOUT_CLOSED
from spean.gateway.demo.ministries import MPWT
from tests.support.audit_logs import DemoBundles, demo_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return demo_bundles(tmp_path_factory.mktemp("cli"))


def _spean_with_stdout_closed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `spean ARGS` with a standard output whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "spean.gateway.cli", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("command", ["verify", "verify --json", "show"])
def test_a_reader_that_goes_away_ends_the_command_quietly(
    bundles: DemoBundles, command: str
) -> None:
    # `spean audit verify BUNDLE | head -1`: head exits before the report is written.
    name, *options = command.split()
    args = ["audit", name, *options]
    if name == "show":
        args.append(bundles.ok_ids[0])
    ended = _spean_with_stdout_closed(*args, str(bundles.provider))
    assert ended.returncode == EXIT_STDOUT_CLOSED, ended.stderr
    assert ended.stderr == ""  # no traceback, no "Exception ignored"


def test_export_prints_its_result_and_nothing_else_on_stdout(
    bundles: DemoBundles, tmp_path: Path
) -> None:
    out = tmp_path / "again.zip"
    config = bundles.federation.configs[MPWT]
    export = ["audit", "export", "--config", str(config), "--out", str(out)]
    ended = subprocess.run(
        [sys.executable, "-m", "spean.gateway.cli", *export],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ended.returncode == 0, ended.stderr
    lines = ended.stdout.splitlines()
    assert len(lines) == 1, ended.stdout
    assert lines[0].startswith("exported ")
    assert lines[0].endswith(f" to {out}")
    assert "audit.store_opened" in ended.stderr  # the log line, where logs belong
