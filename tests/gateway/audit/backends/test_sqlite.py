"""SQLite audit store: group commit, durability, fail closed, one chain per origin.

Real SQLite files in a temporary folder; crashes and I/O failures are real too
(a SIGKILLed child process, a file-size limit that makes writes fail).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.backends.sqlite import SqliteAuditStore
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditReceipt, AuditStore
from spean.gateway.errors import AuditError, ConfigError, InvalidArgument
from tests.support.child import run_child

ORIGIN = "KH/GOV/MOH/ss1#w0"


def record(n: int, origin: str = ORIGIN, **changes: object) -> AuditRecord:
    base = AuditRecord(
        exchange_id=f"exchange-{n}",
        side=Side.CONSUMER,
        origin=origin,
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        received_at_ns=1_732_492_800_000_000_000 + n,
        status="OK",
        request_sha256=bytes(32),
        request_token="header.claims.signature",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def verify_store(store: AuditStore, origin: str | None = None) -> list[bytes]:
    """Check the store's chain; return the stored record bytes in index order."""
    stored = list(store.read(origin=origin))
    verify_chain(entry.chain_entry() for entry in stored)
    return [entry.record_bytes for entry in stored]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteAuditStore]:
    with SqliteAuditStore(path, ORIGIN) as opened:
        yield opened  # type: ignore[misc]


# -- appending and reading ------------------------------------------------------


def test_appends_are_numbered_chained_and_stored_byte_for_byte(store: SqliteAuditStore) -> None:
    receipts = [store.append(record(n)) for n in range(5)]

    assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
    assert store.size() == 5
    stored = list(store.read())
    assert [s.record_bytes for s in stored] == [record(n).to_bytes() for n in range(5)]
    assert [s.chain_hash for s in stored] == [r.chain_hash for r in receipts]
    assert {s.origin for s in stored} == {ORIGIN}
    verify_chain(s.chain_entry() for s in stored)
    assert [s.index for s in store.read(1, 3)] == [1, 2]
    assert [s.index for s in store.read(4)] == [4]
    assert list(store.read(5)) == []


def test_appends_from_16_threads_are_all_durable_and_consecutive(
    store: SqliteAuditStore, path: Path
) -> None:
    per_thread = 40
    results: dict[int, list[tuple[AuditReceipt, bytes]]] = {}

    def appender(worker: int) -> None:
        mine = []
        for n in range(per_thread):
            rec = record(worker * 1000 + n)
            mine.append((store.append(rec), rec.to_bytes()))
        results[worker] = mine

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = 16 * per_thread
    all_receipts = [receipt for mine in results.values() for receipt, _ in mine]
    assert sorted(r.index for r in all_receipts) == list(range(total))
    for mine in results.values():
        indexes = [receipt.index for receipt, _ in mine]
        assert indexes == sorted(indexes)  # an append that returned earlier is earlier
    # What a fresh reader sees on disk is exactly what each caller was promised.
    with SqliteAuditStore(path, ORIGIN) as reopened:
        stored = {s.index: s for s in reopened.read()}
        assert reopened.size() == total
    for mine in results.values():
        for receipt, data in mine:
            assert stored[receipt.index].record_bytes == data
            assert stored[receipt.index].chain_hash == receipt.chain_hash
    verify_chain(stored[i].chain_entry() for i in range(total))


def test_reopening_resumes_the_chain(path: Path) -> None:
    with SqliteAuditStore(path, ORIGIN) as first:
        for n in range(3):
            first.append(record(n))
    with SqliteAuditStore(path, ORIGIN) as second:
        assert second.size() == 3
        assert second.append(record(3)).index == 3
        assert verify_store(second) == [record(n).to_bytes() for n in range(4)]


