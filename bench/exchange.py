"""The three ways of serving GetVehicle, started side by side, and their measurement.

`Rig` builds one federation (spean.gateway.demo.federation with the demo plans) whose
MPWT database is the bench database, then starts, each in its own process:
the direct service on that same database file (a), the nginx pair in front
of it when nginx is installed (b), and the MoH and MPWT security servers
with `python -m spean.gateway.cli server run` (c). Before any timing it checks
that the three paths return byte-identical answers.

`Rig.measure` runs one load level against one path: a short warm-up, then
the measured window bracketed by reads of every server process's CPU time
(/proc/PID/stat) and of the server-side success counters (the direct
service's counters for (a) and (b); the consumer-side audit log for (c), a
record per exchange). CPU per exchange divides by the server-side count, so
it covers every exchange the servers did, whatever the generator saw.
"""

from __future__ import annotations

import collections
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import direct, nginx
from bench.load import LoadResult, find_h2load, run_h2load, run_python_client
from bench.procs import (
    Child,
    cpu_seconds,
    free_port,
    memory_kib,
    python_argv,
    start,
    wait_for_port,
)
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.demo import data as demo_data
from spean.gateway.demo import ministries as demo
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.files.config import load_config
from spean.gateway.metadata import CLIENT, PURPOSE, SERVICE, USER

BULK_OWNER = "099999999"
"""The bench database's owner of many vehicles, for the streaming measurement."""
DIRECT, NGINX, SPEAN = "direct", "nginx", "spean"
LABELS = {
    DIRECT: "(a) direct",
    NGINX: "(b) nginx x2 mTLS",
    SPEAN: "(c) Spean",
}
SPEAN_METADATA = [
    (CLIENT, demo.NHIS),
    (SERVICE, demo.VEHICLES),
    (USER, "bench-user"),
    (PURPOSE, "benchmark"),
]


