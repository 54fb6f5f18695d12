"""Running a security server: one process, or a supervisor and N worker processes.

Theory of operation. `serve` runs one `SecurityServer` in the calling process
and turns signals into actions: SIGHUP reloads the configuration and keys in
place (`SecurityServer.reload`), SIGTERM and SIGINT stop accepting calls, let
those in flight finish (up to the grace period) and exit. Signals are blocked
before any thread exists and taken synchronously with `sigwait` on the main
thread, so no handler ever runs in the middle of grpc or audit code.

`Supervisor` runs N workers for one configuration. Every worker binds the same
ports (grpc sets SO_REUSEPORT; the kernel spreads connections across them)
and writes its own audit log, origin ``<server>#w<i>``: an audit log has
exactly one writer. The supervisor creates no grpc object at all; workers are
started with the *spawn* method, a fresh interpreter each, because grpc's
threads do not survive fork. The supervisor forwards SIGHUP and SIGTERM to
its workers, restarts a worker that dies (same index, so its log continues),
and exits after every worker has drained. A worker whose supervisor
disappears (SIGKILL, crash) notices the closed pipe and drains itself, so
no worker outlives its supervisor.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from spean.gateway.audit.store import validate_origin
from spean.gateway.config import ServerConfig, split_address
from spean.gateway.errors import ConfigError, SpeanError
from spean.gateway.files.config import load_config
from spean.gateway.server.logs import configure_logging

if TYPE_CHECKING:
    from spean.gateway.server.app import SecurityServer

log = structlog.get_logger("spean.workers")

# Signals taken with sigwait; blocked in every thread of a server process.
_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_SUPERVISOR_SIGNALS = _SIGNALS | {signal.SIGCHLD}
_STARTUP_TIMEOUT = 120.0  # seconds a worker may take to load keys, adapters, configuration
_MAX_BACKOFF = 30.0  # longest wait before restarting a worker that keeps dying
_STABLE_AFTER = 10.0  # a worker that lived this long resets the restart backoff


def worker_name(index: int, instance: str | None = None) -> str:
    """The worker part of an audit log origin: ``w0``, ``w1``, or ``<instance>-w0``, ...

    `instance` tells apart replicas that share one server identity (pods
    behind a load balancer): each replica's workers need their own logs.
    """
    name = f"w{index}" if instance is None else f"{instance}-w{index}"
    validate_origin(name)
    return name


def check_ports_free(config: ServerConfig) -> None:
    """Refuse to start on a port something already listens on.

    grpc binds with SO_REUSEPORT, which would otherwise let a second server
    (a forgotten one, or one started twice) silently share the port and
    receive part of the traffic. Binding here without it detects that.
    The probe does set SO_REUSEADDR, like grpc's own listener: connections
    of a server that just died linger in TIME_WAIT on its port, and a
    restarted server must be able to listen there at once. Linux still
    refuses the bind while any socket listens on the port.
    """
    sections = (
        ("consumer", config.consumer),
        ("provider", config.provider),
        ("health", config.health),
    )
    for side, section in sections:
        if section is None:
            continue
        host, port = split_address(section.listen)
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ConfigError(
                    f"{config.path}: {side}.listen {section.listen}: cannot listen there"
                    f" ({exc.strerror}); is another security server already running on it?"
                ) from None


def serve(
    config: ServerConfig,
    *,
    worker: str = "w0",
    grace: float = 10.0,
    on_ready: Callable[[SecurityServer], None] | None = None,
    reload_peers: Callable[[], None] | None = None,
) -> int:
    """Run one security server until SIGTERM/SIGINT; SIGHUP reloads. Main thread only.

    `reload_peers` is how this server asks for the other workers to reload (a
    worker's: its supervisor)."""
    from spean.gateway.server.app import SecurityServer

    # Block before grpc, the audit writer or the configuration refresher start
    # a thread: threads inherit the mask, so only sigwait below sees signals.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    server = SecurityServer(config, worker=worker, reload_peers=reload_peers)
    try:
        server.start()
    except SpeanError:
        server.stop(0)
        raise
    if on_ready is not None:
        on_ready(server)
    while True:
        signum = signal.sigwait(_SIGNALS)
        if signum == signal.SIGHUP:
            try:
                server.reload()
            except SpeanError as exc:
                log.error("server.reload_failed", origin=server.origin, error=exc.message)
            continue
        log.info(
            "server.draining", origin=server.origin, signal=signal.Signals(signum).name, grace=grace
        )
        server.stop(grace)
        return 0


def _watch_supervisor(alive: Connection) -> None:
    """Drain this worker when the supervisor's end of `alive` closes (it died)."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv()
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    config_path: str,
    index: int,
    instance: str | None,
    grace: float,
    ready: Connection,
    alive: Connection,
) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        config = load_config(Path(config_path))
        configure_logging(config.log_format)
        threading.Thread(
            target=_watch_supervisor, args=(alive,), name="spean-supervisor-watch", daemon=True
        ).start()

        def announce(server: SecurityServer) -> None:
            ready.send(("ready", server.consumer_port, server.provider_port))

        supervisor = os.getppid()

        def reload_peers() -> None:
            # The supervisor relays SIGHUP to every worker (Supervisor._reload).
            os.kill(supervisor, signal.SIGHUP)

        serve(
            config,
            worker=worker_name(index, instance),
            grace=grace,
            on_ready=announce,
            reload_peers=reload_peers,
        )
    except SpeanError as exc:
        ready.send(("failed", exc.message))
        raise SystemExit(1) from None


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection
    alive: Connection
    started: float
    restart_at: float | None = None
    failures: int = 0
    consumer_port: int | None = None
    provider_port: int | None = None


class Supervisor:
    """Runs `workers` processes of one security server and relays signals to them."""

    def __init__(
        self,
        config: ServerConfig,
        workers: int,
        grace: float = 10.0,
        instance: str | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        sections = (
            ("consumer", config.consumer),
            ("provider", config.provider),
            ("health", config.health),
        )
        for side, section in sections:
            if section is not None and workers > 1 and split_address(section.listen)[1] == 0:
                raise ConfigError(
                    f"{config.path}: {side}.listen {section.listen}: {workers} workers must"
                    " share one fixed port; port 0 would give each a different one"
                )
        self.config = config
        self.workers = workers
        self.grace = grace
        self.instance = instance
        worker_name(0, instance)  # refuse a bad instance name before anything starts
        self._context = multiprocessing.get_context("spawn")
        self._running: dict[int, _Worker] = {}
        self._pending: list[int] = []

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    def run(self) -> int:
        """Start the workers, relay signals until SIGTERM/SIGINT, drain, return an exit code."""
        # multiprocessing unblocks SIGINT and SIGTERM whenever it starts its
        # resource tracker (CPython's resource_tracker.ensure_running), so the
        # mask is set again after every spawn, and a handler catches a signal
        # that lands in that window instead of letting it kill the supervisor.
        for relayed in _SIGNALS:
            signal.signal(relayed, self._note_signal)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        try:
            for index in range(self.workers):
                self._await_ready(self._spawn(index))
        except SpeanError:
            self._stop_all()
            raise
        first = self._running[0]
        log.info(
            "server.workers_ready",
            server=self.config.server_id,
            workers=self.workers,
            pids=[w.process.pid for w in self._running.values()],
            consumer_port=first.consumer_port,
            provider_port=first.provider_port,
        )
        while True:
            if self._pending:
                signum: int | None = self._pending.pop(0)
            else:
                info = signal.sigtimedwait(_SUPERVISOR_SIGNALS, 1.0)
                signum = info.si_signo if info is not None else None
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("server.draining", server=self.config.server_id, grace=self.grace)
                self._stop_all()
                return 0
            if signum == signal.SIGHUP:
                self._reload()
            self._supervise()

    def _spawn(self, index: int) -> _Worker:
        ready_r, ready_w = self._context.Pipe(duplex=False)
        alive_r, alive_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(str(self.config.path), index, self.instance, self.grace, ready_w, alive_r),
            name=f"spean-{worker_name(index, self.instance)}",
            daemon=False,
        )
        process.start()
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        # Only the worker may hold these ends: EOF must mean "the other side is gone".
        ready_w.close()
        alive_r.close()
        worker = _Worker(index, process, ready_r, alive_w, time.monotonic())
        self._running[index] = worker
        return worker

    def _await_ready(self, worker: _Worker) -> None:
        name = worker_name(worker.index, self.instance)
        message: tuple[str, int | None, int | None] | tuple[str, str] | None = None
        try:
            if worker.ready.poll(_STARTUP_TIMEOUT):
                message = worker.ready.recv()
        except (EOFError, OSError):
            message = None
        if message is not None and message[0] == "ready" and len(message) == 3:
            worker.consumer_port, worker.provider_port = message[1], message[2]
            log.info("worker.started", worker=name, pid=worker.process.pid)
            return
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5.0)
        reason = str(message[1]) if message is not None else "it exited or did not answer"
        raise ConfigError(f"worker {name} failed to start: {reason}")

    def _reload(self) -> None:
        try:
            load_config(self.config.path)
        except SpeanError as exc:
            # Workers would refuse it too; say so once, here.
            log.error("server.reload_failed", server=self.config.server_id, error=exc.message)
            return
        for worker in self._running.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGHUP)
        log.info("server.reload_requested", workers=len(self._running))

    def _supervise(self) -> None:
        """Notice workers that died and restart them, with a growing delay if they keep dying."""
        now = time.monotonic()
        for index, worker in list(self._running.items()):
            if worker.restart_at is None and not worker.process.is_alive():
                worker.process.join()
                lived = now - worker.started
                failures = 0 if lived >= _STABLE_AFTER else worker.failures + 1
                delay = min(_MAX_BACKOFF, 0.5 * 2**failures)
                worker.restart_at, worker.failures = now + delay, failures
                log.error(
                    "worker.exited",
                    worker=worker_name(index, self.instance),
                    exitcode=worker.process.exitcode,
                    restart_in=delay,
                )
            if worker.restart_at is not None and now >= worker.restart_at:
                worker.ready.close()
                worker.alive.close()
                failures = worker.failures
                replacement = self._spawn(index)
                replacement.failures = failures
                try:
                    self._await_ready(replacement)
                except SpeanError as exc:
                    log.error(
                        "worker.restart_failed",
                        worker=worker_name(index, self.instance),
                        error=exc.message,
                    )

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait for them to drain, kill what is left after the grace."""
        for worker in self._running.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 15.0
        for worker in self._running.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error(
                    "worker.kill",
                    worker=worker_name(worker.index, self.instance),
                    reason="did not drain",
                )
                worker.process.kill()
                worker.process.join(5.0)
            worker.ready.close()
            worker.alive.close()
        log.info("server.stopped", server=self.config.server_id, workers=len(self._running))
