"""What differs between the SQL engines: connecting, read-only access, deadlines, errors.

The adapter speaks SQLAlchemy Core and stays the same on every engine; this
module holds the rest, one branch per engine, so adding an engine means
adding branches here and a row to the parametrised test suite.

Invariants
----------
- Read-only is enforced by the database, not by inspecting SQL: a SQLite file
  is opened with ``mode=ro``; a PostgreSQL session starts with
  ``default_transaction_read_only=on``; a MySQL/MariaDB session with
  ``SET SESSION TRANSACTION READ ONLY``.
- Every statement a call runs is bounded by the caller's deadline, enforced
  by the database so that a runaway query stops on the server too: SQLite's
  progress handler aborts it; PostgreSQL gets a transaction-local
  ``statement_timeout``; MariaDB a session ``max_statement_time`` (MySQL:
  ``max_execution_time``), set again on every checkout, so a pooled
  connection never carries an earlier call's limit.
- Pools are sized, wait at most `pool_timeout` for a free connection, and
  ping a connection before handing it out, so connections the server dropped
  (restart, failover, an administrator's kill) are replaced, not served.
- A database driver that is not installed is said once, here
  (`missing_driver`), as the extra to install: the server at start and
  `spean doctor` report the same words, never a raw ModuleNotFoundError.
- `classify` decides, once, whether a database exception is the deadline,
  an outage (the caller may retry later) or a failure of the statement.
- What start-up validation learns from a prepared statement differs too:
  PostgreSQL and MySQL/MariaDB report each result column's type
  (`column_kinds`); SQLite reports none. Two result columns of one name are
  kept as they are by PostgreSQL, refused by MySQL/MariaDB (error 1060) and
  renamed ``name:1`` by SQLite inside the probe's subquery; `twin_columns`
  and `twin_in_error` see through all three.
"""

from __future__ import annotations

import contextlib
import enum
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from spean.adapters.sql._convert import ColumnKind
from spean.adapters.sql._mapping import DatabaseOptions, config_error
from spean.gateway.errors import ConfigError

__all__ = [
    "Failure",
    "Limit",
    "MissingDriver",
    "abandon_unbuffered",
    "bounded",
    "check_database",
    "classify",
    "column_kinds",
    "missing_driver",
    "open_engine",
    "twin_columns",
    "twin_in_error",
]

CONNECT_SECONDS = 5
"""How long opening one connection to a database server may take."""
_PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two deadline checks (a few microseconds)."""
# Engine -> the distribution that brings its driver, and the extra that installs it.
_DRIVER_EXTRAS = {
    "postgresql": ("psycopg", "postgres"),
    "mysql": ("PyMySQL", "mysql"),
    "mariadb": ("PyMySQL", "mysql"),
}
_PG_CANCELED = "57014"  # query_canceled: statement_timeout fired
_MYSQL_TIMEOUTS = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL max_execution_time


class Failure(enum.Enum):
    DEADLINE = "deadline"
    OUTAGE = "outage"
    VALUE = "value"  # a request value the database refuses (SQLSTATE class 22)
    STATEMENT = "statement"


@dataclass(slots=True)
class Limit:
    """The deadline one checkout is bounded by, and whether the database enforced it."""

    deadline: float | None
    fired: bool = field(default=False)

    def __call__(self) -> int:
        """SQLite progress handler: a non-zero answer aborts the running statement."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.fired = True
            return 1
        return 0

    def milliseconds(self) -> int | None:
        if self.deadline is None:
            return None
        # At least 1: zero means "no limit" to both PostgreSQL and MariaDB.
        return max(1, int((self.deadline - time.monotonic()) * 1000))


