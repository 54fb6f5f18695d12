"""A short Python script run as a child process, for tests that SIGKILL or starve it.

The child imports the repository's code (``PYTHONPATH`` is the checkout),
keeps stdout for its results and sends its log events to stderr, so the test
reads one from the other cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.servers import REPO

# Children keep stdout for their results; their log events go to stderr.
CHILD_PRELUDE = """
import sys, structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
"""


def run_child(tmp_path: Path, source: str, *args: str) -> subprocess.Popen[bytes]:
    """Start `source` (dedented) as ``child.py`` in `tmp_path` with `args`; pipes on."""
    script = tmp_path / "child.py"
    script.write_text(CHILD_PRELUDE + textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
