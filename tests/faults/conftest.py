"""Fault injection around a live federation of subprocess security servers.

Every fault test tells the same story: the hospital application (a pool of
client threads) calls MPWT's GetVehicle through MoH's security server while
one part of the path fails and comes back. What the application saw is kept
per call: the exchange id of every OK answer, the status and message of every
failure. After the servers have stopped cleanly, both audit logs are exported
and verified completely (hash chain, Merkle tree against signed checkpoints,
token signatures), and the invariant of the issue is checked:

    no exchange whose answer reached the application is missing from either
    audit log (nothing acknowledged is lost, nothing passed unlogged).

The harness kills every process it started on teardown, whatever failed.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.cli import main
from spean.gateway.demo.federation import Federation
from tests.support.servers import ServerProcess

# A client whose server has gone away retries its connection quickly: the
# tests measure Spean's recovery, not grpc's default one-second-and-growing backoff.
CLIENT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclass
class Outcome:
    """What the application saw, one entry per call, in the order they ended."""

    ok_ids: list[str] = field(default_factory=list)
    failures: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)


class Traffic:
    """Client threads calling GetVehicle through MoH, each on its own channel.

    Bounded twice: at most `max_calls` calls in all, and none started after
    `max_seconds`. A failed call is followed by a short pause so that an
    outage does not turn the pool into a busy loop.
    """

    def __init__(
        self,
        address: str,
        *,
        threads: int = 4,
        max_calls: int = 20_000,
        max_seconds: float = 90.0,
        call_timeout: float = 5.0,
    ) -> None:
        self.outcome = Outcome()
        self._address = address
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = 0
        self._max_calls = max_calls
        self._until = time.monotonic() + max_seconds
        self._timeout = call_timeout
        self._threads = [
            threading.Thread(target=self._run, name=f"traffic-{i}") for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _take_one(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._started >= self._max_calls:
                return False
            if time.monotonic() >= self._until:
                return False
            self._started += 1
            return True

    def _run(self) -> None:
        with grpc.insecure_channel(self._address, options=CLIENT_OPTIONS) as channel:
            while self._take_one():
                code, details, exchange_id = get_vehicle_with_id(channel, self._timeout)
                with self._lock:
                    if code is grpc.StatusCode.OK:
                        self.outcome.ok_ids.append(exchange_id)
                    else:
                        self.outcome.failures.append((code, details))
                if code is not grpc.StatusCode.OK:
                    self._stop.wait(0.05)

    @property
    def ok(self) -> int:
        with self._lock:
            return len(self.outcome.ok_ids)

    def failures(self) -> list[tuple[grpc.StatusCode, str]]:
        with self._lock:
            return list(self.outcome.failures)

    def wait_for_ok(self, more: int, timeout: float = 30.0) -> None:
        """Wait until `more` calls beyond those already answered have succeeded."""
        target = self.ok + more
        deadline = time.monotonic() + timeout
        while self.ok < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.ok >= target, (
            f"only {self.ok} of {target} calls succeeded in {timeout} s; "
            f"last failures: {self.failures()[-3:]}"
        )

    def wait_for_failures(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until `count` more calls than now have failed."""
        target = len(self.failures()) + count
        deadline = time.monotonic() + timeout
        while len(self.failures()) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.failures()) >= target, f"no failure seen in {timeout} s"

    def stop(self) -> Outcome:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.outcome


def get_vehicle_with_id(channel: grpc.Channel, timeout: float) -> tuple[grpc.StatusCode, str, str]:
    """One GetVehicle as the hospital application: (status, message, exchange id)."""
    from spean.demo.vehicles.v1 import vehicles_pb2
    from spean.gateway.demo import data as demo_data
    from spean.gateway.demo.ministries import GET_VEHICLE, VEHICLES, call

    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    _, exchange_id, code, details = call(
        channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle, timeout=timeout
    )
    return code, details, exchange_id


class Servers:
    """The subprocess servers of one test; all of them are killed on teardown."""

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


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[Federation], Servers]]:
    """A factory of `Servers` for a federation; every process it starts dies on teardown."""
    holder: list[Servers] = []

    def make(federation: Federation) -> Servers:
        made = Servers(federation, tmp_path)
        holder.append(made)
        return made

    yield make
    for made in holder:
        made.kill_all()


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """One writer's whole log, exported and verified."""

    origin: str
    records: list[AuditRecord]

    def ok_ids(self) -> set[str]:
        return {r.exchange_id for r in self.records if r.status == "OK"}

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts


def export_and_verify(federation: Federation, member: str, out: Path) -> VerifiedLog:
    """`spean audit export` the member's log, then verify the bundle completely.

    Run after the server stopped cleanly: its final checkpoint covers the
    whole log, so the bundle must hold every record and every check must hold.
    """
    bundle_path = out / f"{member.replace('/', '_')}.zip"
    code = main(
        ["audit", "export", "--config", str(federation.configs[member]), "--out", str(bundle_path)]
    )
    assert code == 0, f"export of {member}'s audit log failed"
    bundle = read_bundle(bundle_path)
    assert bundle.start == 0
    assert bundle.stop == bundle.log_size, (
        f"{member}: the export covers {bundle.stop} of {bundle.log_size} records; "
        "the final checkpoint is missing"
    )
    report = verify_bundle(bundle)
    assert report.ok, f"{member}: {report.first}"
    assert report.records == bundle.log_size
    return VerifiedLog(bundle.origin, [AuditRecord.from_bytes(data) for data in bundle.records])


def assert_nothing_acknowledged_lost(
    federation: Federation, members: list[str], ok_ids: list[str], out: Path
) -> list[VerifiedLog]:
    """Every exchange the application saw succeed is an OK record in every member's log."""
    out.mkdir(exist_ok=True)
    assert len(set(ok_ids)) == len(ok_ids), "an exchange id was answered twice"
    assert all(ok_ids), "an OK answer without its spean-exchange-id"
    logs = []
    for member in members:
        verified = export_and_verify(federation, member, out)
        missing = set(ok_ids) - verified.ok_ids()
        assert not missing, (
            f"{len(missing)} exchanges answered OK to the application are missing from "
            f"{member}'s audit log, e.g. {sorted(missing)[:3]}"
        )
        logs.append(verified)
    return logs


@dataclass(frozen=True, slots=True)
class PostgresDatabase:
    """A throw-away PostgreSQL database and the means to take it away and back."""

    url: str  # postgresql+psycopg://... of the database itself
    name: str
    admin_url: str  # the server's maintenance database, never taken away

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Refuse new connections and terminate every open one: the database is down."""
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )

    def start(self) -> None:
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[PostgresDatabase]:
    server_url = make_url(postgres_url)
    name = f"spean_fault_{secrets.token_hex(5)}"
    database = PostgresDatabase(
        url=server_url.set(database=name).render_as_string(hide_password=False),
        name=name,
        admin_url=postgres_url,
    )
    database._admin(f"CREATE DATABASE {name}")
    try:
        yield database
    finally:
        with contextlib.suppress(sa_exc.SQLAlchemyError):  # teardown: best effort
            database._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
