"""An index of the exchange audit log for statistics, browsing and inclusion proofs.

The audit store keeps records as opaque canonical bytes, in log order, which
is right for the log and wrong for "calls per service in the last day" or
"every refusal of KH/GOV/MOH/nhis since Monday". This index is a derived
SQLite table beside the store (``management.index``): one row per record of
this server's logs (every origin ``<server id>#...``), with the fields the
queries filter on, indexed, and the record's Merkle leaf hash.

Guarantees:
- Derived, never authoritative: it is filled from the store, incrementally
  (each record is decoded once, from the last indexed index on), before
  each query; deleting the file only costs a rebuild. Answers quote the
  store's own records, and an inclusion proof is checked against a
  checkpoint signed in the store, so a damaged index yields a proof that
  fails verification, never a false one.
- Filters are bound parameters, never SQL text: a filter value is a value.
- Records archived out of the store before they were indexed are not in the
  index; their proofs come from the archive segments (`spean audit`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spean.gateway.audit.merkle import leaf_hash
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.store import AuditStore, StoredRecord
from spean.gateway.errors import Unavailable
from spean.gateway.management.statistics import Count, Window

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS traffic (
        origin TEXT NOT NULL, idx INTEGER NOT NULL, exchange_id TEXT NOT NULL,
        side TEXT NOT NULL, client TEXT NOT NULL, service TEXT NOT NULL, method TEXT NOT NULL,
        status TEXT NOT NULL, received_at_ns INTEGER NOT NULL, latency_us INTEGER NOT NULL,
        leaf BLOB NOT NULL, PRIMARY KEY (origin, idx))""",
    "CREATE INDEX IF NOT EXISTS traffic_time ON traffic (received_at_ns)",
    # Covers the statistics query: its window scan never touches the table's rows.
    "CREATE INDEX IF NOT EXISTS traffic_counts"
    " ON traffic (side, received_at_ns, service, client, status)",
    "CREATE INDEX IF NOT EXISTS traffic_service ON traffic (service, received_at_ns)",
    "CREATE INDEX IF NOT EXISTS traffic_client ON traffic (client, received_at_ns)",
    "CREATE INDEX IF NOT EXISTS traffic_exchange ON traffic (exchange_id)",
)
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Filters:
    """What a browse asks for; None means any."""

    exchange_id: str | None = None
    client: str | None = None
    service: str | None = None
    status: str | None = None
    side: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    origin: str
    index: int
    exchange_id: str
    side: str
    client: str
    service: str
    method: str
    status: str
    received_at_ns: int
    latency_us: int


_COLUMNS = (
    "origin, idx, exchange_id, side, client, service, method, status, received_at_ns, latency_us"
)


def _where(filters: Filters) -> tuple[str, list[object]]:
    clauses: list[str] = []
    values: list[object] = []
    for column in ("exchange_id", "client", "service", "status", "side"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            values.append(value)
    if filters.since_ns is not None:
        clauses.append("received_at_ns >= ?")
        values.append(filters.since_ns)
    if filters.until_ns is not None:
        clauses.append("received_at_ns < ?")
        values.append(filters.until_ns)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


class TrafficIndex:
    def __init__(self, path: Path, store: AuditStore, server_id: str) -> None:
        self._store = store
        self._prefix = f"{server_id}#"
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise Unavailable(f"cannot open the traffic index {path}: {exc}") from exc
        self.path = path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _origins(self) -> list[str]:
        return [o for o in self._store.origins() if o.startswith(self._prefix)]

    def catch_up(self) -> int:
        """Index the records appended since the last call; returns how many."""
        added = 0
        with self._lock:
            try:
                for origin in self._origins():
                    (last,) = self._db.execute(
                        "SELECT MAX(idx) FROM traffic WHERE origin = ?", (origin,)
                    ).fetchone()
                    start = 0 if last is None else last + 1
                    added += self._index(origin, self._store.read(start, None, origin=origin))
            except sqlite3.Error as exc:
                raise Unavailable(f"the traffic index {self.path} failed: {exc}") from exc
        return added

    def _index(self, origin: str, rows: Iterator[StoredRecord]) -> int:
        batch: list[tuple[object, ...]] = []
        count = 0
        for stored in rows:
            data = stored.record_bytes
            r = AuditRecord.from_bytes(data)
            batch.append(
                (
                    origin,
                    stored.index,
                    r.exchange_id,
                    r.side.value,
                    r.client,
                    r.service,
                    r.method,
                    r.status,
                    r.received_at_ns,
                    r.latency_us,
                    leaf_hash(data),
                )
            )
            if len(batch) >= _BATCH:
                count += self._insert(batch)
        return count + self._insert(batch)

    def _insert(self, batch: list[tuple[object, ...]]) -> int:
        if not batch:
            return 0
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO traffic VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
        self._db.execute("COMMIT")
        added = len(batch)
        batch.clear()
        return added

    def counts(self, win: Window, side: str | None) -> list[Count]:
        """Calls per bucket, service, client and status within `win`."""
        self.catch_up()
        where, values = _where(Filters(side=side, since_ns=win.since_ns, until_ns=win.until_ns))
        sql = (
            # Fixed column names from `_where`; every value is a bound parameter.
            "SELECT ? + (received_at_ns - ?) / ? * ?, service, client, status, COUNT(*)"  # noqa: S608
            f" FROM traffic{where} GROUP BY 1, 2, 3, 4 ORDER BY 1"
        )
        head = [win.since_ns, win.since_ns, win.bucket_ns, win.bucket_ns]
        with self._lock:
            rows = self._db.execute(sql, [*head, *values]).fetchall()
        return [
            Count(bucket_ns=b, service=s, client=c, status=st, calls=n) for b, s, c, st, n in rows
        ]

    def search(self, filters: Filters, limit: int, before_ns: int | None) -> list[IndexedRecord]:
        """The newest records that match, newest first; `before_ns` pages further back."""
        self.catch_up()
        where, values = _where(filters)
        if before_ns is not None:
            where += (" AND" if where else " WHERE") + " received_at_ns < ?"
            values.append(before_ns)
        sql = (
            f"SELECT {_COLUMNS} FROM traffic{where}"  # noqa: S608 - fixed columns, bound values
            " ORDER BY received_at_ns DESC, idx DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [*values, limit]).fetchall()
        return [IndexedRecord(*row) for row in rows]

    def leaf_hashes(self, origin: str, start: int, stop: int) -> list[bytes]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, leaf FROM traffic WHERE origin = ? AND idx >= ? AND idx < ?"
                " ORDER BY idx",
                (origin, start, stop),
            ).fetchall()
        if len(rows) != stop - start:
            raise Unavailable(
                f"records {start} to {stop - 1} of {origin} are not all in the traffic index"
                " (archived before they were indexed?); prove them from the archive segments"
            )
        return [bytes(leaf) for _, leaf in rows]
