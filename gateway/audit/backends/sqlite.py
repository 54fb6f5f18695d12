"""SQLite audit store with group commit: the embedded default backend.

Theory of operation. The group-commit writer (gateway/audit/writer.py) hands
this backend whole batches; each is inserted in ONE transaction, with its
checkpoint if one is due; with WAL and `synchronous=FULL` the commit returns
only after the WAL is fsync'd. Only then are the waiting callers released with
their receipts. Many records thus share one fsync, and none is acknowledged
before it is durable.

Invariants:
- Nothing acknowledged is lost: a receipt is handed out only after COMMIT
  returned. A SIGKILL at any point loses at most records whose `append` had
  not returned.
- Fail closed: if a batch cannot be committed, every caller in it gets
  `AuditError`, the connection is dropped, and the next batch reconnects and
  resumes from the chain head actually committed in the file (so a commit
  that failed but reached the disk is not forked over). Later appends retry.
- One chain per origin: several processes may share one file, each with its
  own origin, serialised by SQLite's write lock (`BEGIN IMMEDIATE`,
  `busy_timeout`). Every batch checks, under that lock, that the file's head
  for this origin is the one this writer committed; if another writer has
  appended to the same origin the store refuses every later append, because
  two writers of one log would fork it.
- Records are stored byte for byte as `AuditRecord.to_bytes()` produced them.

Batching needs no tuning for a lone appender (its record is committed at
once); under concurrency the writer may linger up to `max_wait_s` to fill a
batch as large as the previous one (see `_collect`; bench/audit_append.py
measures the effect). The writer thread does not survive fork(): open the
store in the process that uses it.

On disk: table `audit_records(origin, idx, record, chain, written_at_ns)` with
primary key (origin, idx), where `written_at_ns` is the batch's commit time
(records sharing it were committed together); table
`audit_checkpoints(origin, size, note, tree_state)` with primary key (origin,
size); table `audit_bodies(origin, idx, sealed)` with primary key (origin,
idx), the sealed bodies of the records that have them (gateway/audit/bodies.py);
table `audit_cuts(origin, size, chain, tree_state, segment, archived_at_ns)`
with primary key (origin, size), one row per archive run that cut the log
(`ArchiveCut`; the head of a log whose records are all archived is its latest
cut); table `schema_version(version)` holding 4 (versions 1 to 3 lacked the
checkpoints, bodies or cuts tables and are upgraded in place on open).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from spean.gateway.audit.chain import GENESIS, ChainHead
from spean.gateway.audit.merkle import HASH_SIZE, CompactRangeState
from spean.gateway.audit.store import (
    ArchiveCut,
    StoredCheckpoint,
    StoredRecord,
    check_cut,
    validate_origin,
)
from spean.gateway.audit.writer import (
    BackendHead,
    CheckpointPolicy,
    GroupCommitStore,
    OriginConflict,
    Row,
    tree_after,
)
from spean.gateway.errors import AuditError, InvalidArgument

log = structlog.get_logger("spean.audit")

SCHEMA_VERSION = 4

_CREATE_TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS audit_records (
        origin        TEXT    NOT NULL,
        idx           INTEGER NOT NULL,
        record        BLOB    NOT NULL,
        chain         BLOB    NOT NULL,
        written_at_ns INTEGER NOT NULL,
        PRIMARY KEY (origin, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        origin     TEXT    NOT NULL,
        size       INTEGER NOT NULL,
        note       BLOB    NOT NULL,
        tree_state BLOB    NOT NULL,
        PRIMARY KEY (origin, size)
    )""",
    """CREATE TABLE IF NOT EXISTS audit_bodies (
        origin TEXT    NOT NULL,
        idx    INTEGER NOT NULL,
        sealed BLOB    NOT NULL,
        PRIMARY KEY (origin, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS audit_cuts (
        origin         TEXT    NOT NULL,
        size           INTEGER NOT NULL,
        chain          BLOB    NOT NULL,
        tree_state     BLOB    NOT NULL,
        segment        TEXT    NOT NULL,
        archived_at_ns INTEGER NOT NULL,
        PRIMARY KEY (origin, size)
    )""",
)
_SELECT_HEAD = "SELECT idx, chain FROM audit_records WHERE origin = ? ORDER BY idx DESC LIMIT 1"
_INSERT = (
    "INSERT INTO audit_records (origin, idx, record, chain, written_at_ns) VALUES (?, ?, ?, ?, ?)"
)
_SELECT_RANGE = (
    "SELECT idx, record, chain FROM audit_records "
    "WHERE origin = ? AND idx >= ? AND idx < ? ORDER BY idx"
)
_INSERT_BODIES = "INSERT INTO audit_bodies (origin, idx, sealed) VALUES (?, ?, ?)"
_SELECT_BODIES = (
    "SELECT idx, sealed FROM audit_bodies WHERE origin = ? AND idx >= ? AND idx < ? ORDER BY idx"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoints (origin, size, note, tree_state) VALUES (?, ?, ?, ?)"
)
_SELECT_CHECKPOINTS = (
    "SELECT size, note, tree_state FROM audit_checkpoints "
    "WHERE origin = ? AND size >= ? AND size <= ? ORDER BY size"
)
_SELECT_LATEST_CHECKPOINT = (
    "SELECT size, note, tree_state FROM audit_checkpoints "
    "WHERE origin = ? ORDER BY size DESC LIMIT 1"
)
_SELECT_CUT = (
    "SELECT size, chain, tree_state, segment, archived_at_ns FROM audit_cuts "
    "WHERE origin = ? ORDER BY size DESC LIMIT 1"
)
_INSERT_CUT = (
    "INSERT INTO audit_cuts (origin, size, chain, tree_state, segment, archived_at_ns) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_ORIGINS = (
    "SELECT origin FROM audit_records UNION SELECT origin FROM audit_checkpoints "
    "UNION SELECT origin FROM audit_cuts ORDER BY origin"
)
_SELECT_CHAIN_AT = "SELECT chain FROM audit_records WHERE origin = ? AND idx = ?"
_SELECT_CHECKPOINT_AT = "SELECT tree_state FROM audit_checkpoints WHERE origin = ? AND size = ?"
_DELETE_PREFIX = (
    "DELETE FROM audit_records WHERE origin = ? AND idx < ?",
    "DELETE FROM audit_bodies WHERE origin = ? AND idx < ?",
    "DELETE FROM audit_checkpoints WHERE origin = ? AND size < ?",
)
_SELECT_RECORDS_FROM = "SELECT record FROM audit_records WHERE origin = ? AND idx >= ? ORDER BY idx"
_NO_STOP = 2**63 - 1  # largest SQLite INTEGER: "no upper bound"


