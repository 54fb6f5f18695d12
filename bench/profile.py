"""Where a security server spends its time: py-spy samples, summarised.

`profile_processes` attaches py-spy (``pip install py-spy``; it needs ptrace
rights, root or CAP_SYS_PTRACE) to running server processes for the length
of a load run, writes the raw collapsed stacks to the results folder, and
returns the functions that hold the most samples, by own time (the frame on
top of the stack) and by inclusive time (anywhere on the stack), with idle
threads (waiting in the gRPC poller, a queue or a lock) left out.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path
from typing import Any

_IDLE = ("wait (threading.py", "_worker (concurrent", "select (selectors", "poll (")


def find_py_spy() -> str | None:
    here = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
    return shutil.which("py-spy") or (str(here) if here.exists() else None)


def start_sampling(binary: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--format", "raw", "--output", str(out), "--rate", "200", "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Top functions of a collapsed-stack file by own and inclusive busy samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if any(marker in leaf for marker in _IDLE):
            continue
        count = int(count_text)
        busy += count
        own[leaf] += count
        for frame in set(frames[1:]):  # frames[0] is the thread
            inclusive[frame] += count
    if not busy:
        return {"busy_samples": 0, "own": [], "inclusive": []}

    def rows(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "percent": round(100 * n / busy, 1)}
            for name, n in counter.most_common(top)
        ]

    return {"busy_samples": busy, "own": rows(own), "inclusive": rows(inclusive)}
