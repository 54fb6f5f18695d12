"""Replay protection: a request token's exchange id is accepted once per security server.

Theory of operation. The key of an exchange is ``issuer + "|" + jti`` (a jti
is chosen by its issuer, so only the pair is unique). A key is remembered
until its token could no longer pass verification anyway: the token's
``exp`` plus the clock-skew leeway (tokens live at most 300 s). Two layers:

1. `ReplayCache`, an in-memory set per process: a replay to the same process
   is refused without any I/O, and every key this process has decided stays
   here until it expires.
2. A `SharedReplayStore` that every process of the security server writes:
   all ``--workers`` of one machine, every replica behind a load balancer, and
   the process that replaces one after a crash or restart. The store decides:
   an insert that conflicts with a live row is a replay, whichever process
   took the original.

   - SQLite, when the audit store is SQLite: a small database beside it
     (``<audit store>.replay``), WAL, one table ``replay_ids(key TEXT PRIMARY
     KEY, expires_at INTEGER)``. One autocommit upsert per check.
   - PostgreSQL, when the audit store is PostgreSQL: the table
     ``replay_ids`` in the audit store's database and schema.

Invariants:
- A key accepted once is refused by every process sharing the store until its
  expiry; concurrent first uses of one key (two workers, two threads) are
  decided by the store's primary key, so exactly one of them wins.
- Fail closed: when the store cannot be written the check raises
  `Unavailable`; the provider refuses the exchange (signed and audited like
  every refusal of an established exchange). Nothing is remembered in memory
  then, so the same token may be tried again once the store is back.
- A row whose expiry has passed no longer counts: the upsert replaces it
  (``ON CONFLICT ... DO UPDATE ... WHERE expires_at < now``), so correctness
  never depends on when the housekeeping thread last deleted expired rows.

Durability, and why these sync modes. A replay window only matters for a
token's lifetime (<= 300 s + skew), and the threat is a token replayed after
a provider process crashed or was restarted, which drops the memory layer.

- SQLite runs ``synchronous = NORMAL`` in WAL mode: COMMIT writes the WAL
  frame with write(2) before it returns, so a committed key survives the
  crash of any process (the page cache belongs to the kernel); it is not
  fsync'd per check. Only an OS crash or power loss can lose the keys
  committed since the WAL was last synced. ``FULL`` would fsync every check,
  serialised across every worker of the machine: bench/replay_guard.py measures
  both side by side (docs/security.md quotes the figures). The residual risk
  (a power cut, then a replay of a token accepted in the last seconds before
  it, within its lifetime) is documented in docs/security.md; the audit log,
  which is fsync'd, still holds the original exchange.
- PostgreSQL runs the insert with ``synchronous_commit = off``: the commit
  returns before its WAL is flushed, which survives any crash of a Spean
  process; the server flushes within a few hundred milliseconds. Moreover the
  exchange's audit record is committed later in the SAME database with
  ``synchronous_commit = on``, and PostgreSQL flushes the WAL in order up to
  that commit: before any answer leaves the provider, the key of its
  exchange is durable too. A flush per check would buy nothing more.

Foreign exceptions (sqlite3, psycopg) are translated into `Unavailable` here,
once. Housekeeping (deleting expired rows every `PURGE_EVERY_S`) runs on a
daemon thread; its failures are logged, never raised: they cost disk, not
safety.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from spean.gateway.errors import Unavailable

if TYPE_CHECKING:
    import psycopg

    from spean.gateway.config import ServerConfig

log = structlog.get_logger("spean.replay")

PURGE_EVERY_S = 30.0
BUSY_TIMEOUT_S = 5.0  # a check waits this long for another process's write lock
SQLITE_SUFFIX = ".replay"
APPLICATION_NAME = "spean-replay"  # PostgreSQL connections, as pg_stat_activity shows them
_SQLITE_SCHEME = "sqlite://"  # as open_store: sqlite:///relative, sqlite:////absolute
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class SharedReplayStore(ABC):
    """Keys seen by any process of a security server; the authority on replays.

    Subclasses implement `_insert`, `_purge` and `_close`; this base runs the
    housekeeping thread.
    """

    def __init__(self, purge_every_s: float) -> None:
        self._purge_every_s = purge_every_s
        self._stopping = threading.Event()
        self._purger: threading.Thread | None = None

    @property
    @abstractmethod
    def where(self) -> str:
        """The store, as an operator would find it (file path, or URL without password)."""

    def first_use(self, key: str, expires_at: int, now: int) -> bool:
        """Record `key` until `expires_at`; False when a live row already holds it.

        Raises `Unavailable` when the store cannot be written (fail closed).
        """
        return self._insert(key, expires_at, now)

    def purge(self, now: int) -> int:
        """Delete the rows expired before `now`; return how many."""
        return self._purge(now)

    def close(self) -> None:
        """Stop housekeeping and close the store; later checks raise `Unavailable`."""
        self._stopping.set()
        if self._purger is not None and self._purger is not threading.current_thread():
            self._purger.join(timeout=10)
        self._close()

    def _start_purging(self) -> None:
        self._purger = threading.Thread(
            target=self._purge_loop, name="spean-replay-purge", daemon=True
        )
        self._purger.start()

    def _purge_loop(self) -> None:
        while not self._stopping.wait(self._purge_every_s):
            try:
                deleted = self._purge(int(time.time()))
            except Unavailable as exc:
                log.warning("replay.purge_failed", store=self.where, error=exc.message)
                continue
            if deleted:
                log.debug("replay.purged", store=self.where, rows=deleted)

    @abstractmethod
    def _insert(self, key: str, expires_at: int, now: int) -> bool: ...

    @abstractmethod
    def _purge(self, now: int) -> int: ...

    @abstractmethod
    def _close(self) -> None: ...


class ReplayCache:
    """Thread-safe replay check: an in-memory set first, then the shared store.

    Without a shared store (unit tests, tools) the memory alone decides, which
    protects one process only.
    """

    def __init__(self, leeway_seconds: int, shared: SharedReplayStore | None = None) -> None:
        self._leeway = leeway_seconds
        self._shared = shared
        self._seen: set[str] = set()
        self._expiries: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def first_use(self, exchange_id: str, expires_at: int, now: int) -> bool:
        """Record `exchange_id`; False when it was already seen (a replay).

        Raises `Unavailable` when the shared store cannot be written.
        """
        with self._lock:
            while self._expiries and self._expiries[0][0] + self._leeway < now:
                _, old = heapq.heappop(self._expiries)
                self._seen.discard(old)
            if exchange_id in self._seen:
                return False
        # The store is consulted outside the lock: checks of different keys
        # proceed in parallel, and two threads racing on one key are decided
        # by the store's primary key.
        fresh = self._shared is None or self._shared.first_use(
            exchange_id, expires_at + self._leeway, now
        )
        with self._lock:
            # The store's answer stands even if a racing thread got here first.
            # Refused keys are remembered too: the next replay to this process costs no I/O.
            if exchange_id not in self._seen:
                self._seen.add(exchange_id)
                heapq.heappush(self._expiries, (expires_at, exchange_id))
        return fresh

    def close(self) -> None:
        """Close the shared store (the provider has stopped serving)."""
        if self._shared is not None:
            self._shared.close()

    def __len__(self) -> int:
        return len(self._seen)


# -- SQLite -----------------------------------------------------------------------------------

_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS replay_ids (
        key        TEXT    PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS replay_ids_expires_at ON replay_ids (expires_at)",
)
_SQLITE_UPSERT = (
    "INSERT INTO replay_ids (key, expires_at) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE replay_ids.expires_at < ?"
)
_SQLITE_PURGE = "DELETE FROM replay_ids WHERE expires_at < ?"


class SqliteReplayStore(SharedReplayStore):
    """Replay keys in an SQLite file shared by the processes of one machine."""

    def __init__(
        self,
        path: str | Path,
        *,
        fsync_each_check: bool = False,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        purge_every_s: float = PURGE_EVERY_S,
    ) -> None:
        super().__init__(purge_every_s)
        self._path = str(path)
        self._lock = threading.Lock()  # one connection; SQLite has one writer at a time anyway
        self._conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=busy_timeout_s,
                isolation_level=None,  # autocommit: each upsert is its own transaction
                check_same_thread=False,  # shared by the serving threads, under self._lock
            )
        except sqlite3.Error as exc:
            raise self._error("cannot be opened (does its directory exist?)", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise Unavailable(
                    f"replay store {self._path} cannot use write-ahead logging (journal mode "
                    f"stays {mode!r}); put it on a local file system"
                )
            # See the module docstring: NORMAL survives process crashes; FULL only for the bench.
            conn.execute(f"PRAGMA synchronous = {'FULL' if fsync_each_check else 'NORMAL'}")
            for statement in _SQLITE_SCHEMA:
                conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        except Unavailable:
            conn.close()
            raise
        self._conn = conn
        self._start_purging()

    @property
    def where(self) -> str:
        return self._path

    def _insert(self, key: str, expires_at: int, now: int) -> bool:
        with self._lock:
            conn = self._require_open()
            try:
                return conn.execute(_SQLITE_UPSERT, (key, expires_at, now)).rowcount == 1
            except sqlite3.Error as exc:
                raise self._error("cannot record an exchange id", exc) from exc

    def _purge(self, now: int) -> int:
        with self._lock:
            conn = self._require_open()
            try:
                return conn.execute(_SQLITE_PURGE, (now,)).rowcount
            except sqlite3.Error as exc:
                raise self._error("cannot delete expired exchange ids", exc) from exc

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    log.warning("replay.close_failed", store=self._path, error=str(exc))

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise Unavailable(f"replay store {self._path} is closed")
        return self._conn

    def _error(self, what: str, exc: sqlite3.Error) -> Unavailable:
        return Unavailable(
            f"replay store {self._path} {what}: {exc}; exchanges are refused until it can be"
            " written (check the disk and the file's permissions)"
        )


# -- PostgreSQL -------------------------------------------------------------------------------

_PG_CREATE = (
    """CREATE TABLE IF NOT EXISTS {schema}.replay_ids (
        key        TEXT   PRIMARY KEY,
        expires_at BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS replay_ids_expires_at ON {schema}.replay_ids (expires_at)",
)
_PG_UPSERT = (
    "INSERT INTO {schema}.replay_ids AS r (key, expires_at) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE r.expires_at < %s"
)
_PG_PURGE = "DELETE FROM {schema}.replay_ids WHERE expires_at < %s"
# Serialises CREATE TABLE IF NOT EXISTS between replicas starting together
# (concurrent creation of one table fails in PostgreSQL).
_PG_SCHEMA_LOCK = 0x5370_6561_6E52_706C  # "SpeanRpl"