def test_two_origins_in_one_file_keep_separate_chains(path: Path) -> None:
    other = "KH/GOV/MOH/ss1#w1"
    with SqliteAuditStore(path, ORIGIN) as a, SqliteAuditStore(path, other) as b:

        def fill(target: SqliteAuditStore, origin: str) -> None:
            for n in range(60):
                target.append(record(n, origin=origin))

        threads = [
            threading.Thread(target=fill, args=(a, ORIGIN)),
            threading.Thread(target=fill, args=(b, other)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert a.size() == b.size() == 60
        assert verify_store(a) == [record(n).to_bytes() for n in range(60)]
        assert verify_store(b) == [record(n, origin=other).to_bytes() for n in range(60)]
        # Either store can read the other writer's log from the shared file.
        assert verify_store(a, origin=other) == verify_store(b)


def test_close_flushes_pending_appends_and_then_refuses(path: Path) -> None:
    store = SqliteAuditStore(path, ORIGIN)
    receipts: list[AuditReceipt] = []
    refused: list[str] = []
    lock = threading.Lock()

    def appender(worker: int) -> None:
        for n in range(10_000):
            try:
                receipt = store.append(record(worker * 100_000 + n))
            except AuditError as exc:
                with lock:
                    refused.append(exc.message)
                return
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    while len(receipts) < 200:
        time.sleep(0.001)
    store.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()

    assert len(refused) == 8
    assert all("is closed" in message for message in refused)
    with pytest.raises(AuditError, match="is closed"):
        store.append(record(0))
    store.close()  # idempotent
    with SqliteAuditStore(path, ORIGIN) as reopened:
        # Exactly the acknowledged records are on disk: none lost, none extra.
        assert reopened.size() == len(receipts)
        stored = {s.index: s.chain_hash for s in reopened.read()}
        assert stored == {r.index: r.chain_hash for r in receipts}
        verify_store(reopened)


def test_record_of_another_origin_is_refused(store: SqliteAuditStore) -> None:
    with pytest.raises(AuditError, match="names origin 'KH/GOV/MOH/ss2#w0'"):
        store.append(record(1, origin="KH/GOV/MOH/ss2#w0"))
    assert store.size() == 0


def test_unencodable_record_is_refused_as_an_audit_failure(store: SqliteAuditStore) -> None:
    with pytest.raises(AuditError, match="exchange-1"):
        store.append(record(1, request_size=-5))
    assert store.size() == 0


def test_odd_characters_in_the_path_are_taken_literally(tmp_path: Path) -> None:
    folder = tmp_path / "audit logs #1 %20"
    folder.mkdir()
    with SqliteAuditStore(folder / "ss1?mode=memory.db", ORIGIN) as store:
        store.append(record(0))
        assert verify_store(store) == [record(0).to_bytes()]
    assert (folder / "ss1?mode=memory.db").is_file()


def test_reading_a_vanished_file_fails_without_creating_one(
    store: SqliteAuditStore, path: Path
) -> None:
    store.append(record(0))
    store.close()
    for leftover in path.parent.glob("audit.db*"):
        leftover.unlink()
    with pytest.raises(AuditError, match="cannot be opened for reading"):
        list(store.read())
    assert not path.exists()


def test_bad_read_range_is_refused(store: SqliteAuditStore) -> None:
    with pytest.raises(InvalidArgument, match="range"):
        store.read(-1)
    with pytest.raises(InvalidArgument, match="range"):
        store.read(5, 2)


# -- failures: fail closed, never a silent success --------------------------------


def test_insert_failure_refuses_the_append_and_later_appends_retry(
    store: SqliteAuditStore, path: Path
) -> None:
    for n in range(3):
        store.append(record(n))
    saboteur = sqlite3.connect(path, isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_records "
        "BEGIN SELECT RAISE(ABORT, 'storage refused the write'); END"
    )
    try:
        with pytest.raises(
            AuditError, match=r"could not make 1 record\(s\) durable: storage refused"
        ):
            store.append(record(3))
        with pytest.raises(AuditError):
            store.append(record(4))
        assert store.size() == 3
    finally:
        saboteur.execute("DROP TRIGGER refuse")
        saboteur.close()

    # The chain head rolled back: the next record takes index 3, and the
    # refused ones are nowhere in the log.
    assert store.append(record(5)).index == 3
    assert verify_store(store) == [record(n).to_bytes() for n in (0, 1, 2, 5)]


def test_disk_write_failure_refuses_appends_until_the_disk_recovers(
    tmp_path: Path, path: Path
) -> None:
    # A real I/O failure: a file-size limit (enforced for root too) makes the
    # WAL write fail with EFBIG, as a full disk would. In a child process so
    # the limit cannot touch the test runner.
    child = run_child(
        tmp_path,
        f"""
        import dataclasses, os, resource, signal, sys
        from spean.gateway.audit.record import AuditRecord, Side
        from spean.gateway.audit.backends.sqlite import SqliteAuditStore
        from spean.gateway.errors import AuditError

        path = sys.argv[1]
        store = SqliteAuditStore(path, {ORIGIN!r})
        small = AuditRecord(exchange_id="small", side=Side.PROVIDER, origin={ORIGIN!r},
                            received_at_ns=1, status="OK")
        big = dataclasses.replace(small, exchange_id="big", user="u" * 200_000)
        for _ in range(3):
            print("stored", store.append(small).index)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = os.path.getsize(path + "-wal")
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        for _ in range(2):
            try:
                print("SILENT SUCCESS", store.append(big).index)
            except AuditError as exc:
                print("refused", exc.message)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        print("stored", store.append(small).index)
        store.close()
        """,
        str(path),
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[:3] == ["stored 0", "stored 1", "stored 2"]
    assert len(lines) == 6
    for line in lines[3:5]:
        assert line.startswith("refused audit store")
        assert "could not make 1 record(s) durable" in line
    assert lines[5] == "stored 3"
    with SqliteAuditStore(path, ORIGIN) as reopened:
        stored = [AuditRecord.from_bytes(data).exchange_id for data in verify_store(reopened)]
    assert stored == ["small"] * 4


def test_unopenable_path_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("not a directory")
    with pytest.raises(AuditError, match=r"plain-file/audit\.db"):
        SqliteAuditStore(not_a_dir / "audit.db", ORIGIN)
    with pytest.raises(AuditError, match="cannot be opened"):
        SqliteAuditStore(tmp_path, ORIGIN)  # a directory where the file should be


def test_a_second_writer_of_the_same_origin_is_refused(path: Path) -> None:
    with SqliteAuditStore(path, ORIGIN) as first, SqliteAuditStore(path, ORIGIN) as second:
        first.append(record(0))
        with pytest.raises(AuditError, match="changed by another writer"):
            second.append(record(1))
        # Refused for good: two writers of one log would fork it.
        with pytest.raises(AuditError, match="changed by another writer"):
            second.append(record(2))
        assert first.append(record(3)).index == 1
        assert verify_store(first) == [record(n).to_bytes() for n in (0, 3)]


def test_unknown_schema_version_is_refused(path: Path) -> None:
    SqliteAuditStore(path, ORIGIN).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(AuditError, match="schema version 99"):
        SqliteAuditStore(path, ORIGIN)


def test_invalid_origin_and_parameters_are_refused(path: Path) -> None:
    for origin in ("", "has space#w0", "a+b", "x" * 256, "tab\there"):
        with pytest.raises(InvalidArgument, match="origin"):
            SqliteAuditStore(path, origin)
    with pytest.raises(InvalidArgument, match="max_batch"):
        SqliteAuditStore(path, ORIGIN, max_batch=0)
    with pytest.raises(InvalidArgument, match="max_wait_s"):
        SqliteAuditStore(path, ORIGIN, max_wait_s=-1)


# -- durability across a crash ------------------------------------------------------


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path, path: Path) -> None:
    # The child appends from 4 threads and prints each receipt only after
    # append returned; it is SIGKILLed while batches are being committed.
    child = run_child(
        tmp_path,
        f"""
        import os, sys, threading
        from spean.gateway.audit.record import AuditRecord, Side
        from spean.gateway.audit.backends.sqlite import SqliteAuditStore

        store = SqliteAuditStore(sys.argv[1], {ORIGIN!r})

        def appender(worker):
            n = 0
            while True:
                exchange_id = f"{{worker}}-{{n}}"
                receipt = store.append(AuditRecord(
                    exchange_id=exchange_id, side=Side.PROVIDER, origin={ORIGIN!r},
                    received_at_ns=n, status="OK", request_token="t" * 300))
                # One write(2) per line: atomic on a pipe, never interleaved.
                os.write(1, f"{{receipt.index}} {{receipt.chain_hash.hex()}} "
                            f"{{exchange_id}}\\n".encode())
                n += 1

        for worker in range(4):
            threading.Thread(target=appender, args=(worker,), daemon=True).start()
        threading.Event().wait()
        """,
        str(path),
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        while len(acknowledged) < 400:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(line.decode())
    finally:
        child.send_signal(signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    assert len(acknowledged) >= 400, f"child stopped early: {err.decode()}"
    assert child.returncode == -signal.SIGKILL
    # Lines printed before the kill; a torn last line cannot occur (one write each).
    acknowledged += rest.decode().splitlines(keepends=True)
    receipt_line = re.compile(r"\d+ [0-9a-f]{64} \d+-\d+\n\Z")
    assert all(receipt_line.match(line) for line in acknowledged), acknowledged

    with SqliteAuditStore(path, ORIGIN) as reopened:
        stored = {s.index: s for s in reopened.read()}
        verify_chain(stored[i].chain_entry() for i in range(len(stored)))
        assert reopened.size() == len(stored) >= len(acknowledged)
        for receipt in acknowledged:
            index, chain_hex, exchange_id = receipt.split()
            entry = stored[int(index)]
            assert entry.chain_hash.hex() == chain_hex
            assert AuditRecord.from_bytes(entry.record_bytes).exchange_id == exchange_id
        # The log goes on where the crash left it.
        assert reopened.append(record(0)).index == len(stored)


# -- open_store ------------------------------------------------------------------------


def test_open_store_accepts_paths_and_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = tmp_path / "abs.db"
    monkeypatch.chdir(tmp_path)
    for spec, expected in (
        (str(tmp_path / "plain.db"), tmp_path / "plain.db"),
        (f"sqlite:///{absolute}", absolute),  # sqlite:////abs/path
        ("sqlite:///relative.db", tmp_path / "relative.db"),
    ):
        with open_store(spec, ORIGIN) as opened:
            assert isinstance(opened, SqliteAuditStore)
            assert opened.origin == ORIGIN
            opened.append(record(1))
        assert expected.exists()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("postgresql+asyncpg://audit@db/spean", "scheme 'postgresql\\+asyncpg'"),
        ("mysql://root@db/spean", "scheme 'mysql' is not supported"),
        (":memory:", "must be durable"),
        ("", "must be durable"),
        ("sqlite://", "not understood"),
        ("sqlite:///audit.db?mode=memory", "not understood"),
    ],
)
def test_open_store_refuses_what_it_cannot_serve(spec: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        open_store(spec, ORIGIN)
