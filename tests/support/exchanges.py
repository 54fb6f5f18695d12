"""Calls through the demo federation, and what the audit logs hold afterwards.

Shared by the tests that run security servers as subprocesses (workers, HA,
reload, TLS rotation, provider choice): a call, steady background traffic
whose every outcome is kept, and the verified records of an audit log.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import grpc

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.backends import open_store
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, VEHICLES, call


def get_vehicle(channel: grpc.Channel, timeout: float = 20.0) -> tuple[grpc.StatusCode, str]:
    """MoH's GetVehicle of the sample plate: the status and its details."""
    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    _, _, code, details = call(
        channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle, timeout=timeout
    )
    return code, details


def origins(database: Path) -> dict[str, int]:
    """Audit log origins in a SQLite audit store and their record counts."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT origin, count(*) FROM audit_records GROUP BY origin")
        return {origin: count for origin, count in rows}


def verified_records(database: Path, origin: str) -> list[AuditRecord]:
    """The records of `origin`, after checking its hash chain end to end."""
    with open_store(str(database), origin) as store:
        stored = list(store.read())
    verify_chain(r.chain_entry() for r in stored)
    return [AuditRecord.from_bytes(r.record_bytes) for r in stored]


class Traffic:
    """Threads calling GetVehicle through MoH until stopped; every outcome is kept."""

    def __init__(self, address: str, threads: int = 3) -> None:
        self.ok = 0
        self.failures: list[tuple[grpc.StatusCode, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(address)
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            code, details = get_vehicle(self._channel)
            with self._lock:
                if code is grpc.StatusCode.OK:
                    self.ok += 1
                else:
                    self.failures.append((code, details))

    def wait_for(self, ok: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < ok and not self.failures and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.failures, self.failures
        assert self.ok >= ok, f"only {self.ok} calls succeeded in {timeout} s"

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self._channel.close()
