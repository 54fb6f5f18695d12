"""Durable audit appends per second: group commit against one commit per record,
on SQLite and on PostgreSQL, side by side in one run.

Every design writes the same realistic record (two JWS-sized tokens, digests,
~1.4 kB) and acknowledges it only once it is durable: SQLite in WAL mode with
`synchronous=FULL` (fsync of the WAL per commit), PostgreSQL with
`synchronous_commit=on` (WAL flushed per commit). Designs, per backend:

- baseline, "one commit per record": the obvious design. A lock, then one
  transaction per record (SQLite `BEGIN IMMEDIATE`/INSERT/COMMIT; PostgreSQL
  INSERT/COMMIT), same table shape, same durability;
- "group commit": the store a security server runs, `open_store(url, origin,
  checkpoints=...)` with its defaults (linger up to 2 ms to fill a batch) and
  signed checkpoints every 1000 records or 1 s;
- "group commit, no linger": the same backend with `max_wait_s=0`.

Each case writes a log of its own (SQLite: a fresh file; PostgreSQL: a fresh
origin in a throwaway schema, dropped at the end). Rounds alternate the
designs so that a slow spell of a shared disk hits all of them alike; the
median round is reported with its ratio to the baseline of the same backend
and thread count, and with the range of the per-round ratios (the designs of
one round ran back to back on the same disk, so the ratio holds up better than
absolute rates on a shared machine). Mean batch is read back from the store
(records sharing one commit time).

    .venv/bin/python bench/audit_append.py [--seconds 2] [--repeat 3] [--threads 1,32]
        [--backends sqlite,postgres] [--dir /var/tmp] [--out bench/results/audit_append.json]
        [--postgres-url postgresql+psycopg://user@host:5432/db]

PostgreSQL: --postgres-url, else SPEAN_BENCH_POSTGRES_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test; the tables go to a
throwaway schema (`?schema=spean_bench_...`) dropped at the end. Skipped (and
said so) when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.backends.postgres import PostgresAuditStore
from spean.gateway.audit.backends.sqlite import SqliteAuditStore
from spean.gateway.audit.backends.urls import parse_postgres_url
from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.checkpoint import CheckpointSigner
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.writer import CheckpointPolicy
from tests.support.pki import self_signed

SERVER = "KH/GOV/MOH/ss1"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).resolve().parent / "results" / "audit_append.json"
BASELINE = "one commit per record"
DESIGNS = (BASELINE, "group commit", "group commit, no linger")


def make_record(origin: str, n: int) -> AuditRecord:
    now = time.time_ns()
    return AuditRecord(
        exchange_id=f"0192c0de-0000-7000-8000-{n:012d}",
        side=Side.CONSUMER,
        origin=origin,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        user="EE:doctor-4711",
        purpose="case 2024/118",
        received_at_ns=now,
        forwarded_at_ns=now + 50_000,
        answered_at_ns=now + 900_000,
        status="OK",
        request_sha256=bytes(range(32)),
        request_size=42,
        response_sha256=bytes(range(32, 64)),
        response_size=310,
        response_messages=1,
        request_token="e" * 620,
        response_token="f" * 540,
        peer_certificate_sha256="ab" * 32,
        latency_us=900,
    )


class Appender(Protocol):
    def append(self, record: AuditRecord) -> object: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- baselines


class NaiveSqlite:
    """Baseline: one transaction and one fsync per record, callers serialised."""

    def __init__(self, path: Path, origin: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS audit_records (origin TEXT NOT NULL, idx INTEGER NOT NULL,"
            " record BLOB NOT NULL, chain BLOB NOT NULL, written_at_ns INTEGER NOT NULL,"
            " PRIMARY KEY (origin, idx))"
        )
        self._origin = origin
        self._head = GENESIS
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        data = record.to_bytes()
        with self._lock:
            head = self._head.extend(data)
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT INTO audit_records VALUES (?, ?, ?, ?, ?)",
                (self._origin, head.size - 1, data, head.hash, time.time_ns()),
            )
            self._conn.execute("COMMIT")
            self._head = head

    def close(self) -> None:
        self._conn.close()


class NaivePostgres:
    """Baseline: one transaction (one WAL flush) per record, callers serialised."""

    def __init__(self, conninfo: str, schema: str, origin: str) -> None:
        self._conn = psycopg.connect(conninfo, autocommit=False)
        self._conn.execute("SET synchronous_commit = on")
        self._conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.naive_records (origin TEXT NOT NULL,"
                " idx BIGINT NOT NULL, record BYTEA NOT NULL, chain BYTEA NOT NULL,"
                " written_at_ns BIGINT NOT NULL, PRIMARY KEY (origin, idx))"
            ).format(sql.Identifier(schema))
        )
        self._conn.commit()
        self._insert = sql.SQL("INSERT INTO {}.naive_records VALUES (%s, %s, %s, %s, %s)").format(
            sql.Identifier(schema)
        )
        self._origin = origin
        self._head = GENESIS
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        data = record.to_bytes()
        with self._lock:
            head = self._head.extend(data)
            self._conn.execute(
                self._insert, (self._origin, head.size - 1, data, head.hash, time.time_ns())
            )
            self._conn.commit()
            self._head = head

    def close(self) -> None:
        self._conn.close()


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True, slots=True)
class Backend:
    """Where one backend's cases write, and how to open each design there."""

    name: str
    describe: dict[str, Any]
    open: Callable[[str, str], Appender]  # (design, case name) -> appender
    mean_batch: Callable[[str, str], float]  # (design, case name) -> records per commit


