"""The catalogue's search index: SQLite FTS5 (embedded default) or PostgreSQL full text.

`open_index(url)` gives a `SearchIndex` for ``sqlite://`` (in memory),
``sqlite:///path`` or ``postgresql+psycopg://...[?schema=name]``; both
backends index the same `SearchDocument`s and compile the same `terms`
(search.py), and answer `search` with the same `SearchResults`.

Invariants: `replace` swaps the whole index for one catalogue version in one
transaction, so a search sees the old version or the new one, never a mix;
query text reaches the engine only as bound parameters or as tokens made of
letters and digits (`search.terms`), never as SQL; a database failure is
raised once, here, as `Unavailable` naming the backend and never the
password.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from spean.gateway.catalogue.search import (
    SearchDocument,
    SearchQuery,
    SearchResults,
    fts5_match,
    postgres_tsquery,
    terms,
)
from spean.gateway.errors import ConfigError, Unavailable

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
# Above this many matches, results come in catalogue order instead of ranked (see `search`).
RANK_LIMIT = 1000


class SearchIndex(Protocol):
    backend: str

    def replace(self, version: int, documents: Sequence[SearchDocument]) -> None: ...

    def search(self, query: SearchQuery) -> SearchResults: ...

    def version(self) -> int | None: ...

    def close(self) -> None: ...


def open_index(url: str) -> SearchIndex:
    """The index at `url`; its tables are created if missing."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"catalogue index URL {url!r} is not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # One in-memory database shared by every thread, not one per connection; its
            # one connection is used by one thread at a time.
            engine = create_engine(
                parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
            return _SqlIndex(_SqliteDialect(), engine, "sqlite", threading.Lock())
        return _SqlIndex(_SqliteDialect(), create_engine(parsed), "sqlite")
    if parsed.get_backend_name() == "postgresql":
        schema = parsed.query.get("schema")
        if isinstance(schema, tuple) or (schema is not None and not _SCHEMA.match(schema)):
            raise ConfigError(f"catalogue index URL: schema {schema!r} is not a schema name")
        parsed = parsed.difference_update_query(["schema"]).set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True)
        if schema:
            _use_schema(engine, schema)
        return _SqlIndex(_PostgresDialect(), engine, "postgresql")
    raise ConfigError(
        f"catalogue index URL {parsed.render_as_string(hide_password=True)!r}: use sqlite:///path"
        " or postgresql+psycopg://user@host/database[?schema=name]"
    )


def _use_schema(engine: Engine, schema: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET search_path TO "{schema}"')
        dbapi_connection.commit()

    engine.dispose()  # connections made before the listener have the default path


class _Dialect(Protocol):
    def create(self, conn: Connection) -> None: ...

    def insert(self, conn: Connection, documents: Sequence[SearchDocument]) -> None: ...

    def clear(self, conn: Connection) -> None: ...

    def match(self, query: SearchQuery) -> tuple[str, str, str, dict[str, Any]]:
        """(a join, a condition, a rank to order by, their parameters) for the query text."""
        ...


_COMMON = (
    "CREATE TABLE IF NOT EXISTS catalogue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS catalogue_topic"
    " (position INTEGER NOT NULL, topic TEXT NOT NULL, PRIMARY KEY (topic, position))",
)


class _SqliteDialect:
    def create(self, conn: Connection) -> None:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS catalogue_service (position INTEGER PRIMARY KEY,"
                " service_id TEXT NOT NULL UNIQUE, member TEXT NOT NULL, data_class TEXT)"
            )
        )
        # Contentless: the texts are only searched, never read back.
        conn.execute(
            text(
                "CREATE VIRTUAL TABLE IF NOT EXISTS catalogue_text USING fts5(english, khmer,"
                " content='', tokenize='porter unicode61 remove_diacritics 2')"
            )
        )

    def clear(self, conn: Connection) -> None:
        conn.execute(text("DELETE FROM catalogue_service"))
        conn.execute(text("DROP TABLE catalogue_text"))
        self.create(conn)

    def insert(self, conn: Connection, documents: Sequence[SearchDocument]) -> None:
        conn.execute(
            text(
                "INSERT INTO catalogue_service VALUES (:position, :service_id, :member,"
                " :data_class)"
            ),
            [_row(d) for d in documents],
        )
        conn.execute(
            text("INSERT INTO catalogue_text (rowid, english, khmer) VALUES (:p, :e, :k)"),
            [{"p": d.position, "e": d.english, "k": d.khmer} for d in documents],
        )

    def match(self, query: SearchQuery) -> tuple[str, str, str, dict[str, Any]]:
        join = "JOIN catalogue_text ON catalogue_text.rowid = s.position"
        # bm25 is lower for a better match; the English text weighs as much as the Khmer.
        condition, rank = "catalogue_text MATCH :m", "bm25(catalogue_text)"
        return join, condition, rank, {"m": fts5_match(terms(query.text))}


