"""PostgreSQL audit store with group commit: the shared backend for scale-out.

Theory of operation. The group-commit writer (gateway/audit/writer.py) hands
this backend whole batches; each is inserted in ONE transaction (with its
checkpoint if one is due) and committed with `synchronous_commit = on`, so
COMMIT returns only once the WAL is flushed on the server. Only then are the
waiting callers released: the same durable-before-answer rule as SQLite.

Invariants:
- One log per origin: every batch takes a transaction-scoped advisory lock
  derived from the origin and checks, under it, that the stored head is the
  one this writer committed; a second writer of the same origin is refused.
  Writers of different origins never contend (different locks, different
  primary-key ranges).
- Records are stored byte for byte as `AuditRecord.to_bytes()` produced them.
- psycopg errors are translated into `AuditError` here, once.

URL: `postgresql+psycopg://user:password@host:port/database?schema=name`
(`postgresql://` and `postgres://` too). `schema` is Spean's own parameter: the
tables live in that schema (created if missing; default `public`); every other
query parameter goes to libpq unchanged.

Tables (in the schema): `audit_records(origin, idx, record, chain,
written_at_ns)`, `audit_checkpoints(origin, size, note, tree_state)`,
`audit_bodies(origin, idx, sealed)`, `audit_cuts(origin, size, chain,
tree_state, segment, archived_at_ns)`, `audit_schema_version(version)` holding
4 (2 and 3 are upgraded in place: they lacked the bodies or cuts table), as in
the SQLite backend;
deploy/ may create them ahead of time with the same statements.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import structlog
from psycopg import sql

from spean.gateway.audit.backends.urls import parse_postgres_url, redact_url
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
_NO_STOP = 2**63 - 1
_CREATE = (
    "CREATE TABLE IF NOT EXISTS {schema}.audit_schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS {schema}.audit_records (
        origin        TEXT   NOT NULL,
        idx           BIGINT NOT NULL,
        record        BYTEA  NOT NULL,
        chain         BYTEA  NOT NULL,
        written_at_ns BIGINT NOT NULL,
        PRIMARY KEY (origin, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.audit_checkpoints (
        origin     TEXT   NOT NULL,
        size       BIGINT NOT NULL,
        note       BYTEA  NOT NULL,
        tree_state BYTEA  NOT NULL,
        PRIMARY KEY (origin, size)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.audit_bodies (
        origin TEXT   NOT NULL,
        idx    BIGINT NOT NULL,
        sealed BYTEA  NOT NULL,
        PRIMARY KEY (origin, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.audit_cuts (
        origin         TEXT   NOT NULL,
        size           BIGINT NOT NULL,
        chain          BYTEA  NOT NULL,
        tree_state     BYTEA  NOT NULL,
        segment        TEXT   NOT NULL,
        archived_at_ns BIGINT NOT NULL,
        PRIMARY KEY (origin, size)
    )""",
)


def _lock_key(origin: str) -> int:
    # A signed 64-bit advisory lock key per origin; collisions only serialise.
    return int.from_bytes(hashlib.sha256(origin.encode()).digest()[:8], "big", signed=True)


