"""Replay protection: memory first, then a store shared by every process of a server.

Both shared backends run the same scenarios on real databases: SQLite files
in a temporary folder and a throw-away PostgreSQL schema (`postgres_url`).
"Another process" is a second store object on the same file or database: its
own connections and its own memory, exactly what another worker has.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from spean.gateway.audit.backends.urls import parse_postgres_url
from spean.gateway.errors import Unavailable
from spean.gateway.server.replay_guard import (
    APPLICATION_NAME,
    PostgresReplayStore,
    ReplayCache,
    SharedReplayStore,
    SqliteReplayStore,
    open_shared_store,
)

NOW = 1_700_000_000
EXP = NOW + 60

# --- memory alone ---------------------------------------------------------------------------


def test_second_use_is_a_replay() -> None:
    cache = ReplayCache(leeway_seconds=30)
    assert cache.first_use("a", expires_at=1060, now=1000)
    assert not cache.first_use("a", expires_at=1060, now=1001)
    assert cache.first_use("b", expires_at=1060, now=1001)


def test_ids_are_forgotten_only_after_expiry_plus_leeway() -> None:
    cache = ReplayCache(leeway_seconds=30)
    cache.first_use("a", expires_at=1060, now=1000)
    assert not cache.first_use("a", expires_at=1060, now=1090)  # still within leeway
    cache.first_use("c", expires_at=1200, now=1091)  # purges "a"
    assert len(cache) == 1


# --- both shared backends -------------------------------------------------------------------

Opener = Callable[[], SharedReplayStore]


@pytest.fixture
def postgres_replay_url(postgres_url: str) -> Iterator[str]:
    """A throw-away schema of the test database, dropped afterwards."""
    schema = f"spean_replay_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}?schema={schema}"
    conninfo, _ = parse_postgres_url(postgres_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens another store object (another process's view) of one shared store."""
    if request.param == "sqlite":
        url = str(tmp_path / "audit.db")
    else:
        url = request.getfixturevalue("postgres_replay_url")
    opened: list[SharedReplayStore] = []

    def open_one() -> SharedReplayStore:
        store = open_shared_store(url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_a_key_is_accepted_once_across_processes(opener: Opener) -> None:
    worker0, worker1 = opener(), opener()
    assert worker0.first_use("KH/GOV/MOH|x1", EXP, NOW)
    assert not worker0.first_use("KH/GOV/MOH|x1", EXP, NOW + 1)
    assert not worker1.first_use("KH/GOV/MOH|x1", EXP, NOW + 1)
    # The issuer is part of the key: another member's jti is another exchange.
    assert worker1.first_use("KH/GOV/MOI|x1", EXP, NOW + 1)


def test_a_key_survives_a_restart_and_lapses_after_its_expiry(opener: Opener) -> None:
    before = opener()
    assert before.first_use("KH/GOV/MOH|r1", EXP, NOW)
    before.close()
    after = opener()  # a new process: nothing in memory, the store remembers
    assert not after.first_use("KH/GOV/MOH|r1", EXP, EXP)
    # Expired rows no longer count, whether or not housekeeping removed them.
    assert after.first_use("KH/GOV/MOH|r1", EXP + 500, EXP + 1)
    assert not after.first_use("KH/GOV/MOH|r1", EXP + 500, EXP + 2)


def test_purge_deletes_only_expired_rows(opener: Opener) -> None:
    store = opener()
    store.first_use("old", NOW + 10, NOW)
    store.first_use("live", NOW + 100, NOW)
    assert store.purge(NOW + 50) == 1
    assert store.purge(NOW + 50) == 0
    assert not store.first_use("live", NOW + 100, NOW + 50)


def test_racing_first_uses_of_one_key_have_exactly_one_winner(opener: Opener) -> None:
    # Two "workers", each with its own memory, four threads each, one token.
    caches = [ReplayCache(30, opener()), ReplayCache(30, opener())]
    start = threading.Barrier(8)
    results: list[bool] = []

    def attempt(cache: ReplayCache) -> None:
        start.wait()
        results.append(cache.first_use("KH/GOV/MOH|race", EXP, NOW))

    threads = [threading.Thread(target=attempt, args=(c,)) for c in caches for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 7 + [True]


def test_another_processes_key_is_refused_then_kept_in_memory(opener: Opener) -> None:
    worker0 = ReplayCache(30, opener())
    shared = opener()
    worker1 = ReplayCache(30, shared)
    assert worker0.first_use("KH/GOV/MOH|m1", EXP, NOW)
    assert not worker1.first_use("KH/GOV/MOH|m1", EXP, NOW)
    # The next replay to worker 1 is answered from memory: no I/O, even with the store gone.
    shared.close()
    assert not worker1.first_use("KH/GOV/MOH|m1", EXP, NOW)
    with pytest.raises(Unavailable, match="closed"):
        worker1.first_use("KH/GOV/MOH|m2", EXP, NOW)


def test_the_store_keeps_keys_for_the_leeway_after_expiry(opener: Opener) -> None:
    worker0 = ReplayCache(30, opener())
    worker1 = ReplayCache(30, opener())
    assert worker0.first_use("KH/GOV/MOH|late", EXP, NOW)
    # A token still passes verification up to exp + leeway; the store must still refuse it.
    assert not worker1.first_use("KH/GOV/MOH|late", EXP, EXP + 29)


# --- SQLite specifics -----------------------------------------------------------------------


def test_sqlite_store_sits_beside_the_audit_store_in_wal_mode(tmp_path: Path) -> None:
    for spelling in (str(tmp_path / "audit.db"), f"sqlite:///{tmp_path}/audit.db"):
        store = open_shared_store(spelling)
        try:
            assert isinstance(store, SqliteReplayStore)
            assert store.where == f"{tmp_path}/audit.db.replay"
            store.first_use("k", EXP, NOW)
        finally:
            store.close()
    with sqlite3.connect(tmp_path / "audit.db.replay") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT key, expires_at FROM replay_ids").fetchall() == [("k", EXP)]


def test_sqlite_store_that_cannot_be_written_fails_closed_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "audit.db.replay"
    cache = ReplayCache(30, SqliteReplayStore(path, busy_timeout_s=0.05))
    try:
        # Another process holds the write lock (a stuck worker, a backup gone wrong).
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable, match=r"audit\.db\.replay cannot record an exchange id"):
            cache.first_use("KH/GOV/MOH|f1", EXP, NOW)
        blocker.execute("ROLLBACK")
        blocker.close()
        # Nothing was remembered by the refused check: the token may be tried again.
        assert cache.first_use("KH/GOV/MOH|f1", EXP, NOW)
        assert not cache.first_use("KH/GOV/MOH|f1", EXP, NOW)
    finally:
        cache.close()


def test_sqlite_store_in_a_missing_folder_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot be opened"):
        SqliteReplayStore(tmp_path / "nowhere" / "audit.db.replay")


def test_housekeeping_thread_deletes_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.replay"
    store = SqliteReplayStore(path, purge_every_s=0.05)
    try:
        store.first_use("gone", 1, 0)  # expired in 1970
        store.first_use("kept", 2**40, 0)
        for _ in range(200):  # up to 10 s; a few rounds of 50 ms in practice
            with sqlite3.connect(path) as conn:
                keys = [k for (k,) in conn.execute("SELECT key FROM replay_ids")]
            if keys == ["kept"]:
                break
            time.sleep(0.05)
        assert keys == ["kept"]
    finally:
        store.close()


# --- PostgreSQL specifics -------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_store_reconnects_after_its_connections_are_cut(
    postgres_replay_url: str, postgres_url: str
) -> None:
    store = open_shared_store(postgres_replay_url)
    assert isinstance(store, PostgresReplayStore)
    try:
        _reconnects(store, postgres_url)
    finally:
        store.close()


def _reconnects(store: PostgresReplayStore, postgres_url: str) -> None:
    assert store.first_use("KH/GOV/MOH|p1", EXP, NOW)
    conninfo, _ = parse_postgres_url(postgres_url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchall()
    assert cut, "no replay store connection was open"
    # The dropped idle connection is replaced transparently; the key is still there.
    assert not store.first_use("KH/GOV/MOH|p1", EXP, NOW)
    assert store.first_use("KH/GOV/MOH|p2", EXP, NOW)


def test_postgres_store_that_cannot_be_reached_fails_closed() -> None:
    # Nothing listens on port 1: the provider would not start (and says why).
    with pytest.raises(Unavailable, match="cannot be reached") as info:
        PostgresReplayStore("postgresql://spean:secret@127.0.0.1:1/db", connect_timeout_s=2)
    assert "***" in info.value.message
    assert "secret" not in info.value.message