def open_engine(options: DatabaseOptions, source: Path) -> Engine:
    """An engine with its pool configured; connects lazily (no I/O here but SQLite's stat)."""
    if options.engine == "sqlite":
        path = options.sqlite_path
        assert path is not None  # parse_mapping sets it for every SQLite URL
        if not path.is_file():
            raise config_error(source, "database", f"SQLite file {path} does not exist")
        query = {"uri": "true", "mode": "ro"} if options.read_only else {"uri": "true"}
        url = URL.create("sqlite+pysqlite", database=f"file:{quote(str(path))}", query=query)
        return create_engine(
            url,
            pool_size=options.pool_size,
            max_overflow=options.max_overflow,
            pool_timeout=options.pool_timeout,
        )
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_SECONDS}
    url = options.url
    try:
        # SQLAlchemy imports the driver here; connecting waits for the first checkout.
        url.get_dialect().import_dbapi()
    except ImportError as exc:
        raise missing_driver(options.engine, source, exc) from exc
    if options.engine == "postgresql":
        settings = ["-c application_name=spean"]
        if options.read_only:
            settings.append("-c default_transaction_read_only=on")
        connect_args["options"] = " ".join(settings)
    else:
        if options.read_only:
            connect_args["init_command"] = "SET SESSION TRANSACTION READ ONLY"
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
    return create_engine(
        url,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


class MissingDriver(ConfigError):
    """A database driver that cannot be imported; `fix` is the command that installs it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def missing_driver(engine: str, source: Path, exc: ImportError) -> MissingDriver:
    """The error for a driver that cannot be imported: which one, and the command that installs it.

    Both the server (through `open_engine`) and `spean doctor` see this one.
    """
    distribution, extra = _DRIVER_EXTRAS.get(engine, (exc.name or "its driver", ""))
    fix = f"pip install 'spean[{extra}]'" if extra else f"pip install {distribution}"
    message = config_error(
        source,
        "database",
        f"the {engine} driver ({distribution}) is not installed ({exc}); install it with: {fix}",
    ).message
    return MissingDriver(message, fix)


def check_database(conn: Connection, options: DatabaseOptions, source: Path) -> str:
    """Check the database answers at start; returns how deadlines are enforced there."""
    if options.engine == "sqlite":
        try:
            conn.execute(text("SELECT count(*) FROM sqlite_schema")).scalar_one()
        except sa_exc.DatabaseError as exc:
            raise config_error(
                source,
                "database",
                f"{options.sqlite_path} is not a readable SQLite database ({exc.orig})",
            ) from exc
        return "progress_handler"
    if options.engine == "postgresql":
        conn.execute(text("SELECT 1")).scalar_one()
        return "statement_timeout"
    version = str(conn.execute(text("SELECT version()")).scalar_one())
    return "max_statement_time" if "mariadb" in version.lower() else "max_execution_time"


@contextlib.contextmanager
def bounded(conn: Connection, mechanism: str, limit: Limit) -> Iterator[None]:
    """Bound every statement on `conn` by `limit` until the block ends."""
    if mechanism == "progress_handler":
        if limit.deadline is None:
            yield
            return
        raw = conn.connection.driver_connection
        assert raw is not None  # a checked-out connection always has its driver connection
        raw.set_progress_handler(limit, _PROGRESS_STEPS)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
        return
    ms = limit.milliseconds()
    if mechanism == "statement_timeout":
        if ms is not None:  # transaction-local: gone when the connection returns to the pool
            conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(ms)})
    elif mechanism == "max_statement_time":  # seconds; 0 clears an earlier call's limit
        conn.execute(text("SET SESSION max_statement_time = :s"), {"s": (ms or 0) / 1000})
    else:  # MySQL: milliseconds, SELECT statements only
        conn.execute(text("SET SESSION max_execution_time = :ms"), {"ms": ms or 0})
    yield


def classify(exc: sa_exc.SQLAlchemyError, limit: Limit) -> Failure:
    """Whether `exc` is the deadline, an outage, or the statement's own failure."""
    orig = getattr(exc, "orig", None)
    if limit.fired or getattr(orig, "sqlstate", None) == _PG_CANCELED:
        limit.fired = True
        return Failure.DEADLINE
    args = getattr(orig, "args", ())
    if args and args[0] in _MYSQL_TIMEOUTS:
        limit.fired = True
        return Failure.DEADLINE
    if isinstance(exc, sa_exc.TimeoutError):
        # Pool exhausted: every connection busy for pool_timeout. The caller may
        # retry; if its own deadline passed meanwhile, that is what it sees.
        return Failure.DEADLINE if _past(limit) else Failure.OUTAGE
    if isinstance(exc, sa_exc.DataError):
        return Failure.VALUE  # e.g. a NUL byte in PostgreSQL text, an impossible date
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return Failure.OUTAGE  # cannot connect, I/O error, locked, lost connection
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Failure.OUTAGE
    # The bare DatabaseError class (not a subclass) is what SQLite raises for
    # a corrupt file or one that is not a database: broken, not buggy.
    if type(exc) is sa_exc.DatabaseError:
        return Failure.OUTAGE
    return Failure.STATEMENT


def _past(limit: Limit) -> bool:
    return limit.deadline is not None and time.monotonic() >= limit.deadline


def abandon_unbuffered(result: object) -> None:
    """Let go of a MySQL unbuffered result without reading the rest of it.

    PyMySQL can only finish such a result by reading every remaining row, and
    tries to when the result is garbage collected, even after its connection
    was dropped (then failing on a closed socket). The caller invalidates the
    connection right after, so the rows are never needed.
    """
    pending = getattr(getattr(result, "cursor", None), "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False


# --------------------------------------------------------------------------- result columns

_K = ColumnKind
# PostgreSQL type OIDs (pg_type.oid of the built-in types; stable across versions).
# Unlisted types (json, uuid, arrays, enums, domains...) are not judged at start.
_PG_KINDS = {
    16: _K.BOOLEAN,
    17: _K.BYTES,
    **dict.fromkeys((20, 21, 23, 26), _K.INTEGER),  # int8, int2, int4, oid
    **dict.fromkeys((18, 19, 25, 1042, 1043), _K.TEXT),  # "char", name, text, bpchar, varchar
    700: _K.FLOAT,
    701: _K.FLOAT,
    1700: _K.DECIMAL,
    1082: _K.DATE,
    1114: _K.DATETIME,
    1184: _K.DATETIME,
    **dict.fromkeys((1083, 1266, 1186), _K.TIME),  # time, timetz, interval
}
# MySQL/MariaDB protocol field types (PyMySQL's FIELD_TYPE). TEXT and BLOB share
# codes, so binary strings count as text, which string and bytes fields both take.
_MYSQL_KINDS = {
    **dict.fromkeys((1, 2, 3, 8, 9, 13), _K.INTEGER),  # tiny (BOOLEAN too) ... year
    **dict.fromkeys((0, 246), _K.DECIMAL),
    4: _K.FLOAT,
    5: _K.FLOAT,
    **dict.fromkeys((10, 14), _K.DATE),
    **dict.fromkeys((7, 12), _K.DATETIME),
    11: _K.TIME,
    **dict.fromkeys((15, 245, 247, 248, 249, 250, 251, 252, 253, 254), _K.TEXT),
}
_MYSQL_DUPLICATE_COLUMN = 1060
_SQLITE_TWIN = re.compile(r"(.+):\d+\Z")


def column_kinds(
    engine: str, description: Sequence[Sequence[Any]] | None
) -> list[ColumnKind | None]:
    """The kind of each result column as the driver's `cursor.description` reports it;
    None where the engine does not say (SQLite, a bare NULL on MySQL) or the type is
    one the adapter does not judge."""
    if not description:
        return []
    table = {"postgresql": _PG_KINDS, "mysql": _MYSQL_KINDS}.get(engine, {})
    return [table.get(column[1]) for column in description]


def twin_columns(engine: str, keys: Sequence[str], sql: str) -> str | None:
    """A column name the statement returns twice, or None.

    SQLite names the second of two equal (case-insensitive) names ``name:1``
    inside the probe's subquery; such a key counts as a twin unless the
    statement itself spells it.
    """
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    if engine == "sqlite":
        lowered = {key.lower(): key for key in keys}
        for key in keys:
            match = _SQLITE_TWIN.match(key)
            if match and match[1].lower() in lowered and key not in sql:
                return lowered[match[1].lower()]
    return None


def twin_in_error(exc: sa_exc.DBAPIError) -> str | None:
    """The column name MySQL/MariaDB refused as a duplicate in the probe's subquery."""
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    if len(args) == 2 and args[0] == _MYSQL_DUPLICATE_COLUMN:
        match = re.search(r"'(.*)'", str(args[1]))
        return match[1] if match else "?"
    return None