def origin_of(case: str) -> str:
    return f"{SERVER}#{case}"


def checkpoint_policy() -> CheckpointPolicy:
    key = ec.generate_private_key(ec.SECP256R1())
    return CheckpointPolicy(CheckpointSigner("KH/GOV/MOH", key, self_signed(key)))


def sqlite_backend(folder: Path) -> Backend:
    policy = checkpoint_policy()

    def path(case: str) -> Path:
        return folder / f"{case}.db"

    def open_case(design: str, case: str) -> Appender:
        origin = origin_of(case)
        if design == BASELINE:
            return NaiveSqlite(path(case), origin)
        if design == "group commit":
            return open_store(str(path(case)), origin, checkpoints=policy)
        return SqliteAuditStore(path(case), origin, max_wait_s=0.0, checkpoints=policy)

    def mean_batch(design: str, case: str) -> float:
        conn = sqlite3.connect(path(case))
        try:
            rows = conn.execute(
                "SELECT count(*) FROM audit_records GROUP BY written_at_ns"
            ).fetchall()
        finally:
            conn.close()
        return statistics.fmean(n for (n,) in rows) if rows else 0.0

    describe = {
        "engine": f"SQLite {sqlite3.sqlite_version}",
        "durability": "journal_mode=WAL, synchronous=FULL",
        "directory": str(folder),
    }
    return Backend("sqlite", describe, open_case, mean_batch)


