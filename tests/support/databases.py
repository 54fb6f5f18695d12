"""Throw-away databases on the real engines: SQLite files, PostgreSQL and MariaDB servers.

- `backend_database`: a fresh database for the SQL adapter suite (one per
  test module and engine, ``spean_t_<random>`` on a server), loaded with the
  three demo registries and a `sample` table of every column type, dropped
  afterwards, so tests never see each other's data nor anyone else's on a
  shared server.
- `postgres_database`: a fresh PostgreSQL database (``spean_fault_<random>``)
  that a fault story can take away and bring back (`PostgresDatabase`).
- `postgres_schema`: a schema URL of its own for an audit store, dropped
  afterwards.

The server URLs come from the `postgres_url` / `mariadb_url` fixtures
(tests/conftest.py: skipped when unreachable, mandatory in CI).
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from spean.gateway.audit.backends.urls import parse_postgres_url
from spean.gateway.demo import data as demo_data

SAMPLE = MetaData()
SAMPLE_TABLE = Table(
    "sample",
    SAMPLE,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("plate", String(40)),
    Column("kind", String(16)),
    Column("taxed", Boolean),
    Column("ratio", Float),
    Column("payload", LargeBinary),
    Column("big", BigInteger),
    Column("at", DateTime),
    Column("day", Date),
    Column("owner_id", String(9)),
    Column("note", Numeric(10, 3)),
    Column("small", Integer),
)
SAMPLE_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "plate": "P-1",
        "kind": "Bus",
        "taxed": True,
        "ratio": 0.25,
        "payload": b"\x00\xff",
        "big": 9007199254740993,
        "at": datetime(2024, 6, 1, 8, 30),
        "day": date(2024, 2, 29),
        "owner_id": "o-1",
        "note": Decimal("12.500"),
        "small": 7,
    },
    {"id": 2} | {c.name: None for c in SAMPLE_TABLE.columns if c.name != "id"},
]


@dataclass(frozen=True, slots=True)
class Backend:
    """A loaded database: `url` for mappings, `admin` to inspect or disturb it."""

    name: str
    url: str
    admin: Engine
    database: str


def _load(target: Engine) -> None:
    demo_data.create_moi_database(target)
    demo_data.create_mpwt_database(target)
    demo_data.create_moh_database(target)
    SAMPLE.drop_all(target)
    SAMPLE.create_all(target)
    with target.begin() as conn:
        conn.execute(SAMPLE_TABLE.insert(), SAMPLE_ROWS)


@contextlib.contextmanager
def backend_database(name: str, folder: Path, server_url: str | None) -> Iterator[Backend]:
    """A loaded database on engine `name`: a file in `folder` for SQLite, else on the server."""
    if name == "sqlite":
        path = folder / "registry.db"
        url = f"sqlite:///{path}"
        admin = create_engine(url)
        try:
            _load(admin)
            yield Backend(name, url, admin, str(path))
        finally:
            admin.dispose()
        return
    assert server_url is not None, f"{name} needs a server URL"
    database = f"spean_t_{secrets.token_hex(6)}"
    server = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
    target = make_url(server_url).set(database=database)
    admin = create_engine(target)
    try:
        _load(admin)
        yield Backend(name, target.render_as_string(hide_password=False), admin, database)
    finally:
        admin.dispose()
        drop = "DROP DATABASE {} WITH (FORCE)" if name == "postgres" else "DROP DATABASE {}"
        with server.connect() as conn:
            conn.execute(text(drop.format(database)))
        server.dispose()


@dataclass(frozen=True, slots=True)
class PostgresDatabase:
    """A throw-away PostgreSQL database and the means to take it away and back."""

    url: str  # postgresql+psycopg://... of the database itself
    name: str
    admin_url: str  # the server's maintenance database, never taken away

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Refuse new connections and terminate every open one: the database is down."""
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )

    def start(self) -> None:
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[PostgresDatabase]:
    """A new, empty database on the PostgreSQL server at `server_url`, dropped afterwards."""
    name = f"spean_fault_{secrets.token_hex(5)}"
    database = PostgresDatabase(
        url=make_url(server_url).set(database=name).render_as_string(hide_password=False),
        name=name,
        admin_url=server_url,
    )
    database._admin(f"CREATE DATABASE {name}")
    try:
        yield database
    finally:
        with contextlib.suppress(sa_exc.SQLAlchemyError):  # teardown: best effort
            database._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """`url` with a schema of its own (``?schema=spean_test_<random>``), dropped afterwards."""
    schema = f"spean_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{url}?schema={schema}"
    finally:
        conninfo, _ = parse_postgres_url(url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