class PostgresAuditStore(GroupCommitStore):
    """Durable, hash-chained, checkpointed audit log of one origin in PostgreSQL."""

    def __init__(
        self,
        url: str,
        origin: str,
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.002,
        connect_timeout_s: int = 10,
        checkpoints: CheckpointPolicy | None = None,
    ) -> None:
        super().__init__(
            validate_origin(origin),
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            checkpoints=checkpoints,
        )
        self._conninfo, self._schema = parse_postgres_url(url)
        self._display = redact_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._lock_id = _lock_key(self._origin)
        self._q = {
            name: sql.SQL(text).format(schema=sql.Identifier(self._schema))
            for name, text in {
                "head": "SELECT idx, chain FROM {schema}.audit_records WHERE origin = %s "
                "ORDER BY idx DESC LIMIT 1",
                "insert": "INSERT INTO {schema}.audit_records "
                "(origin, idx, record, chain, written_at_ns) VALUES (%s, %s, %s, %s, %s)",
                "insert_cp": "INSERT INTO {schema}.audit_checkpoints "
                "(origin, size, note, tree_state) VALUES (%s, %s, %s, %s)",
                "latest_cp": "SELECT size, note, tree_state FROM {schema}.audit_checkpoints "
                "WHERE origin = %s ORDER BY size DESC LIMIT 1",
                "cps": "SELECT size, note, tree_state FROM {schema}.audit_checkpoints "
                "WHERE origin = %s AND size >= %s AND size <= %s ORDER BY size",
                "range": "SELECT idx, record, chain FROM {schema}.audit_records "
                "WHERE origin = %s AND idx >= %s AND idx < %s ORDER BY idx",
                "insert_bodies": "INSERT INTO {schema}.audit_bodies (origin, idx, sealed) "
                "VALUES (%s, %s, %s)",
                "bodies": "SELECT idx, sealed FROM {schema}.audit_bodies "
                "WHERE origin = %s AND idx >= %s AND idx < %s ORDER BY idx",
                "from": "SELECT record FROM {schema}.audit_records "
                "WHERE origin = %s AND idx >= %s ORDER BY idx",
                "cut": "SELECT size, chain, tree_state, segment, archived_at_ns "
                "FROM {schema}.audit_cuts WHERE origin = %s ORDER BY size DESC LIMIT 1",
                "insert_cut": "INSERT INTO {schema}.audit_cuts "
                "(origin, size, chain, tree_state, segment, archived_at_ns) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                "origins": "SELECT origin FROM {schema}.audit_records "
                "UNION SELECT origin FROM {schema}.audit_checkpoints "
                "UNION SELECT origin FROM {schema}.audit_cuts ORDER BY origin",
                "chain_at": "SELECT chain FROM {schema}.audit_records "
                "WHERE origin = %s AND idx = %s",
                "cp_at": "SELECT tree_state FROM {schema}.audit_checkpoints "
                "WHERE origin = %s AND size = %s",
                "del_records": "DELETE FROM {schema}.audit_records WHERE origin = %s AND idx < %s",
                "del_bodies": "DELETE FROM {schema}.audit_bodies WHERE origin = %s AND idx < %s",
                "del_cps": "DELETE FROM {schema}.audit_checkpoints WHERE origin = %s AND size < %s",
            }.items()
        }
        self._conn: psycopg.Connection[Any] | None = self._connect()
        try:
            self._start()
        except AuditError:
            self._disconnect()
            raise

    @property
    def _where(self) -> str:
        return f"{self._display} (schema {self._schema})"

    # -- reading ----------------------------------------------------------------

    def read(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> Iterator[StoredRecord]:
        if start < 0 or (stop is not None and stop < start):
            raise InvalidArgument(f"audit read range [{start}, {stop}) is invalid")
        origin = self._origin if origin is None else validate_origin(origin)
        return self._read(start, _NO_STOP if stop is None else min(stop, _NO_STOP), origin)

    def _read(self, start: int, stop: int, origin: str) -> Iterator[StoredRecord]:
        conn = self._open("cannot be opened for reading")
        try:
            with conn.transaction(), conn.cursor(name="spean_audit_read") as cursor:
                cursor.itersize = 5000
                cursor.execute(self._q["range"], (origin, start, stop))
                for index, record, chain in cursor:
                    yield StoredRecord(index, bytes(record), bytes(chain), origin)
        except psycopg.Error as exc:
            raise self._error("cannot be read", exc) from exc
        finally:
            conn.close()

    def read_bodies(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> dict[int, bytes]:
        origin = self._origin if origin is None else validate_origin(origin)
        end = _NO_STOP if stop is None else min(stop, _NO_STOP)
        conn = self._open("cannot be opened for reading")
        try:
            rows = conn.execute(self._q["bodies"], (origin, start, end)).fetchall()
        except psycopg.Error as exc:
            raise self._error("bodies cannot be read", exc) from exc
        finally:
            conn.close()
        return {int(index): bytes(sealed) for index, sealed in rows}

    def checkpoints(
        self, min_size: int = 0, max_size: int | None = None, *, origin: str | None = None
    ) -> list[StoredCheckpoint]:
        origin = self._origin if origin is None else validate_origin(origin)
        stop = _NO_STOP if max_size is None else min(max_size, _NO_STOP)
        conn = self._open("cannot be opened for reading")
        try:
            rows = conn.execute(self._q["cps"], (origin, min_size, stop)).fetchall()
        except psycopg.Error as exc:
            raise self._error("checkpoints cannot be read", exc) from exc
        finally:
            conn.close()
        return [
            StoredCheckpoint(size, bytes(note), bytes(state), origin) for size, note, state in rows
        ]

    def origins(self) -> list[str]:
        conn = self._open("cannot be opened for reading")
        try:
            return [str(origin) for (origin,) in conn.execute(self._q["origins"]).fetchall()]
        except psycopg.Error as exc:
            raise self._error("origins cannot be read", exc) from exc
        finally:
            conn.close()

    def cut(self, *, origin: str | None = None) -> ArchiveCut | None:
        origin = self._origin if origin is None else validate_origin(origin)
        conn = self._open("cannot be opened for reading")
        try:
            return self._cut_of(conn, origin)
        except psycopg.Error as exc:
            raise self._error("archive cuts cannot be read", exc) from exc
        finally:
            conn.close()

    def archive_prefix(self, cut: ArchiveCut) -> int:
        origin = validate_origin(cut.origin)
        conn = self._open("cannot be reached to archive")
        try:
            conn.execute("SET synchronous_commit = on")
            with conn.transaction():
                # The origin's writer lock: its writer waits while the prefix goes.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(origin),))
                previous = self._cut_of(conn, origin)
                chain = conn.execute(self._q["chain_at"], (origin, cut.size - 1)).fetchone()
                state = conn.execute(self._q["cp_at"], (origin, cut.size)).fetchone()
                problem = check_cut(
                    cut,
                    previous,
                    None if chain is None else bytes(chain[0]),
                    None if state is None else bytes(state[0]),
                )
                if problem:
                    raise AuditError(f"audit store {self._where}: {problem}")
                deleted = conn.execute(self._q["del_records"], (origin, cut.size)).rowcount
                conn.execute(self._q["del_bodies"], (origin, cut.size))
                conn.execute(self._q["del_cps"], (origin, cut.size))
                conn.execute(
                    self._q["insert_cut"],
                    (origin, cut.size, cut.chain, cut.tree_state, cut.segment, cut.archived_at_ns),
                )
        except psycopg.Error as exc:
            raise self._error(f"could not archive the records below {cut.size}", exc) from exc
        finally:
            conn.close()
        return int(deleted)

    def _cut_of(self, conn: psycopg.Connection[Any], origin: str) -> ArchiveCut | None:
        row = conn.execute(self._q["cut"], (origin,)).fetchone()
        if row is None:
            return None
        size, chain, state, segment, archived = row
        return ArchiveCut(
            origin, int(size), bytes(chain), bytes(state), str(segment), int(archived)
        )

    # -- the backend steps --------------------------------------------------------

    def _backend_load(self) -> BackendHead:
        conn = self._conn if self._conn is not None else self._reconnect()
        try:
            chain = self._read_head(conn)
            row = conn.execute(self._q["latest_cp"], (self._origin,)).fetchone()
            latest = None
            state = CompactRangeState(0, ())
            if row is not None:
                latest = StoredCheckpoint(row[0], bytes(row[1]), bytes(row[2]), self._origin)
                state = CompactRangeState.from_bytes(latest.tree_state)
            cursor = conn.execute(self._q["from"], (self._origin, state.size))
            tree = tree_after(state, (bytes(data) for (data,) in cursor))
        except psycopg.Error as exc:
            raise self._error("cannot be read", exc) from exc
        except InvalidArgument as exc:
            raise AuditError(
                f"audit store {self._where}: the stored tree state of {self._origin!r} is "
                f"damaged ({exc.message}); run the audit verifier"
            ) from exc
        return BackendHead(chain, latest, tree)

    def _backend_write(
        self, expected: ChainHead, rows: list[Row], checkpoint: StoredCheckpoint | None
    ) -> None:
        try:
            conn = self._conn if self._conn is not None else self._reconnect()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                on_disk = self._read_head(conn)
                if on_disk != expected:
                    raise OriginConflict(self._conflict_message(on_disk.size))
                now = time.time_ns()
                with conn.cursor() as cursor:
                    cursor.executemany(
                        self._q["insert"],
                        [(self._origin, r.index, r.data, r.chain, now) for r in rows],
                    )
                    sealed = [(self._origin, r.index, r.bodies) for r in rows if r.bodies]
                    if sealed:
                        cursor.executemany(self._q["insert_bodies"], sealed)
                if checkpoint is not None:
                    conn.execute(
                        self._q["insert_cp"],
                        (self._origin, checkpoint.size, checkpoint.note, checkpoint.tree_state),
                    )
            # Leaving the block committed; synchronous_commit=on made it durable.
        except psycopg.Error as exc:
            log.error("audit.commit_failed", origin=self._origin, where=self._where, error=str(exc))
            raise self._error(f"could not make {len(rows)} record(s) durable", exc) from exc

    def _backend_reset(self) -> None:
        self._disconnect()

    def _backend_close(self) -> None:
        self._disconnect()

    # -- connections ------------------------------------------------------------

    def _open(self, what: str) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.Error as exc:
            raise self._error(what, exc) from exc

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._open("cannot be reached")
        try:
            conn.execute("SET synchronous_commit = on")
            schema = sql.Identifier(self._schema)
            with conn.transaction():
                # Serialise schema creation between processes starting together.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("spean-schema"),))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                for statement in _CREATE:
                    conn.execute(sql.SQL(statement).format(schema=schema))
                table = sql.SQL("{}.audit_schema_version").format(schema)
                rows = conn.execute(sql.SQL("SELECT version FROM {}").format(table)).fetchall()
                if not rows:
                    conn.execute(
                        sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(table),
                        (SCHEMA_VERSION,),
                    )
                elif rows in ([(2,)], [(3,)]):
                    # Version 2 lacked the bodies table, 3 the cuts table; CREATE added them.
                    conn.execute(
                        sql.SQL("UPDATE {} SET version = %s").format(table), (SCHEMA_VERSION,)
                    )
                elif rows != [(SCHEMA_VERSION,)]:
                    found = ", ".join(str(row[0]) for row in rows)
                    raise AuditError(
                        f"audit store {self._where} has schema version {found}; this version "
                        f"of Spean reads and writes version {SCHEMA_VERSION}"
                    )
        except psycopg.Error as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        except AuditError:
            conn.close()
            raise
        return conn

    def _reconnect(self) -> psycopg.Connection[Any]:
        self._conn = self._connect()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                log.warning("audit.close_failed", origin=self._origin, error=str(exc))

    def _read_head(self, conn: psycopg.Connection[Any]) -> ChainHead:
        row = conn.execute(self._q["head"], (self._origin,)).fetchone()
        if row is None:
            # Every record archived: the log continues from its latest cut.
            cut = self._cut_of(conn, self._origin)
            return GENESIS if cut is None else ChainHead(cut.size, cut.chain)
        index, chain = row
        chain = bytes(chain)
        if len(chain) != HASH_SIZE:
            raise AuditError(
                f"audit store {self._where}: the last record of {self._origin!r} is damaged "
                f"(chain hash of {len(chain)} bytes); run the audit verifier"
            )
        return ChainHead(int(index) + 1, chain)

    def _error(self, what: str, exc: BaseException) -> AuditError:
        if isinstance(exc, AuditError):
            return AuditError(f"{exc.message} ({what})")
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return AuditError(f"audit store {self._where} ({self._origin}) {what}: {detail}")
