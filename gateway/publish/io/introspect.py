"""Reading a table's or view's shape from the database, with SQLAlchemy's inspector.

`read_table(url, name, schema)` connects once, reads the columns (name, type,
NULL-able), the primary key and whether the name is a view (a PostgreSQL
materialized view included), and returns a
`TableShape`; it reads no row and writes nothing (a SQLite file that does
not exist is refused, never created). The SQLAlchemy type of each column is
classified here into a `SqlKind`, the only place that knows SQLAlchemy's type
classes; everything after works on plain values.

Errors are `SpeanError`s an operator can act on: a driver that is not
installed names the extra to install, an unreachable database is
`Unavailable` with the driver's words (the password never shown), an unknown
table lists the tables and views there are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sa_types
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Inspector

from spean.gateway.errors import FailedPrecondition, NotFound, Unavailable
from spean.gateway.publish.typemap import ColumnShape, SqlKind, TableShape

__all__ = ["read_table"]

_EXTRAS = {"postgresql": ("PostgreSQL", "postgres"), "mysql": ("MySQL/MariaDB", "mysql")}


def read_table(url: URL, name: str, schema: str | None = None) -> TableShape:
    """The shape of table or view `name` at `url` (its driver already explicit), in
    `schema` (a PostgreSQL schema, a MySQL database) or the connection's default."""
    engine = _engine(url)
    try:
        with warnings.catch_warnings():
            # A type SQLAlchemy does not know is reported as unmappable below, by name.
            warnings.simplefilter("ignore", sa_exc.SAWarning)
            inspector = inspect(engine)
            return _shape(engine, inspector, name, schema)
    except sa_exc.NoSuchTableError as exc:
        raise NotFound(f"no table or view {name!r} in {url!r}") from exc
    except sa_exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise Unavailable(f"cannot read {name!r} from the database {url!r}: {detail}") from exc
    finally:
        engine.dispose()


def _engine(url: URL) -> Engine:
    backend = "mysql" if url.get_backend_name() == "mariadb" else url.get_backend_name()
    if backend == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            raise FailedPrecondition(f"SQLite database {path} does not exist (the path is a file)")
    try:
        return create_engine(url)
    except ModuleNotFoundError as exc:
        engine, extra = _EXTRAS.get(backend, (backend, backend))
        raise FailedPrecondition(
            f"the {engine} driver ({exc.name}) is not installed: pip install 'spean[{extra}]'"
        ) from exc


def _shape(engine: Engine, inspector: Inspector, name: str, schema: str | None) -> TableShape:
    views = set(inspector.get_view_names(schema=schema))
    if engine.dialect.name == "postgresql":
        views |= set(inspector.get_materialized_view_names(schema=schema))
    tables = set(inspector.get_table_names(schema=schema))
    if name not in tables | views:
        known = ", ".join(sorted(tables | views)[:20]) or "none"
        where = f"schema {schema!r}" if schema else "the database"
        raise NotFound(f"no table or view {name!r} in {where} (it has: {known})")
    preparer = engine.dialect.identifier_preparer
    quote = preparer.quote
    is_view = name in views and name not in tables
    key = (
        ()
        if is_view
        else tuple(inspector.get_pk_constraint(name, schema=schema)["constrained_columns"])
    )
    # A primary key column holds no NULL (SQLite reports its INTEGER PRIMARY KEY as NULL-able).
    columns = tuple(
        _column(
            engine,
            column["name"],
            column["type"],
            bool(column["nullable"]) and column["name"] not in key,
            quote,
        )
        for column in inspector.get_columns(name, schema=schema)
    )
    dialect = engine.dialect.name
    return TableShape(
        name=name,
        quoted=f"{preparer.quote_schema(schema)}.{quote(name)}" if schema else quote(name),
        dialect="mysql" if dialect == "mariadb" else dialect,
        columns=columns,
        primary_key=key,
        is_view=is_view,
    )


def _column(
    engine: Engine,
    name: str,
    kind: sa_types.TypeEngine[Any],
    nullable: bool,
    quote: Callable[[str], str],
) -> ColumnShape:
    sql_kind, bits = _kind(kind)
    return ColumnShape(
        name=name,
        quoted=quote(name),
        sql_type=_type_name(engine, kind),
        kind=sql_kind,
        nullable=nullable,
        bits=bits,
        unsigned=bool(getattr(kind, "unsigned", False)),
        enum_values=tuple(kind.enums) if isinstance(kind, sa_types.Enum) else (),
    )


def _kind(kind: sa_types.TypeEngine[Any]) -> tuple[SqlKind, int]:
    """The column's `SqlKind` and, for an integer, its width in bits.

    Order matters: SQLAlchemy's Boolean, Float and Enum are subclasses of
    Integer-, Numeric- and String-like types on some dialects.
    """
    if isinstance(kind, sa_types.Boolean):
        return SqlKind.BOOLEAN, 0
    if isinstance(kind, mysql.TINYINT) and getattr(kind, "display_width", None) == 1:
        return SqlKind.BOOLEAN, 0  # MySQL's BOOLEAN is TINYINT(1)
    if isinstance(kind, sa_types.Integer):
        return SqlKind.INTEGER, _bits(kind)
    for sql_type, sql_kind in _KINDS:
        if isinstance(kind, sql_type):
            return sql_kind, 0
    return SqlKind.OTHER, 0


_KINDS: tuple[tuple[type[sa_types.TypeEngine[Any]], SqlKind], ...] = (
    (sa_types.Float, SqlKind.FLOAT),
    (sa_types.Numeric, SqlKind.DECIMAL),
    (sa_types.Enum, SqlKind.ENUM),
    (sa_types.JSON, SqlKind.JSON),
    (sa_types.Uuid, SqlKind.UUID),
    (sa_types.DateTime, SqlKind.DATETIME),
    (sa_types.Date, SqlKind.DATE),
    (sa_types.Time, SqlKind.TIME),
    (sa_types.LargeBinary, SqlKind.BYTES),
    (sa_types._Binary, SqlKind.BYTES),
    (mysql.SET, SqlKind.OTHER),
    (sa_types.String, SqlKind.TEXT),
)


def _bits(kind: sa_types.TypeEngine[Any]) -> int:
    if isinstance(kind, sa_types.BigInteger):
        return 64
    if isinstance(kind, mysql.TINYINT):
        return 8
    if isinstance(kind, sa_types.SmallInteger):
        return 16
    if isinstance(kind, mysql.MEDIUMINT):
        return 24
    return 32


def _type_name(engine: Engine, kind: sa_types.TypeEngine[Any]) -> str:
    if isinstance(kind, sa_types.NullType):
        return "a type SQLAlchemy does not know"
    try:
        return str(kind.compile(dialect=engine.dialect))
    except sa_exc.CompileError:  # UnsupportedCompilationError included
        return type(kind).__name__
