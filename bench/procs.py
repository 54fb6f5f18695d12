"""Child processes of a benchmark run, and what /proc says about them.

Every server under test runs in its own process, so the load generator never
shares a GIL with it, and its CPU time can be read from /proc/PID/stat before
and after a measurement. `Child` owns one such process: it starts it with its
output in a log file, waits until its port accepts connections, and stops it
with SIGTERM (SIGKILL after a grace period). Nothing here kills a process it
did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A benchmark could not be set up or run; the message says what to do."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds consumed so far by process `pid` (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        text = stat.read()
    # The command name (field 2) may hold spaces: split after its closing paren.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB: resident now and its peak so far."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (nginx's worker processes under its master)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                text = stat.read()
        except OSError:
            continue  # exited meanwhile
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.process.poll() is not None:
            raise BenchError(
                f"{child.name} exited with status {child.process.returncode} before listening"
                f" on port {port}; see {child.log}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@dataclass
class Child:
    """A server process started for the benchmark."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, argv: list[str], log: Path, cwd: Path | None = None) -> Child:
    """Start `argv` with stdout and stderr in `log`."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=environment()
        )
    return Child(name, process, log)


def python_argv(*module_and_args: str) -> list[str]:
    return [sys.executable, "-m", *module_and_args]


def environment() -> dict[str, str]:
    """This environment with the repository root on PYTHONPATH (for `python -m bench.*`)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
