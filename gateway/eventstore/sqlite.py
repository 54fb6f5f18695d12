"""SQLite event store: the embedded default engine of publish/subscribe.

Theory of operation. One file per security server, in WAL mode with
`synchronous=FULL` (every COMMIT fsyncs the WAL, as the audit store does), so
a method that returned has its change on stable storage. Writes take SQLite's
write lock (`BEGIN IMMEDIATE`, `busy_timeout`), which also serialises the
processes of one server that share the file: the next sequence number of a
topic is read and used under that lock, so two publishers never get the same
one. Within a process one connection is shared under a lock.

On disk:
- `topic_events(topic, seq, event_id, payload, digest, published_at_ms)`,
  primary key (topic, seq), unique (topic, event_id);
- `cursors(topic, subscriber, acked, attempts, next_attempt_ns, last_error,
  dead_letters)`, primary key (topic, subscriber);
- `dead_letters(topic, subscriber, seq, attempts, error, at_ns)`;
- `inbox(position INTEGER PRIMARY KEY, subscriber, topic, seq, event_id,
  payload, digest, published_at_ms, received_at_ns)`, unique (subscriber,
  event_id);
- `seen_tokens(issuer, attempt_id, expires_at)`, primary key (issuer,
  attempt_id): the replay memory, pruned after expiry;
- `app_cursors(subscriber, topic, position)`.

`prune` (retention) deletes in one transaction; it never deletes a topic's
newest event nor the inbox's newest entry, whose numbers the next append and
the next delivery continue from (SQLite reuses the largest rowid once freed).

Every `sqlite3.Error` is translated here, once, into `EventStoreError`
naming the file and what could not be done.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from spean.gateway.errors import AlreadyExists, EventStoreError, InvalidArgument, Unauthenticated
from spean.gateway.events import Cursor, TopicId
from spean.gateway.eventstore.store import (
    CURSOR_COLUMNS,
    EVENT_COLUMNS,
    INBOX_COLUMNS,
    REPLAY_MARGIN_S,
    Appended,
    DeadLetter,
    Delivery,
    EventStore,
    InboxEvent,
    Pruned,
    Received,
    Retention,
    StoredEvent,
    cursor_of_row,
    event_of_row,
    inbox_event_of_row,
)
from spean.gateway.identifiers import SubsystemId

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS topic_events (
        topic TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
        payload BLOB NOT NULL, digest BLOB NOT NULL, published_at_ms INTEGER NOT NULL,
        PRIMARY KEY (topic, seq), UNIQUE (topic, event_id))""",
    """CREATE TABLE IF NOT EXISTS cursors (
        topic TEXT NOT NULL, subscriber TEXT NOT NULL, acked INTEGER NOT NULL,
        attempts INTEGER NOT NULL, next_attempt_ns INTEGER NOT NULL,
        last_error TEXT NOT NULL, dead_letters INTEGER NOT NULL,
        PRIMARY KEY (topic, subscriber))""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        topic TEXT NOT NULL, subscriber TEXT NOT NULL, seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL, error TEXT NOT NULL, at_ns INTEGER NOT NULL,
        PRIMARY KEY (topic, subscriber, seq))""",
    """CREATE TABLE IF NOT EXISTS inbox (
        position INTEGER PRIMARY KEY, subscriber TEXT NOT NULL, topic TEXT NOT NULL,
        seq INTEGER NOT NULL, event_id TEXT NOT NULL, payload BLOB NOT NULL,
        digest BLOB NOT NULL, published_at_ms INTEGER NOT NULL,
        received_at_ns INTEGER NOT NULL, UNIQUE (subscriber, event_id))""",
    "CREATE INDEX IF NOT EXISTS inbox_stream ON inbox (subscriber, topic, position)",
    """CREATE TABLE IF NOT EXISTS seen_tokens (
        issuer TEXT NOT NULL, attempt_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (issuer, attempt_id))""",
    """CREATE TABLE IF NOT EXISTS app_cursors (
        subscriber TEXT NOT NULL, topic TEXT NOT NULL, position INTEGER NOT NULL,
        PRIMARY KEY (subscriber, topic))""",
)


