"""PostgreSQL event store: one shared store for every process and replica of a server.

Theory of operation. The same tables as the SQLite engine (gateway/eventstore/
sqlite.py), in the schema the URL names (``?schema=``, default ``public``,
created if missing). Every change is one transaction committed with
PostgreSQL's default `synchronous_commit = on`, so a method that returned has
its change flushed to the server's WAL. A topic's next sequence number is read
and used under a transaction-scoped advisory lock on the topic, so writers in
any number of processes never assign one twice; a delivery's replay check and
deduplication rely on primary keys, so two processes receiving the same event
store it once. One connection per store object, shared under a lock; a broken
connection is dropped and the next call reconnects (the call that saw it fails
closed with `EventStoreError`).

Every `psycopg.Error` is translated here, once, into `EventStoreError` naming
the server (never its password) and what could not be done.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from spean.gateway.audit.backends.urls import parse_postgres_url, redact_url
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
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.topic_events (
        topic TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL,
        payload BYTEA NOT NULL, digest BYTEA NOT NULL, published_at_ms BIGINT NOT NULL,
        PRIMARY KEY (topic, seq), UNIQUE (topic, event_id))""",
    """CREATE TABLE IF NOT EXISTS {schema}.cursors (
        topic TEXT NOT NULL, subscriber TEXT NOT NULL, acked BIGINT NOT NULL,
        attempts BIGINT NOT NULL, next_attempt_ns BIGINT NOT NULL,
        last_error TEXT NOT NULL, dead_letters BIGINT NOT NULL,
        PRIMARY KEY (topic, subscriber))""",
    """CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
        topic TEXT NOT NULL, subscriber TEXT NOT NULL, seq BIGINT NOT NULL,
        attempts BIGINT NOT NULL, error TEXT NOT NULL, at_ns BIGINT NOT NULL,
        PRIMARY KEY (topic, subscriber, seq))""",
    """CREATE TABLE IF NOT EXISTS {schema}.inbox (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        subscriber TEXT NOT NULL, topic TEXT NOT NULL, seq BIGINT NOT NULL,
        event_id TEXT NOT NULL, payload BYTEA NOT NULL, digest BYTEA NOT NULL,
        published_at_ms BIGINT NOT NULL, received_at_ns BIGINT NOT NULL,
        UNIQUE (subscriber, event_id))""",
    "CREATE INDEX IF NOT EXISTS inbox_stream ON {schema}.inbox (subscriber, topic, position)",
    """CREATE TABLE IF NOT EXISTS {schema}.seen_tokens (
        issuer TEXT NOT NULL, attempt_id TEXT NOT NULL, expires_at BIGINT NOT NULL,
        PRIMARY KEY (issuer, attempt_id))""",
    """CREATE TABLE IF NOT EXISTS {schema}.app_cursors (
        subscriber TEXT NOT NULL, topic TEXT NOT NULL, position BIGINT NOT NULL,
        PRIMARY KEY (subscriber, topic))""",
)

# Schema creation by several processes at once: one at a time.
_SCHEMA_LOCK = 0x5350_4541_4E45_5653 & 0x7FFF_FFFF_FFFF_FFFF