class _PostgresDialect:
    # English and Khmer in separate columns: a Khmer phrase is checked against the Khmer
    # tokens only, so each match reads a small tsvector (the positions a phrase needs).
    def create(self, conn: Connection) -> None:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS catalogue_service (position INTEGER PRIMARY KEY,"
                " service_id TEXT NOT NULL UNIQUE, member TEXT NOT NULL, data_class TEXT,"
                " english tsvector NOT NULL, khmer tsvector NOT NULL)"
            )
        )
        for column in ("english", "khmer"):
            # Without fastupdate: a whole version is inserted at once, and a pending
            # list left behind would be scanned by every search until a vacuum.
            conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS catalogue_service_{column}"
                    f" ON catalogue_service USING gin ({column}) WITH (fastupdate = off)"
                )
            )

    def clear(self, conn: Connection) -> None:
        conn.execute(text("DELETE FROM catalogue_service"))

    def insert(self, conn: Connection, documents: Sequence[SearchDocument]) -> None:
        conn.execute(
            text(
                "INSERT INTO catalogue_service VALUES (:position, :service_id, :member,"
                " :data_class, to_tsvector('english', :english), to_tsvector('simple', :khmer))"
            ),
            [_row(d) | {"english": d.english, "khmer": d.khmer} for d in documents],
        )

    def match(self, query: SearchQuery) -> tuple[str, str, str, dict[str, Any]]:
        parts: dict[str, list[str]] = {"english": [], "khmer": []}
        params: dict[str, Any] = {}
        for n, term in enumerate(terms(query.text)):
            expression = postgres_tsquery(term)
            if not expression:
                continue
            column, config = ("khmer", "simple") if term.khmer else ("english", "english")
            parts[column].append(f"to_tsquery('{config}', :q{n})")
            params[f"q{n}"] = expression
        conditions, ranks = [], []
        for column, queries in parts.items():
            if queries:
                tsquery = f"({' && '.join(queries)})"
                conditions.append(f"s.{column} @@ {tsquery}")
                ranks.append(f"ts_rank(s.{column}, {tsquery})")
        if not conditions:
            return "", "1 = 0", "0", {}
        return "", " AND ".join(conditions), f"-({' + '.join(ranks)})", params


def _row(document: SearchDocument) -> dict[str, Any]:
    return {
        "position": document.position,
        "service_id": document.service_id,
        "member": document.member,
        "data_class": document.data_class,
    }


class _SqlIndex:
    def __init__(
        self,
        dialect: _Dialect,
        engine: Engine,
        backend: str,
        lock: threading.Lock | None = None,
    ) -> None:
        self._dialect = dialect
        self._engine = engine
        self.backend = backend
        self._lock = lock if lock is not None else contextlib.nullcontext()
        with self._connection() as conn:
            for statement in _COMMON:
                conn.execute(text(statement))
            dialect.create(conn)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._lock, self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            where = self._engine.url.render_as_string(hide_password=True)
            detail = getattr(exc, "orig", None) or exc.__class__.__name__
            raise Unavailable(f"the catalogue index at {where} failed: {detail}") from exc

    def replace(self, version: int, documents: Sequence[SearchDocument]) -> None:
        with self._connection() as conn:
            self._dialect.clear(conn)
            conn.execute(text("DELETE FROM catalogue_topic"))
            if documents:
                self._dialect.insert(conn, documents)
                topics = [{"p": d.position, "t": t} for d in documents for t in d.topics]
                if topics:
                    conn.execute(text("INSERT INTO catalogue_topic VALUES (:p, :t)"), topics)
            conn.execute(text("DELETE FROM catalogue_meta WHERE key = 'version'"))
            conn.execute(
                text("INSERT INTO catalogue_meta VALUES ('version', :v)"), {"v": str(version)}
            )

    def version(self) -> int | None:
        with self._connection() as conn:
            row = conn.execute(
                text("SELECT value FROM catalogue_meta WHERE key = 'version'")
            ).first()
        return int(row[0]) if row is not None else None

    def search(self, query: SearchQuery) -> SearchResults:
        conditions: list[str] = ["1 = 1"]
        params: dict[str, Any] = {}
        join, rank = "", "0"  # no text: no rank, catalogue order
        if query.text and terms(query.text):
            join, condition, rank, params = self._dialect.match(query)
            conditions.append(condition)
        if query.member is not None:
            conditions.append("s.member = :member")
            params["member"] = query.member
        if query.data_class is not None:
            conditions.append("s.data_class = :data_class")
            params["data_class"] = query.data_class
        if query.topic is not None:
            conditions.append(
                "s.position IN (SELECT position FROM catalogue_topic WHERE topic = :topic)"
            )
            params["topic"] = query.topic
        # Built only from the fixed fragments above; the query's values are parameters.
        source = f"catalogue_service s {join} WHERE {' AND '.join(conditions)}"
        count = text(f"SELECT count(*) FROM {source}")  # noqa: S608
        with self._connection() as conn:
            total = int(conn.execute(count, params).scalar_one())
            if total <= query.offset:
                return SearchResults(total, ())
            # Ranking costs a score per match; a query matching this many services has a
            # word nearly all of them share, which ranks them all alike: catalogue order.
            ranked = rank != "0"
            order = f"{rank}, s.position" if ranked and total <= RANK_LIMIT else "s.position"
            page = text(
                f"SELECT s.service_id FROM {source}"  # noqa: S608
                f" ORDER BY {order} LIMIT :limit OFFSET :offset"
            )
            rows = conn.execute(page, params | {"limit": query.limit, "offset": query.offset})
            ids = tuple(row[0] for row in rows)
        return SearchResults(total, ids)

    def close(self) -> None:
        self._engine.dispose()