class SqliteAuditStore(GroupCommitStore):
    """Durable, hash-chained, checkpointed audit log of one origin in an SQLite file.

    `max_batch` bounds the records committed together; `max_wait_s` is how long
    the writer may linger for more records once it sees several appenders
    racing (never for a lone appender, whose record is committed at once);
    `busy_timeout_s` is how long a commit waits for another process holding
    the file's write lock; `checkpoints` makes the writer sign checkpoints.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        origin: str,
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.002,
        busy_timeout_s: float = 5.0,
        checkpoints: CheckpointPolicy | None = None,
    ) -> None:
        super().__init__(
            validate_origin(origin),
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            checkpoints=checkpoints,
        )
        if not 0 < busy_timeout_s <= 600:
            raise InvalidArgument(
                f"audit store busy_timeout_s must be above 0 and at most 600 s, "
                f"got {busy_timeout_s}"
            )
        self._path = os.fspath(path)
        self._busy_timeout_s = busy_timeout_s
        # The writer thread is the only user of the write connection once started.
        self._conn: sqlite3.Connection | None = self._connect()
        try:
            self._start()
        except AuditError:
            self._disconnect()
            raise

    @property
    def path(self) -> str:
        return self._path

    @property
    def _where(self) -> str:
        return self._path

    # -- reading ----------------------------------------------------------------

    def read(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> Iterator[StoredRecord]:
        if start < 0 or (stop is not None and stop < start):
            raise InvalidArgument(f"audit read range [{start}, {stop}) is invalid")
        origin = self._origin if origin is None else validate_origin(origin)
        return self._read(start, _NO_STOP if stop is None else min(stop, _NO_STOP), origin)

    def checkpoints(
        self, min_size: int = 0, max_size: int | None = None, *, origin: str | None = None
    ) -> list[StoredCheckpoint]:
        origin = self._origin if origin is None else validate_origin(origin)
        stop = _NO_STOP if max_size is None else min(max_size, _NO_STOP)
        conn = self._reader()
        try:
            rows = conn.execute(_SELECT_CHECKPOINTS, (origin, min_size, stop)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("checkpoints cannot be read", exc) from exc
        finally:
            conn.close()
        return [
            StoredCheckpoint(size, bytes(note), bytes(state), origin) for size, note, state in rows
        ]

    def read_bodies(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> dict[int, bytes]:
        origin = self._origin if origin is None else validate_origin(origin)
        end = _NO_STOP if stop is None else min(stop, _NO_STOP)
        conn = self._reader()
        try:
            rows = conn.execute(_SELECT_BODIES, (origin, start, end)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("bodies cannot be read", exc) from exc
        finally:
            conn.close()
        return {index: bytes(sealed) for index, sealed in rows}

    def origins(self) -> list[str]:
        conn = self._reader()
        try:
            return [str(origin) for (origin,) in conn.execute(_SELECT_ORIGINS)]
        except sqlite3.Error as exc:
            raise self._error("origins cannot be read", exc) from exc
        finally:
            conn.close()

    def cut(self, *, origin: str | None = None) -> ArchiveCut | None:
        origin = self._origin if origin is None else validate_origin(origin)
        conn = self._reader()
        try:
            return _cut_of(conn, origin)
        except sqlite3.Error as exc:
            raise self._error("archive cuts cannot be read", exc) from exc
        finally:
            conn.close()

    def archive_prefix(self, cut: ArchiveCut) -> int:
        origin = validate_origin(cut.origin)
        try:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("cannot be opened to archive", exc) from exc
        try:
            conn.execute("PRAGMA synchronous = FULL")
            # The write lock: the origin's own writer waits while the prefix goes.
            conn.execute("BEGIN IMMEDIATE")
            try:
                previous = _cut_of(conn, origin)
                chain = conn.execute(_SELECT_CHAIN_AT, (origin, cut.size - 1)).fetchone()
                state = conn.execute(_SELECT_CHECKPOINT_AT, (origin, cut.size)).fetchone()
                problem = check_cut(
                    cut,
                    previous,
                    None if chain is None else bytes(chain[0]),
                    None if state is None else bytes(state[0]),
                )
                if problem:
                    raise AuditError(f"audit store {self._path}: {problem}")
                deleted = conn.execute(_DELETE_PREFIX[0], (origin, cut.size)).rowcount
                for statement in _DELETE_PREFIX[1:]:
                    conn.execute(statement, (origin, cut.size))
                conn.execute(
                    _INSERT_CUT,
                    (origin, cut.size, cut.chain, cut.tree_state, cut.segment, cut.archived_at_ns),
                )
                conn.execute("COMMIT")
            except BaseException:
                self._rollback_quietly(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error(f"could not archive the records below {cut.size}", exc) from exc
        finally:
            conn.close()
        return int(deleted)

    def _reader(self) -> sqlite3.Connection:
        # A connection per read: WAL readers never block the writer, and the
        # generator may be consumed on any thread.
        # mode=rw: a reader must never create an empty database where the log was.
        uri = Path(self._path).absolute().as_uri() + "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout_s)
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise self._error("cannot be opened for reading", exc) from exc
        return conn

    def _read(self, start: int, stop: int, origin: str) -> Iterator[StoredRecord]:
        conn = self._reader()
        try:
            cursor = conn.execute(_SELECT_RANGE, (origin, start, stop))
            for index, record, chain in cursor:
                yield StoredRecord(index, bytes(record), bytes(chain), origin)
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from exc
        finally:
            conn.close()

    # -- the backend steps --------------------------------------------------------

    def _backend_load(self) -> BackendHead:
        conn = self._conn if self._conn is not None else self._reconnect()
        chain = self._read_head(conn)
        try:
            row = conn.execute(_SELECT_LATEST_CHECKPOINT, (self._origin,)).fetchone()
            latest = None
            state = CompactRangeState(0, ())
            if row is not None:
                latest = StoredCheckpoint(row[0], bytes(row[1]), bytes(row[2]), self._origin)
                state = CompactRangeState.from_bytes(latest.tree_state)
            leaves = (
                bytes(data)
                for (data,) in conn.execute(_SELECT_RECORDS_FROM, (self._origin, state.size))
            )
            tree = tree_after(state, leaves)
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from exc
        except InvalidArgument as exc:
            raise AuditError(
                f"audit store {self._path}: the stored tree state of {self._origin!r} is "
                f"damaged ({exc.message}); run the audit verifier"
            ) from exc
        return BackendHead(chain, latest, tree)

    def _backend_write(
        self, expected: ChainHead, rows: list[Row], checkpoint: StoredCheckpoint | None
    ) -> None:
        try:
            conn = self._conn if self._conn is not None else self._reconnect()
            conn.execute("BEGIN IMMEDIATE")  # the file's write lock, held until COMMIT
            try:
                on_disk = self._read_head(conn)
                if on_disk != expected:
                    raise OriginConflict(self._conflict_message(on_disk.size))
                now = time.time_ns()
                conn.executemany(
                    _INSERT, [(self._origin, r.index, r.data, r.chain, now) for r in rows]
                )
                sealed = [(self._origin, r.index, r.bodies) for r in rows if r.bodies]
                if sealed:
                    conn.executemany(_INSERT_BODIES, sealed)
                if checkpoint is not None:
                    conn.execute(
                        _INSERT_CHECKPOINT,
                        (self._origin, checkpoint.size, checkpoint.note, checkpoint.tree_state),
                    )
                conn.execute("COMMIT")  # returns once the WAL is fsync'd (synchronous=FULL)
            except BaseException:
                self._rollback_quietly(conn)
                raise
        except (sqlite3.Error, OSError) as exc:
            log.error("audit.commit_failed", origin=self._origin, path=self._path, error=str(exc))
            raise self._error(f"could not make {len(rows)} record(s) durable", exc) from exc

    def _backend_reset(self) -> None:
        self._disconnect()

    def _backend_close(self) -> None:
        self._disconnect()

    # -- connections ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open the write connection, set durability pragmas, create the schema."""
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # opened here, then used by the writer only
            )
        except sqlite3.Error as exc:
            raise self._error("cannot be opened (does its directory exist?)", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise AuditError(
                    f"audit store {self._path} cannot use write-ahead logging (journal mode "
                    f"stays {mode!r}); put it on a local file system"
                )
            # FULL: every COMMIT fsyncs the WAL, so a returned commit is durable.
            conn.execute("PRAGMA synchronous = FULL")
            self._ensure_schema(conn)
            # SQLite syncs the directory when it creates the WAL, not when it
            # creates the database file itself: make that entry durable too.
            self._sync_directory()
        except (sqlite3.Error, OSError) as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        except AuditError:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # several processes may create it at once
        try:
            for statement in _CREATE_TABLES:
                conn.execute(statement)
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif rows in ([(1,)], [(2,)], [(3,)]):
                # Version 1 had no checkpoints table, 2 no bodies table, 3 no cuts table;
                # CREATE above added them.
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            elif rows != [(SCHEMA_VERSION,)]:
                found = ", ".join(str(row[0]) for row in rows)
                raise AuditError(
                    f"audit store {self._path} has schema version {found}; this version of "
                    f"Spean reads and writes version {SCHEMA_VERSION}"
                )
            conn.execute("COMMIT")
        except BaseException:
            self._rollback_quietly(conn)
            raise

    def _sync_directory(self) -> None:
        fd = os.open(os.path.dirname(os.path.abspath(self._path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_head(self, conn: sqlite3.Connection) -> ChainHead:
        try:
            row = conn.execute(_SELECT_HEAD, (self._origin,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from exc
        if row is None:
            # Every record archived: the log continues from its latest cut.
            try:
                cut = _cut_of(conn, self._origin)
            except sqlite3.Error as exc:
                raise self._error("cannot be read", exc) from exc
            return GENESIS if cut is None else ChainHead(cut.size, cut.chain)
        index, chain = row
        if not isinstance(index, int) or not isinstance(chain, bytes) or len(chain) != HASH_SIZE:
            raise AuditError(
                f"audit store {self._path}: the last record of {self._origin!r} is damaged "
                f"(index {index!r}, chain hash of {len(chain) if isinstance(chain, bytes) else 0}"
                f" bytes); run the audit verifier"
            )
        return ChainHead(index + 1, chain)

    def _reconnect(self) -> sqlite3.Connection:
        """After a failure: a fresh write connection (the writer re-reads the head)."""
        self._conn = self._connect()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                log.warning("audit.close_failed", origin=self._origin, error=str(exc))

    @staticmethod
    def _rollback_quietly(conn: sqlite3.Connection) -> None:
        # The original error is what matters; a failed rollback only means the
        # connection is unusable, and it is dropped anyway.
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _error(self, what: str, exc: BaseException) -> AuditError:
        if isinstance(exc, AuditError):
            return AuditError(f"{exc.message} ({what})")
        return AuditError(f"audit store {self._path} ({self._origin}) {what}: {exc}")


def _cut_of(conn: sqlite3.Connection, origin: str) -> ArchiveCut | None:
    row = conn.execute(_SELECT_CUT, (origin,)).fetchone()
    if row is None:
        return None
    size, chain, state, segment, archived = row
    return ArchiveCut(origin, int(size), bytes(chain), bytes(state), str(segment), int(archived))
