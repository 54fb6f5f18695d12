"""`spean server run --workers N`: shared ports, one audit log per worker, SIGTERM drain.

Servers under test run as real subprocesses (``python -m spean.gateway.cli server
run``) in their own process group; every test kills the group on teardown,
whatever happened.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MPWT, build_demo
from spean.gateway.server.workers import worker_name
from tests.support.audit_logs import origins, verified_records
from tests.support.exchanges import Answer, get_vehicle
from tests.support.servers import REPO, SERVER_RUN, ServerProcess

pytestmark = pytest.mark.slow


def fresh_channel(address: str) -> grpc.Channel:
    # A private subchannel pool: a new TCP connection, which the kernel may
    # hand to any of the workers sharing the port.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    federation = build_demo(tmp_path / "federation")
    try:
        yield federation
    finally:
        federation.stop_all()


def test_workers_share_the_port_and_each_writes_its_own_log(
    federation: Federation, tmp_path: Path
) -> None:
    federation.start(MPWT)
    moh = ServerProcess(federation.configs[MOH], tmp_path / "moh.log", workers=2)
    try:
        ready = moh.wait_for("server.workers_ready")[0]
        assert ready["workers"] == 2
        assert len(set(ready["pids"])) == 2
        address = federation.consumer_addresses[MOH]
        answers = []
        for _ in range(16):
            with fresh_channel(address) as channel:
                answers.append(get_vehicle(channel))
        assert all(a.code is grpc.StatusCode.OK for a in answers), answers
        moh.send(signal.SIGTERM)
        assert moh.wait() == 0
    finally:
        moh.kill()
    database = federation.configs[MOH].parent / "state" / "audit.db"
    logs = origins(database)
    expected = {f"KH/GOV/MOH/ss1#{worker_name(i)}" for i in range(2)}
    # 16 connections spread over two workers: both took calls (all on one:
    # probability 2**-15), and each worker's log verifies on its own.
    assert set(logs) == expected, logs
    assert sum(logs.values()) == 16
    for origin in expected:
        records = verified_records(database, origin)
        assert records
        assert all(r.status == "OK" and r.origin == origin for r in records)


def test_sigterm_drains_every_call_in_flight(federation: Federation, tmp_path: Path) -> None:
    federation.start(MOH)
    mpwt = ServerProcess(federation.configs[MPWT], tmp_path / "mpwt.log", workers=2)
    vehicles_db = federation.configs[MPWT].parent / "mpwt-vehicles.db"
    try:
        mpwt.wait_for("server.workers_ready")
        address = federation.consumer_addresses[MOH]
        with grpc.insecure_channel(address) as channel:
            assert get_vehicle(channel).code is grpc.StatusCode.OK  # connections are warm
            # Hold the provider's database: every call reaches the adapter and waits there.
            lock = sqlite3.connect(vehicles_db, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            results: list[Answer] = []
            threads = [
                threading.Thread(target=lambda: results.append(get_vehicle(channel)))
                for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.0)  # the calls cross loopback to the blocked adapter
            mpwt.send(signal.SIGTERM)
            mpwt.wait_for("server.draining")
            time.sleep(0.5)
            assert mpwt.proc.poll() is None, "exited before its calls finished"
            lock.execute("ROLLBACK")
            lock.close()
            for thread in threads:
                thread.join(30)
        assert mpwt.wait() == 0
    finally:
        mpwt.kill()
    assert len(results) == 6
    assert all(a.code is grpc.StatusCode.OK for a in results), results
    database = federation.configs[MPWT].parent / "state" / "audit.db"
    served = sum(
        1
        for origin in origins(database)
        for record in verified_records(database, origin)
        if record.status == "OK"
    )
    assert served == 7


def test_port_zero_is_refused_with_several_workers(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = federation.configs[MPWT]
    text = config.read_text()
    listen = federation.config(MPWT).provider.listen  # type: ignore[union-attr]
    config.write_text(text.replace(listen, "127.0.0.1:0"))
    result = subprocess.run(
        [*SERVER_RUN, "--config", str(config), "--workers", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "port 0 would give each a different one" in result.stderr


def test_a_port_already_in_use_is_refused(federation: Federation, tmp_path: Path) -> None:
    federation.start(MPWT)  # binds MPWT's provider port
    result = subprocess.run(
        [*SERVER_RUN, "--config", str(federation.configs[MPWT])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is another security server already running on it?" in result.stderr
