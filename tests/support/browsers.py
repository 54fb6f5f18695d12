"""Debian's Chromium for the console's browser tests, and where their screenshots go.

The browser tests drive the system's ``/usr/bin/chromium`` (Debian package
``chromium``, installed by ``.ci/run``; ``SPEAN_CHROMIUM`` names another)
through Playwright's ``executable_path``: Playwright never downloads a
browser here. Where Chromium is missing the tests are skipped with the
reason, unless SPEAN_REQUIRE_DATABASES=1 (set by ``.ci/run``): then they
fail, as a missing database does (tests/conftest.py).

Screenshots are test artefacts, kept after the run under
``build/test-artefacts/console/`` (gitignored), one folder per test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "build" / "test-artefacts" / "console"


def chromium() -> str:
    """The Chromium executable; skips (or fails in CI) when there is none."""
    path = os.environ.get("SPEAN_CHROMIUM", "/usr/bin/chromium")
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    message = f"Chromium is not installed at {path} (apt-get install chromium)"
    if os.environ.get("SPEAN_REQUIRE_DATABASES") == "1":
        pytest.fail(f"{message} and SPEAN_REQUIRE_DATABASES=1 makes it mandatory")
    pytest.skip(message)


def artefacts(test_name: str) -> Path:
    """A fresh folder for one test's screenshots."""
    folder = ARTEFACTS / test_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