def _lease_key(schema: str) -> int:
    """The advisory lock key of a schema's delivery lease."""
    digest = hashlib.sha256(f"spean-delivery/{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def _topic_lock(topic: TopicId) -> int:
    """A stable 63-bit advisory lock key for a topic's sequence numbers."""
    digest = hashlib.sha256(f"spean-topic/{topic}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class PostgresEventStore(EventStore):
    """The event store in a PostgreSQL schema (see the module docstring)."""

    def __init__(self, url: str, *, connect_timeout_s: int = 10) -> None:
        self._conninfo, self._schema = parse_postgres_url(url)
        self._display = redact_url(url)
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        # The delivery lease: a session advisory lock held on a connection of its own.
        self._lease: psycopg.Connection[Any] | None = None
        with self._write() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                tx.execute(self._q(statement))

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=sql.Identifier(self._schema))

    def _error(self, what: str, exc: psycopg.Error) -> EventStoreError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return EventStoreError(
            f"event store {self._display} (schema {self._schema}) {what}: {detail}"
        )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise EventStoreError(f"event store {self._display} is closed")
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo, connect_timeout=self._timeout, autocommit=True
            )
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """One committed transaction; on a driver error the connection is dropped."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                self._drop()
                raise self._error("failed", exc) from exc

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        with self._write() as conn:
            yield conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # already broken; the next call reconnects
                self._conn.close()
            self._conn = None

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
        with self._write() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_topic_lock(topic),))
            found = tx.execute(
                self._q(
                    "SELECT seq, digest, published_at_ms FROM {schema}.topic_events"
                    " WHERE topic = %s AND event_id = %s"
                ),
                (name, event_id),
            ).fetchone()
            if found is not None:
                if bytes(found[1]) != event_sha256:
                    raise AlreadyExists(
                        f"event {event_id} is already on topic {topic} with other bytes;"
                        " a new event needs a new event id"
                    )
                return Appended(found[0], duplicate=True, published_at_ms=found[2])
            (head,) = tx.execute(  # type: ignore[misc]
                self._q("SELECT COALESCE(MAX(seq), 0) FROM {schema}.topic_events WHERE topic = %s"),
                (name,),
            ).fetchone()
            with tx.cursor() as cursor:
                cursor.executemany(
                    self._q(
                        "INSERT INTO {schema}.cursors VALUES (%s, %s, %s, 0, 0, '', 0)"
                        " ON CONFLICT DO NOTHING"
                    ),
                    [(name, str(subscriber), head) for subscriber in subscribers],
                )
            tx.execute(
                self._q("INSERT INTO {schema}.topic_events VALUES (%s, %s, %s, %s, %s, %s)"),
                (name, head + 1, event_id, payload, event_sha256, published_at_ms),
            )
        return Appended(head + 1, duplicate=False, published_at_ms=published_at_ms)

    def head(self, topic: TopicId) -> int:
        with self._read() as conn:
            row = conn.execute(
                self._q("SELECT COALESCE(MAX(seq), 0) FROM {schema}.topic_events WHERE topic = %s"),
                (str(topic),),
            ).fetchone()
        return int(row[0]) if row else 0

    def event(self, topic: TopicId, sequence: int) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(
                self._q(
                    f"SELECT {EVENT_COLUMNS} FROM {{schema}}.topic_events"  # noqa: S608 - constant
                    " WHERE topic = %s AND seq = %s"
                ),
                (str(topic), sequence),
            ).fetchone()
        if row is None:
            return None
        return event_of_row(topic, sequence, row)

    def cursors(self) -> list[Cursor]:
        with self._read() as conn:
            rows = conn.execute(
                self._q(
                    f"SELECT {CURSOR_COLUMNS} FROM {{schema}}.cursors"  # noqa: S608 - constant
                    " ORDER BY topic, subscriber"
                )
            ).fetchall()
        return [cursor_of_row(row) for row in rows]

    def save_cursor(self, cursor: Cursor, dead_letter: DeadLetter | None = None) -> None:
        with self._write() as tx:
            tx.execute(
                self._q(
                    "UPDATE {schema}.cursors SET acked = %s, attempts = %s, next_attempt_ns = %s,"
                    " last_error = %s, dead_letters = %s WHERE topic = %s AND subscriber = %s"
                ),
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
                    self._q(
                        "INSERT INTO {schema}.dead_letters VALUES (%s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (topic, subscriber, seq) DO UPDATE SET"
                        " attempts = excluded.attempts, error = excluded.error,"
                        " at_ns = excluded.at_ns"
                    ),
                    (
                        str(dead_letter.topic),
                        str(dead_letter.subscriber),
                        dead_letter.sequence,
                        dead_letter.attempts,
                        dead_letter.error,
                        dead_letter.at_ns,
                    ),
                )

    def dead_letters(self, topic: TopicId, subscriber: SubsystemId) -> list[DeadLetter]:
        with self._read() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT seq, attempts, error, at_ns FROM {schema}.dead_letters"
                    " WHERE topic = %s AND subscriber = %s ORDER BY seq"
                ),
                (str(topic), str(subscriber)),
            ).fetchall()
        return [DeadLetter(topic, subscriber, *row) for row in rows]

    def leads_delivery(self) -> bool:
        """Hold (or take) the schema's delivery lease: one process delivers at a time.

        The lease is a session-level advisory lock on a connection kept for it;
        when its holder dies, PostgreSQL ends the session and another process
        takes the lease at its next round.
        """
        with self._lock:
            if self._closed:
                return False
            try:
                if self._lease is not None and not self._lease.closed:
                    self._lease.execute("SELECT 1")  # still ours while the session lives
                    return True
                lease = psycopg.connect(
                    self._conninfo, connect_timeout=self._timeout, autocommit=True
                )
                row = lease.execute(
                    "SELECT pg_try_advisory_lock(%s)", (_lease_key(self._schema),)
                ).fetchone()
                if row is not None and row[0]:
                    self._lease = lease
                    return True
                lease.close()
                return False
            except psycopg.Error:
                if self._lease is not None:
                    with contextlib.suppress(psycopg.Error):
                        self._lease.close()
                self._lease = None
                return False

    # -- consumer side ------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> Received:
        now = time.time_ns()
        d = delivery
        with self._write() as tx:
            tx.execute(
                self._q("DELETE FROM {schema}.seen_tokens WHERE expires_at < %s"),
                (now // 10**9 - REPLAY_MARGIN_S,),
            )
            seen = tx.execute(
                self._q(
                    "INSERT INTO {schema}.seen_tokens VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                (str(d.issuer), d.attempt_id, d.token_expires_at),
            ).rowcount
            if seen == 0:
                raise Unauthenticated(
                    f"event token {d.attempt_id} of {d.issuer} was presented before (replay)"
                )
            row = tx.execute(
                self._q(
                    "INSERT INTO {schema}.inbox (subscriber, topic, seq, event_id, payload,"
                    " digest, published_at_ms, received_at_ns)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (subscriber, event_id) DO NOTHING RETURNING position"
                ),
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
            ).fetchone()
            if row is not None:
                return Received(int(row[0]), duplicate=False)
            found = tx.execute(
                self._q(
                    "SELECT position, digest FROM {schema}.inbox"
                    " WHERE subscriber = %s AND event_id = %s"
                ),
                (str(d.subscriber), d.event_id),
            ).fetchone()
            assert found is not None  # the conflict that skipped the insert
            if bytes(found[1]) != d.event_sha256:
                raise AlreadyExists(
                    f"event {d.event_id} was delivered to {d.subscriber} before with other bytes"
                )
            return Received(int(found[0]), duplicate=True)

    def read_inbox(
        self, subscriber: SubsystemId, topic: TopicId, after: int, limit: int
    ) -> list[InboxEvent]:
        with self._read() as conn:
            rows = conn.execute(
                self._q(
                    f"SELECT {INBOX_COLUMNS} FROM {{schema}}.inbox"  # noqa: S608 - constant columns
                    " WHERE subscriber = %s AND topic = %s AND position > %s"
                    " ORDER BY position LIMIT %s"
                ),
                (str(subscriber), str(topic), after, limit),
            ).fetchall()
        return [inbox_event_of_row(row) for row in rows]

    def acked_position(self, subscriber: SubsystemId, topic: TopicId) -> int:
        with self._read() as conn:
            row = conn.execute(
                self._q(
                    "SELECT position FROM {schema}.app_cursors WHERE subscriber = %s AND topic = %s"
                ),
                (str(subscriber), str(topic)),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def ack(self, subscriber: SubsystemId, topic: TopicId, position: int) -> InboxEvent:
        with self._write() as tx:
            row = tx.execute(
                self._q(
                    f"SELECT {INBOX_COLUMNS} FROM {{schema}}.inbox"  # noqa: S608 - constant columns
                    " WHERE position = %s AND subscriber = %s AND topic = %s"
                ),
                (position, str(subscriber), str(topic)),
            ).fetchone()
            if row is None:
                raise InvalidArgument(
                    f"position {position} holds no event of {topic} for {subscriber};"
                    " acknowledge a position Subscribe handed out"
                )
            tx.execute(
                self._q(
                    "INSERT INTO {schema}.app_cursors AS c VALUES (%s, %s, %s)"
                    " ON CONFLICT (subscriber, topic)"
                    " DO UPDATE SET position = GREATEST(c.position, excluded.position)"
                ),
                (str(subscriber), str(topic), position),
            )
        return inbox_event_of_row(row)

    def prune(self, retention: Retention, now_ns: int) -> Pruned:
        statements = (
            (
                "DELETE FROM {schema}.topic_events e WHERE published_at_ms < %s"
                " AND seq < (SELECT MAX(seq) FROM {schema}.topic_events t WHERE t.topic = e.topic)"
                " AND seq <= COALESCE((SELECT MIN(acked) FROM {schema}.cursors c"
                " WHERE c.topic = e.topic), seq)",
                (now_ns - int(retention.events_s * 1e9)) // 1_000_000,
            ),
            (
                "DELETE FROM {schema}.inbox i WHERE received_at_ns < %s"
                " AND position <= COALESCE((SELECT position FROM {schema}.app_cursors a"
                " WHERE a.subscriber = i.subscriber AND a.topic = i.topic), 0)",
                now_ns - int(retention.inbox_s * 1e9),
            ),
            (
                "DELETE FROM {schema}.dead_letters WHERE at_ns < %s",
                now_ns - int(retention.dead_letters_s * 1e9),
            ),
            (
                "DELETE FROM {schema}.seen_tokens WHERE expires_at < %s",
                now_ns // 10**9 - REPLAY_MARGIN_S,
            ),
        )
        with self._write() as tx:
            counts = [tx.execute(self._q(text), (arg,)).rowcount for text, arg in statements]
        return Pruned(*counts)

    def wait_for_inbox(self, timeout: float) -> None:
        # Deliveries may land in any process of the server: poll, briefly.
        time.sleep(min(timeout, 0.2))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()
            if self._lease is not None:
                with contextlib.suppress(psycopg.Error):
                    self._lease.close()
                self._lease = None
