"""Security servers as real subprocesses, for tests that kill, starve or restart them.

`ServerProcess` runs ``python -m spean.gateway.cli server run --config ...`` in its
own process group (so teardown reaches every worker) with its JSON log lines
in a file the test reads as its window on the server. `kill()` is safe to
call any number of times and in any state; every test calls it in a
``finally`` so no server outlives its test, whatever failed.

With ``pipe_stderr=True`` the log reaches the file through a pipe drained by a
thread of the test process: the server itself then writes no regular file
but its own state, which is what a test limiting the server's file sizes
(RLIMIT_FSIZE, "disk full") needs.

`Servers` keeps the subprocess servers of one story (started, crashed,
stopped, restarted with the same ports, keys and audit store), so that its
fixture can kill every one of them on teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from spean.gateway.demo.federation import Federation

REPO = Path(__file__).resolve().parents[2]
SERVER_RUN = (sys.executable, "-m", "spean.gateway.cli", "server", "run")


class ServerProcess:
    """`spean server run` in a subprocess; its JSON log lines are the test's window."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        workers: int = 1,
        grace: float = 10.0,
        pipe_stderr: bool = False,
    ) -> None:
        self.config = config
        self.log = log
        self._stderr: IO[bytes] = log.open("wb")
        self._drain: threading.Thread | None = None
        self.proc = subprocess.Popen(
            [
                *SERVER_RUN,
                "--config",
                str(config),
                "--workers",
                str(workers),
                "--grace",
                str(grace),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if pipe_stderr else self._stderr,
            start_new_session=True,  # its own process group: teardown reaches the workers
        )
        if pipe_stderr:
            assert self.proc.stderr is not None
            self._drain = threading.Thread(
                target=self._copy, args=(self.proc.stderr,), name="server-log", daemon=True
            )
            self._drain.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _copy(self, pipe: IO[bytes]) -> None:
        for line in iter(pipe.readline, b""):
            self._stderr.write(line)
            self._stderr.flush()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def wait_for(self, name: str, count: int = 1, timeout: float = 90.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no {count} x {name!r} (exit {self.proc.poll()}); log:\n{self.log.read_text()}"
        )

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        if self._drain is not None:
            self._drain.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        else:
            # The supervisor is gone; make sure none of its workers is left behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._drain is not None:
            self._drain.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._stderr.close()


class Servers:
    """The subprocess servers of one test; `kill_all` (on teardown) ends every one."""

    def __init__(self, federation: Federation, logs: Path) -> None:
        self.federation = federation
        self._logs = logs
        self._all: list[ServerProcess] = []
        self.running: dict[str, ServerProcess] = {}

    def start(self, member: str, *, pipe_stderr: bool = False) -> ServerProcess:
        """Start `member`'s server (its same ports, keys and audit store every time)."""
        assert member not in self.running, f"{member} is already running"
        name = member.rsplit("/", 1)[-1].lower()
        log = self._logs / f"{name}-{len(self._all)}.log"
        process = ServerProcess(self.federation.configs[member], log, pipe_stderr=pipe_stderr)
        self._all.append(process)
        self.running[member] = process
        process.wait_for("server.started")
        return process

    def crash(self, member: str) -> None:
        """SIGKILL: no drain, no final checkpoint, no goodbye."""
        process = self.running.pop(member)
        process.kill()

    def stop(self, member: str) -> None:
        """SIGTERM and a clean exit: calls drained, the final checkpoint signed."""
        process = self.running.pop(member)
        process.send(signal.SIGTERM)
        code = process.wait()
        assert code == 0, f"{member} exited with {code}; log:\n{process.log.read_text()}"

    def stop_all(self) -> None:
        for member in list(self.running):
            self.stop(member)

    def kill_all(self) -> None:
        self.running.clear()
        for process in self._all:
            process.kill()