def create_bench_database(path: Path, bulk_rows: int, row_bytes: int = 0) -> None:
    """The demo vehicle registry plus `bulk_rows` vehicles of BULK_OWNER.

    With `row_bytes`, each of those vehicles' model text is that long, so a
    streamed `Vehicle` weighs about as much (a record with a document
    attached, say); 0 keeps the demo's ~70-byte vehicles.
    """
    demo_data.create_mpwt_database(path)
    model = ("Camry " * (row_bytes // 6 + 1))[:row_bytes].rstrip() if row_bytes else "Camry"
    rows = [
        (
            f"Z{n:09d}",
            "car",
            "Toyota",
            model,
            2012,
            "silver",
            2500,
            "2013-03-15",
            "2024-09-03 10:30:00.000000",
            BULK_OWNER,
            "paid",
        )
        for n in range(bulk_rows)
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO vehicles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()


@dataclass(frozen=True, slots=True)
class Measurement:
    """One path at one concurrency."""

    path: str
    concurrency: int
    load: LoadResult
    server_ok: int
    server_errors: dict[str, int]
    cpu_us_per_exchange: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": LABELS[self.path],
            "concurrency": self.concurrency,
            "generator": self.load.tool,
            "seconds": round(self.load.seconds, 3),
            "completed": self.load.completed,
            "generator_failed": self.load.failed,
            "server_ok": self.server_ok,
            "server_errors": self.server_errors,
            # h2load sees HTTP statuses only: every answer it counted must be a
            # grpc-status OK on the server side, and the servers refused none.
            "status_check": "ok"
            if self.server_ok >= self.load.completed and not self.server_errors
            else "MISMATCH: the generator counted more successes than the servers gave",
            "throughput_rps": round(self.load.throughput, 1),
            "p50_ms": round(self.load.percentile_ms(0.50), 3),
            "p99_ms": round(self.load.percentile_ms(0.99), 3),
            "mean_ms": round(self.load.mean_ms(), 3),
            "cpu_us_per_exchange": {k: round(v, 1) for k, v in self.cpu_us_per_exchange.items()},
            "cpu_us_per_exchange_total": round(sum(self.cpu_us_per_exchange.values()), 1),
        }


@dataclass
class Rig:
    """Every server under test, running; `close` stops them."""

    workdir: Path
    federation: Federation
    direct: Child
    direct_port: int
    consumer: Child
    provider: Child
    consumer_port: int
    nginx: nginx.NginxPair | None
    h2load: str | None
    skipped: dict[str, str] = field(default_factory=dict)
    workers: int = 1  # processes per security server (`--workers`)
    connections: int = 1  # HTTP/2 connections the generator opens (streams are spread)

    @property
    def paths(self) -> list[str]:
        return [DIRECT, *([NGINX] if self.nginx else []), SPEAN]

    def entry_port(self, path: str) -> int:
        if path == DIRECT:
            return self.direct_port
        if path == NGINX:
            assert self.nginx is not None
            return self.nginx.entry_port
        return self.consumer_port

    def metadata(self, path: str) -> list[tuple[str, str]]:
        return SPEAN_METADATA if path == SPEAN else []

    def processes(self, path: str) -> dict[str, int]:
        """Server processes doing work on `path`, by role."""
        if path == DIRECT:
            return {"direct": self.direct.pid}
        if path == SPEAN:
            return self.security_servers(include_supervisors=True)
        assert self.nginx is not None
        found = {"nginx_master": self.nginx.child.pid, "direct": self.direct.pid}
        from bench.procs import children_of

        for index, pid in enumerate(children_of(self.nginx.child.pid)):
            found[f"nginx_worker{index}"] = pid
        return found

    def security_servers(self, include_supervisors: bool = False) -> dict[str, int]:
        """The security servers' processes by role; with workers, each worker's
        (and with `include_supervisors` the supervisor's, which serves nothing)."""
        if self.workers == 1:
            return {"consumer_ss": self.consumer.pid, "provider_ss": self.provider.pid}
        from bench.procs import children_of

        found = {}
        for role, child in (("consumer_ss", self.consumer), ("provider_ss", self.provider)):
            if include_supervisors:
                found[f"{role}_supervisor"] = child.pid
            workers = [pid for pid in children_of(child.pid) if not _resource_tracker(pid)]
            for index, pid in enumerate(workers):
                found[f"{role}_{index}"] = pid
        return found

    # ------------------------------------------------------------------ counters

    def _audit_db(self, member: str) -> Path:
        return self.federation.configs[member].parent / "state" / "audit.db"

    def audit_statuses(self, member: str, side: Side, since: int) -> tuple[int, dict[str, int]]:
        """(next index, statuses of `side` records at or after index `since`) of a member's log."""
        uri = f"file:{self._audit_db(member)}?mode=ro"
        counts: collections.Counter[str] = collections.Counter()
        last = since - 1
        conn = sqlite3.connect(uri, uri=True)
        try:
            # rowid, not idx: with --workers every worker writes its own log
            # (origin ...#w<i>) into the file, each with its own idx sequence.
            rows = conn.execute(
                "SELECT rowid, record FROM audit_records WHERE rowid >= ? ORDER BY rowid", (since,)
            )
            for index, data in rows:
                record = AuditRecord.from_bytes(data)
                if record.side is side:
                    counts[record.status] += 1
                last = index
        finally:
            conn.close()
        return last + 1, dict(counts)

    def server_counts(self, path: str) -> Callable[[], dict[str, int]]:
        """A function returning the server-side answers so far of `path`, by status."""
        if path in (DIRECT, NGINX):
            address = f"127.0.0.1:{self.direct_port}"
            return lambda: direct.read_counters(address)
        return _AuditCounter(self, demo.MOH, Side.CONSUMER)

    # ------------------------------------------------------------------ measuring

    def _load(
        self, path: str, concurrency: int, seconds: float, body: bytes, warmup: bool
    ) -> LoadResult:
        port = self.entry_port(path)
        if self.h2load is not None:
            return run_h2load(
                self.h2load,
                port,
                demo.GET_VEHICLE,
                body,
                self.metadata(path),
                concurrency,
                seconds,
                self.workdir,
                connections=self.connections,
            )
        return run_python_client(
            f"127.0.0.1:{port}",
            demo.GET_VEHICLE,
            body,
            self.metadata(path),
            concurrency,
            seconds,
            warmup=0.0,
            cpus=_client_cpus(),
        )

    def measure(self, path: str, concurrency: int, seconds: float, warmup: float) -> Measurement:
        from spean.demo.vehicles.v1 import vehicles_pb2

        body = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
        if warmup > 0:
            self._load(path, concurrency, warmup, body, warmup=True)
        counts = self.server_counts(path)
        processes = self.processes(path)
        before_counts = counts()
        before_cpu = {role: cpu_seconds(pid) for role, pid in processes.items()}
        load = self._load(path, concurrency, seconds, body, warmup=False)
        time.sleep(0.05)  # let the last answers' audit records land
        after_cpu = {role: cpu_seconds(pid) for role, pid in processes.items()}
        after_counts = counts()
        delta = {
            status: after_counts.get(status, 0) - before_counts.get(status, 0)
            for status in after_counts
        }
        server_ok = delta.pop("OK", 0)
        errors = {status: n for status, n in delta.items() if n}
        cpu = {
            role: (after_cpu[role] - before_cpu[role]) * 1e6 / max(server_ok, 1)
            for role in processes
        }
        return Measurement(path, concurrency, load, server_ok, errors, cpu)

    def stream(self, path: str, total_bytes: int, seconds: float) -> dict[str, Any]:
        """Stream BULK_OWNER's vehicles until `total_bytes` arrived or `seconds` passed
        (checked between calls); peak RSS of the servers, sampled every 20 ms."""
        from spean.demo.vehicles.v1 import vehicles_pb2

        body = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=BULK_OWNER).SerializeToString()
        watched = self.security_servers() if path == SPEAN else self.processes(path)
        before = {role: memory_kib(pid)[0] for role, pid in watched.items()}
        peaks = dict(before)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                for role, pid in watched.items():
                    peaks[role] = max(peaks[role], memory_kib(pid)[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            load = run_python_client(
                f"127.0.0.1:{self.entry_port(path)}",
                demo.LIST_VEHICLES,
                body,
                self.metadata(path),
                1,
                seconds,
                warmup=0.0,
                stream=True,
                max_bytes=total_bytes,
                cpus=_client_cpus(),
            )
        finally:
            stop.set()
            sampler.join()
        return {
            "path": path,
            "label": LABELS[path],
            "calls": load.completed,
            "failed": load.failed,
            "seconds": round(load.seconds, 3),
            "bytes": load.bytes,
            "messages": load.messages,
            "mb_per_s": round(load.bytes / load.seconds / 1e6, 2) if load.seconds else 0.0,
            "messages_per_s": round(load.messages / load.seconds, 1) if load.seconds else 0.0,
            "rss_before_mib": {k: round(v / 1024, 1) for k, v in before.items()},
            "rss_peak_mib": {k: round(v / 1024, 1) for k, v in peaks.items()},
            "rss_growth_mib": {k: round((peaks[k] - before[k]) / 1024, 1) for k in before},
        }

    def check_same_answers(self) -> bytes:
        """GetVehicle through every path; raise unless all answers are byte-identical."""
        from spean.demo.vehicles.v1 import vehicles_pb2

        body = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
        answers = {}
        for path in self.paths:
            with grpc.insecure_channel(f"127.0.0.1:{self.entry_port(path)}") as channel:
                call: Callable[..., bytes] = channel.unary_unary(demo.GET_VEHICLE)
                answers[path] = call(body, metadata=self.metadata(path), timeout=30)
        if len(set(answers.values())) != 1:
            from bench.procs import BenchError

            raise BenchError(f"the paths answer GetVehicle differently: {answers}")
        return answers[DIRECT]

    def close(self) -> None:
        for child in (self.consumer, self.provider, self.direct):
            child.stop()
        if self.nginx is not None:
            self.nginx.child.stop()


class _AuditCounter:
    """Statuses of one side's audit records, read incrementally from the log file."""

    def __init__(self, rig: Rig, member: str, side: Side) -> None:
        self._rig, self._member, self._side = rig, member, side
        self._next = 0
        self._counts: collections.Counter[str] = collections.Counter()

    def __call__(self) -> dict[str, int]:
        self._next, counts = self._rig.audit_statuses(self._member, self._side, self._next)
        self._counts.update(counts)
        return dict(self._counts)


def _resource_tracker(pid: int) -> bool:
    """multiprocessing's helper process beside spawned workers (it serves nothing)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"resource_tracker" in cmdline.read()
    except OSError:
        return False


def _client_cpus() -> str:
    """Pin the Python client to the last core when there are several."""
    import os

    cores = sorted(os.sched_getaffinity(0))
    return str(cores[-1]) if len(cores) > 1 else ""


def start_rig(
    workdir: Path,
    bulk_rows: int,
    nginx_workers: int = 1,
    *,
    workers: int = 1,
    connections: int = 1,
    row_bytes: int = 0,
) -> Rig:
    """Build the federation and bench database under `workdir` and start every server.

    `workers` processes per security server (`spean server run --workers`);
    `connections` HTTP/2 connections from the load generator, so that the
    kernel can spread them over the workers (one connection stays on one).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    plans = []
    for plan in demo.demo_plans():
        if plan.member == demo.MOI:
            continue  # not on the measured path
        if plan.member == demo.MPWT:
            service = dataclasses.replace(
                plan.services[0],
                prepare=lambda folder: create_bench_database(
                    folder / "mpwt-vehicles.db", bulk_rows, row_bytes
                ),
            )
            plan = dataclasses.replace(plan, services=[service])
        plans.append(plan)
    federation = build_federation(workdir / "federation", plans)
    database = federation.configs[demo.MPWT].parent / "mpwt-vehicles.db"
    started: list[Child] = []
    try:
        direct_port = free_port()
        direct_child = start(
            "direct service",
            python_argv(
                "bench.direct", "--database", str(database), "--listen", f"127.0.0.1:{direct_port}"
            ),
            workdir / "direct.log",
        )
        started.append(direct_child)
        servers = {}
        for member in (demo.MPWT, demo.MOH):
            config = federation.configs[member]
            child = start(
                f"security server {member}",
                python_argv(
                    "spean.gateway.cli",
                    "server",
                    "run",
                    "--config",
                    str(config),
                    "--workers",
                    str(workers),
                ),
                config.parent / "server.log",
            )
            started.append(child)
            servers[member] = child
        wait_for_port(direct_port, 30, direct_child)
        provider_listen = load_config(federation.configs[demo.MPWT]).provider
        assert provider_listen is not None
        wait_for_port(int(provider_listen.listen.rsplit(":", 1)[1]), 60, servers[demo.MPWT])
        consumer_port = int(federation.consumer_addresses[demo.MOH].rsplit(":", 1)[1])
        wait_for_port(consumer_port, 60, servers[demo.MOH])
        skipped = {}
        pair = None
        binary = nginx.find_nginx()
        if binary is None:
            skipped[NGINX] = (
                "nginx is not installed: baseline (b) skipped"
                " (Debian: apt-get install nginx-light; see docs/performance.md)"
            )
        else:
            pair = nginx.start_nginx_pair(
                binary, workdir / "nginx", f"127.0.0.1:{direct_port}", nginx_workers
            )
            started.append(pair.child)
        h2load = find_h2load()
        if h2load is None:
            skipped["h2load"] = (
                "h2load is not installed: the Python client (bench.client) drives the load"
                " (Debian: apt-get install nghttp2-client)"
            )
        return Rig(
            workdir=workdir,
            federation=federation,
            direct=direct_child,
            direct_port=direct_port,
            consumer=servers[demo.MOH],
            provider=servers[demo.MPWT],
            consumer_port=consumer_port,
            nginx=pair,
            h2load=h2load,
            skipped=skipped,
            workers=workers,
            connections=connections,
        )
    except BaseException:
        for child in started:
            child.stop()
        raise