class PostgresReplayStore(SharedReplayStore):
    """Replay keys in a table of the audit store's PostgreSQL database.

    A small stack of idle connections lets checks from many threads run in
    parallel; a connection that failed is dropped, and the next check opens
    a new one (the database coming back needs no restart).
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 5000,
        max_idle: int = 8,
        purge_every_s: float = PURGE_EVERY_S,
    ) -> None:
        super().__init__(purge_every_s)
        import psycopg  # the postgres extra; only a PostgreSQL audit store needs it
        from psycopg import sql

        from spean.gateway.audit.backends.urls import parse_postgres_url, redact_url

        self._conninfo, schema = parse_postgres_url(url)
        self._display = f"{redact_url(url)} (schema {schema}, table replay_ids)"
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        ident = sql.Identifier(schema)
        self._upsert = sql.SQL(_PG_UPSERT).format(schema=ident)
        self._delete = sql.SQL(_PG_PURGE).format(schema=ident)
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
                for statement in _PG_CREATE:
                    conn.execute(sql.SQL(statement).format(schema=ident))
        except psycopg.Error as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        self._release(conn)
        self._start_purging()

    @property
    def where(self) -> str:
        return self._display

    def _insert(self, key: str, expires_at: int, now: int) -> bool:
        return self._run(self._upsert, (key, expires_at, now), "cannot record an exchange id") == 1

    def _purge(self, now: int) -> int:
        return self._run(self._delete, (now,), "cannot delete expired exchange ids")

    def _run(self, statement: Any, params: tuple[object, ...], what: str) -> int:
        import psycopg

        conn, pooled = self._acquire()
        try:
            rowcount = conn.execute(statement, params).rowcount
        except psycopg.OperationalError as exc:
            conn.close()  # broken: never hand it out again
            if not pooled:
                raise self._error(what, exc) from exc
            # An idle connection the server dropped (restart, failover, idle
            # timeout): one more try on a new one. Had the first attempt
            # committed, the retry conflicts and the exchange is refused, the
            # safe side.
            conn = self._connect()
            try:
                rowcount = conn.execute(statement, params).rowcount
            except psycopg.Error as again:
                conn.close()
                raise self._error(what, again) from again
        except psycopg.Error as exc:
            conn.close()
            raise self._error(what, exc) from exc
        self._release(conn)
        return rowcount

    def _acquire(self) -> tuple[psycopg.Connection[Any], bool]:
        """A connection, and whether it was idle in the pool (and may have gone stale)."""
        with self._idle_lock:
            if self._closed:
                raise Unavailable(f"replay store {self._display} is closed")
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        with self._idle_lock:
            if not self._closed and len(self._idle) < self._max_idle and not conn.closed:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout_s,
                application_name=APPLICATION_NAME,
            )
        except psycopg.Error as exc:
            raise self._error("cannot be reached", exc) from exc
        try:
            # See the module docstring for why no flush per check.
            conn.execute("SET synchronous_commit = off")
            conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        except psycopg.Error as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        return conn

    def _close(self) -> None:
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _error(self, what: str, exc: BaseException) -> Unavailable:
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        return Unavailable(
            f"replay store {self._display} {what}: {detail}; exchanges are refused until it"
            " can be written"
        )


# -- choosing the store -----------------------------------------------------------------------


def open_shared_store(audit_store: str) -> SharedReplayStore:
    """The shared replay store that goes with an audit store (a resolved path or URL).

    SQLite audit store (a path or ``sqlite:///`` URL): ``<path>.replay`` beside
    it. PostgreSQL audit store: the ``replay_ids`` table in its database and
    schema. Raises `Unavailable` when the store cannot be opened.
    """
    text = audit_store.strip()
    if text.startswith(_SQLITE_SCHEME):
        text = text[len(_SQLITE_SCHEME) + 1 :]
    elif "://" in text:
        if text.split("://", 1)[0] in _POSTGRES_SCHEMES:
            return PostgresReplayStore(text)
        # open_store has refused any other scheme before a provider starts.
        raise Unavailable(f"no replay store goes with audit store {audit_store!r}")
    return SqliteReplayStore(text + SQLITE_SUFFIX)


def shared_store_for(config: ServerConfig) -> SharedReplayStore:
    """The shared replay store of the security server `config` describes."""
    store = config.audit.store
    if "://" not in store:
        store = str(config.resolve(Path(store)))
    return open_shared_store(store)