@contextmanager
def postgres_backend(url: str) -> Iterator[Backend]:
    """A backend in a throwaway schema of the database `url` names, dropped afterwards."""
    schema = f"spean_bench_{secrets.token_hex(4)}"
    store_url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    conninfo, _ = parse_postgres_url(store_url)
    policy = checkpoint_policy()
    admin = psycopg.connect(conninfo, autocommit=True)
    try:
        settings = {
            name: admin.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

        def open_case(design: str, case: str) -> Appender:
            origin = origin_of(case)
            if design == BASELINE:
                return NaivePostgres(conninfo, schema, origin)
            if design == "group commit":
                return open_store(store_url, origin, checkpoints=policy)
            return PostgresAuditStore(store_url, origin, max_wait_s=0.0, checkpoints=policy)

        def mean_batch(design: str, case: str) -> float:
            table = "naive_records" if design == BASELINE else "audit_records"
            query = sql.SQL(
                "SELECT avg(n) FROM (SELECT count(*) AS n FROM {}.{} WHERE origin = %s"
                " GROUP BY written_at_ns) AS batches"
            ).format(sql.Identifier(schema), sql.Identifier(table))
            row = admin.execute(query, (origin_of(case),)).fetchone()
            return float(row[0]) if row and row[0] is not None else 0.0

        describe = {
            "engine": f"PostgreSQL {settings['server_version'][0]}",  # type: ignore[index]
            "durability": ", ".join(
                f"{k}={v[0]}"  # type: ignore[index]
                for k, v in settings.items()
                if k != "server_version"
            ),
            "server": parse_postgres_url(url)[0].split("@")[-1],
        }
        yield Backend("postgres", describe, open_case, mean_batch)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


# --------------------------------------------------------------------------- driving


@dataclass(frozen=True, slots=True)
class Result:
    appends: int
    seconds: float
    latencies: list[float]
    batch: float = 0.0

    @property
    def rate(self) -> float:
        return self.appends / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(store: Appender, origin: str, threads: int, seconds: float) -> Result:
    records = [make_record(origin, n) for n in range(1000)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start_gate = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(slot: int) -> None:
        mine = latencies[slot]
        start_gate.wait()
        n = slot
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            store.append(records[n % len(records)])
            mine.append(time.perf_counter() - t0)
            n += threads

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    return Result(len(flat), elapsed, flat)


def run_case(backend: Backend, design: str, case: str, threads: int, seconds: float) -> Result:
    store = backend.open(design, case)
    try:
        result = drive(store, origin_of(case), threads, seconds)
    finally:
        store.close()
    if isinstance(store, AuditStore):
        assert store.size() == result.appends, "every acknowledged append is in the log"
    return dataclasses.replace(result, batch=backend.mean_batch(design, case))


def median(runs: list[Result]) -> Result:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def measure(
    backend: Backend, thread_counts: list[int], seconds: float, repeat: int
) -> list[dict[str, Any]]:
    results: dict[tuple[str, int], list[Result]] = {}
    for round_no in range(repeat):
        for threads in thread_counts:
            for number, design in enumerate(DESIGNS):
                case = f"r{round_no}-t{threads}-d{number}"
                results.setdefault((design, threads), []).append(
                    run_case(backend, design, case, threads, seconds)
                )
    rows = []
    for threads in thread_counts:
        baseline = median(results[(BASELINE, threads)])
        for design in DESIGNS:
            result = median(results[(design, threads)])
            # Within one round the designs ran back to back on the same disk: their
            # ratio holds up better than absolute rates when the disk is shared.
            per_round = [
                r.rate / b.rate
                for r, b in zip(
                    results[(design, threads)], results[(BASELINE, threads)], strict=True
                )
            ]
            rows.append(
                {
                    "backend": backend.name,
                    "design": design,
                    "threads": threads,
                    "appends_per_s": round(result.rate, 1),
                    "p50_ms": round(result.percentile_ms(0.5), 3),
                    "p99_ms": round(result.percentile_ms(0.99), 3),
                    "mean_batch": round(result.batch, 2),
                    "x_baseline": round(result.rate / baseline.rate, 2),
                    "rounds_appends_per_s": [round(r.rate, 1) for r in results[(design, threads)]],
                    "rounds_x_baseline": [round(x, 2) for x in per_round],
                }
            )
    return rows


def print_table(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(
        f"durable audit appends, median of {meta['repeat']} x {meta['seconds']:g} s per case,"
        f" {meta['cpus']} CPUs"
    )
    for name, describe in results["backends"].items():
        print(f"  {name}: {describe['engine']}, {describe['durability']}")
    for name, reason in results["skipped"].items():
        print(f"  {name}: skipped ({reason})")
    header = (
        f"{'backend':<10}{'design':<26}{'threads':>8}{'appends/s':>12}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'batch':>8}{'x baseline':>12}{'per round':>14}"
    )
    print(header)
    print("-" * len(header))
    for row in results["rows"]:
        print(
            f"{row['backend']:<10}{row['design']:<26}{row['threads']:>8}"
            f"{row['appends_per_s']:>12,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['mean_batch']:>8.1f}{row['x_baseline']:>12.2f}"
            f"{min(row['rounds_x_baseline']):>8.2f}-{max(row['rounds_x_baseline']):<5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each case")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--threads", default="1,32", help="comma-separated thread counts")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--dir", default=None, help="directory for the SQLite files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SPEAN_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL database for the postgres backend (a throwaway schema is used)",
    )
    args = parser.parse_args()
    # Only warnings and errors: the table is the output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    thread_counts = [int(t) for t in args.threads.split(",")]
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]

    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": args.seconds,
            "repeat": args.repeat,
            "threads": thread_counts,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "backends": {},
        "skipped": {},
        "rows": [],
    }
    if "sqlite" in wanted:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            backend = sqlite_backend(Path(tmp))
            results["backends"]["sqlite"] = backend.describe
            results["rows"] += measure(backend, thread_counts, args.seconds, args.repeat)
    if "postgres" in wanted:
        url = args.postgres_url
        try:
            with postgres_backend(url) as backend:
                results["backends"]["postgres"] = backend.describe
                results["rows"] += measure(backend, thread_counts, args.seconds, args.repeat)
        except psycopg.OperationalError as exc:
            results["skipped"]["postgres"] = f"cannot reach {url.split('@')[-1]}: {exc}"
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