class SqliteEventStore(EventStore):
    """The event store in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._arrived = threading.Condition()
        self._closed = False
        try:
            conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error("cannot be opened (does its directory exist?)", exc) from exc
        self._conn = conn
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise EventStoreError(
                    f"event store {path} cannot use write-ahead logging; put it on a local disk"
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            with self._write() as tx:
                for statement in _SCHEMA:
                    tx.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("cannot be prepared", exc) from exc
        except EventStoreError:
            conn.close()
            raise

    def _error(self, what: str, exc: sqlite3.Error) -> EventStoreError:
        return EventStoreError(f"event store {self._path} {what}: {exc}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction under this process's lock and SQLite's."""
        with self._lock:
            if self._closed:
                raise EventStoreError(f"event store {self._path} is closed")
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A refusal raised inside, or a COMMIT that failed: nothing of it stays.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise EventStoreError(f"event store {self._path} is closed")
            yield self._conn

    # -- provider side ------------------------------------------------------------------

    def append(
        self,
        topic: TopicId,
        event_id: str,
        payload: bytes,
        event_sha256: bytes,
        published_at_ms: int,
        subscribers: Sequence[SubsystemId],
    ) -> Appended:
        name = str(topic)
        try:
            with self._write() as tx:
                found = tx.execute(
                    "SELECT seq, digest, published_at_ms FROM topic_events"
                    " WHERE topic = ? AND event_id = ?",
                    (name, event_id),
                ).fetchone()
                if found is not None:
                    if bytes(found[1]) != event_sha256:
                        raise AlreadyExists(
                            f"event {event_id} is already on topic {topic} with other bytes;"
                            " a new event needs a new event id"
                        )
                    return Appended(found[0], duplicate=True, published_at_ms=found[2])
                (head,) = tx.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM topic_events WHERE topic = ?", (name,)
                ).fetchone()
                tx.executemany(
                    "INSERT OR IGNORE INTO cursors VALUES (?, ?, ?, 0, 0, '', 0)",
                    [(name, str(subscriber), head) for subscriber in subscribers],
                )
                tx.execute(
                    "INSERT INTO topic_events VALUES (?, ?, ?, ?, ?, ?)",
                    (name, head + 1, event_id, payload, event_sha256, published_at_ms),
                )
        except sqlite3.Error as exc:
            raise self._error(f"could not append to topic {topic}", exc) from exc
        return Appended(head + 1, duplicate=False, published_at_ms=published_at_ms)

    def head(self, topic: TopicId) -> int:
        try:
            with self._read() as conn:
                (head,) = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM topic_events WHERE topic = ?", (str(topic),)
                ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(f"could not read the head of {topic}", exc) from exc
        return int(head)

    def event(self, topic: TopicId, sequence: int) -> StoredEvent | None:
        try:
            with self._read() as conn:
                row = conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM topic_events"  # noqa: S608 - constant columns
                    " WHERE topic = ? AND seq = ?",
                    (str(topic), sequence),
                ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(f"could not read event {sequence} of {topic}", exc) from exc
        if row is None:
            return None
        return event_of_row(topic, sequence, row)

    def cursors(self) -> list[Cursor]:
        try:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {CURSOR_COLUMNS} FROM cursors"  # noqa: S608 - constant columns
                    " ORDER BY topic, subscriber"
                ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("could not read the delivery cursors", exc) from exc
        return [cursor_of_row(row) for row in rows]

    def save_cursor(self, cursor: Cursor, dead_letter: DeadLetter | None = None) -> None:
        try:
            with self._write() as tx:
                tx.execute(
                    "UPDATE cursors SET acked = ?, attempts = ?, next_attempt_ns = ?,"
                    " last_error = ?, dead_letters = ? WHERE topic = ? AND subscriber = ?",
                    (
                        cursor.acked,
                        cursor.attempts,
                        cursor.next_attempt_ns,
                        cursor.last_error,
                        cursor.dead_letters,
                        str(cursor.topic),
                        str(cursor.subscriber),
                    ),
                )
                if dead_letter is not None:
                    tx.execute(
                        "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            str(dead_letter.topic),
                            str(dead_letter.subscriber),
                            dead_letter.sequence,
                            dead_letter.attempts,
                            dead_letter.error,
                            dead_letter.at_ns,
                        ),
                    )
        except sqlite3.Error as exc:
            raise self._error("could not save a delivery cursor", exc) from exc

    def dead_letters(self, topic: TopicId, subscriber: SubsystemId) -> list[DeadLetter]:
        try:
            with self._read() as conn:
                rows = conn.execute(
                    "SELECT seq, attempts, error, at_ns FROM dead_letters"
                    " WHERE topic = ? AND subscriber = ? ORDER BY seq",
                    (str(topic), str(subscriber)),
                ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("could not read dead letters", exc) from exc
        return [DeadLetter(topic, subscriber, *row) for row in rows]

    # -- consumer side ------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> Received:
        now = time.time_ns()
        d = delivery
        try:
            with self._write() as tx:
                tx.execute(
                    "DELETE FROM seen_tokens WHERE expires_at < ?",
                    (now // 10**9 - REPLAY_MARGIN_S,),
                )
                seen = tx.execute(
                    "INSERT OR IGNORE INTO seen_tokens VALUES (?, ?, ?)",
                    (str(d.issuer), d.attempt_id, d.token_expires_at),
                ).rowcount
                if seen == 0:
                    raise Unauthenticated(
                        f"event token {d.attempt_id} of {d.issuer} was presented before (replay)"
                    )
                found = tx.execute(
                    "SELECT position, digest FROM inbox WHERE subscriber = ? AND event_id = ?",
                    (str(d.subscriber), d.event_id),
                ).fetchone()
                if found is not None:
                    if bytes(found[1]) != d.event_sha256:
                        raise AlreadyExists(
                            f"event {d.event_id} was delivered to {d.subscriber} before with"
                            " other bytes"
                        )
                    return Received(found[0], duplicate=True)
                cursor = tx.execute(
                    "INSERT INTO inbox (subscriber, topic, seq, event_id, payload, digest,"
                    " published_at_ms, received_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(d.subscriber),
                        str(d.topic),
                        d.sequence,
                        d.event_id,
                        d.payload,
                        d.event_sha256,
                        d.published_at_ms,
                        now,
                    ),
                )
                position = cursor.lastrowid
        except sqlite3.Error as exc:
            raise self._error(f"could not store event {d.event_id}", exc) from exc
        assert position is not None
        with self._arrived:
            self._arrived.notify_all()
        return Received(position, duplicate=False)

    def read_inbox(
        self, subscriber: SubsystemId, topic: TopicId, after: int, limit: int
    ) -> list[InboxEvent]:
        try:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {INBOX_COLUMNS} FROM inbox"  # noqa: S608 - a constant column list
                    " WHERE subscriber = ? AND topic = ? AND position > ?"
                    " ORDER BY position LIMIT ?",
                    (str(subscriber), str(topic), after, limit),
                ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(f"could not read the inbox of {subscriber}", exc) from exc
        return [inbox_event_of_row(row) for row in rows]

    def acked_position(self, subscriber: SubsystemId, topic: TopicId) -> int:
        try:
            with self._read() as conn:
                row = conn.execute(
                    "SELECT position FROM app_cursors WHERE subscriber = ? AND topic = ?",
                    (str(subscriber), str(topic)),
                ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(f"could not read the position of {subscriber}", exc) from exc
        return 0 if row is None else int(row[0])

    def ack(self, subscriber: SubsystemId, topic: TopicId, position: int) -> InboxEvent:
        try:
            with self._write() as tx:
                row = tx.execute(
                    f"SELECT {INBOX_COLUMNS} FROM inbox"  # noqa: S608 - a constant column list
                    " WHERE position = ? AND subscriber = ? AND topic = ?",
                    (position, str(subscriber), str(topic)),
                ).fetchone()
                if row is None:
                    raise InvalidArgument(
                        f"position {position} holds no event of {topic} for {subscriber};"
                        " acknowledge a position Subscribe handed out"
                    )
                tx.execute(
                    "INSERT INTO app_cursors VALUES (?, ?, ?) ON CONFLICT (subscriber, topic)"
                    " DO UPDATE SET position = MAX(position, excluded.position)",
                    (str(subscriber), str(topic), position),
                )
        except sqlite3.Error as exc:
            raise self._error(f"could not acknowledge position {position}", exc) from exc
        return inbox_event_of_row(row)

    def prune(self, retention: Retention, now_ns: int) -> Pruned:
        try:
            with self._write() as tx:
                counts = [tx.execute(sql, args).rowcount for sql, args in _prune(retention, now_ns)]
        except sqlite3.Error as exc:
            raise self._error("could not prune", exc) from exc
        return Pruned(*counts)

    def wait_for_inbox(self, timeout: float) -> None:
        with self._arrived:
            self._arrived.wait(timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
        with self._arrived:
            self._arrived.notify_all()


def _prune(retention: Retention, now_ns: int) -> list[tuple[str, tuple[int, ...]]]:
    """The statements of a prune and their arguments, in `Pruned`'s order."""
    return [
        (
            "DELETE FROM topic_events WHERE published_at_ms < ?"
            " AND seq < (SELECT MAX(seq) FROM topic_events t WHERE t.topic = topic_events.topic)"
            " AND seq <= COALESCE((SELECT MIN(acked) FROM cursors c"
            " WHERE c.topic = topic_events.topic), seq)",
            ((now_ns - int(retention.events_s * 1e9)) // 1_000_000,),
        ),
        (
            "DELETE FROM inbox WHERE received_at_ns < ?"
            " AND position < (SELECT MAX(position) FROM inbox)"
            " AND position <= COALESCE((SELECT position FROM app_cursors a"
            " WHERE a.subscriber = inbox.subscriber AND a.topic = inbox.topic), 0)",
            (now_ns - int(retention.inbox_s * 1e9),),
        ),
        (
            "DELETE FROM dead_letters WHERE at_ns < ?",
            (now_ns - int(retention.dead_letters_s * 1e9),),
        ),
        ("DELETE FROM seen_tokens WHERE expires_at < ?", (now_ns // 10**9 - REPLAY_MARGIN_S,)),
    ]
