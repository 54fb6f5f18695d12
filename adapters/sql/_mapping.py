"""The SQL adapter's mapping file: parsing and shape checks, no import, no database.

`parse_mapping` turns one YAML document into a frozen `ServiceMapping`.
Nothing here touches the descriptors or the database; those checks belong to
`SqlAdapter` (at load and at start). Every error is a `ConfigError` that
starts with the mapping file's path and the dotted place in it, e.g.
``mpwt-vehicles.yaml: methods.GetVehicle.params.plate: ...``.

Engines: SQLite files (embedded default), PostgreSQL through psycopg 3 and
MySQL/MariaDB through PyMySQL. A URL naming another driver of those engines
is refused rather than silently swapped, and so is any other engine: the
adapter could not enforce read-only access and deadlines there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from spean.adapters.sql._paging import PageSpec
from spean.gateway.errors import ConfigError

__all__ = [
    "DatabaseOptions",
    "MethodMapping",
    "PageSpec",
    "ServiceMapping",
    "config_error",
    "explicit_driver",
    "load_mapping",
    "parse_mapping",
]

_SERVICE_KEYS = frozenset(
    {"service", "descriptor", "python_path", "database", "timezone", "methods"}
)
_DATABASE_KEYS = frozenset(
    {"url", "read_only", "password_file", "pool_size", "max_overflow", "pool_timeout"}
)
_METHOD_KEYS = frozenset({"sql", "params", "result", "into", "fields", "page"})
_PAGE_KEYS = frozenset({"key", "size", "token", "next", "default", "max"})
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

# Engine name -> the one driver Spean runs it with (tested in CI against real servers).
_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """Where the data lives and how the adapter's connection pool behaves.

    `url` has its driver made explicit (``postgresql+psycopg``...) and, for a
    server database, the password from `password_file` filled in. It is never
    logged whole (`URL.__repr__` masks the password).
    """

    url: URL
    sqlite_path: Path | None
    read_only: bool = True
    pool_size: int = 5
    max_overflow: int = 5
    pool_timeout: float = 5.0

    @property
    def engine(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
        name = self.url.get_backend_name()
        return "mysql" if name == "mariadb" else name


@dataclass(frozen=True, slots=True)
class MethodMapping:
    """One method's statement and how request and response fields map to it."""

    name: str
    sql: str
    params: Mapping[str, str]
    result: str | None
    into: str | None
    fields: Mapping[str, str]
    page: PageSpec | None = None


@dataclass(frozen=True, slots=True)
class ServiceMapping:
    """A parsed mapping file; paths are resolved, nothing is checked against the database.

    `python_path` lists the folders (absolute, in order) put first on the
    import path before `descriptor` is imported, as for the gRPC and Python
    adapters; whether they exist is checked when the adapter loads.
    """

    source: Path
    service: str
    descriptor: str
    database: DatabaseOptions
    timezone: str
    methods: tuple[MethodMapping, ...]
    python_path: tuple[Path, ...] = ()

    @property
    def url(self) -> URL:
        return self.database.url

    @property
    def read_only(self) -> bool:
        return self.database.read_only

    @property
    def sqlite_path(self) -> Path | None:
        return self.database.sqlite_path


def config_error(source: Path, where: str, what: str) -> ConfigError:
    """The one shape of a mapping error: file, place in it, what is wrong."""
    return ConfigError(f"{source}: {where}: {what}")


_error = config_error


def load_mapping(path: Path) -> ServiceMapping:
    """Read and check the shape of a mapping file (no import, no database)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read SQL mapping {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from exc
    return parse_mapping(data, path)


def parse_mapping(data: object, source: Path) -> ServiceMapping:
    """Check a mapping document's shape; `source` names it in errors and anchors paths."""
    top = _table(data, source, "mapping file", _SERVICE_KEYS)
    service = _text(top, "service", source, "service")
    descriptor = _text(top, "descriptor", source, "descriptor")
    python_path = _folders(top.get("python_path", []), source)
    timezone = top.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone:
        raise _error(source, "timezone", "must be a zone name such as UTC or Asia/Phnom_Penh")
    database = _parse_database(top.get("database"), source)
    methods_data = _table(top.get("methods"), source, "methods", None)
    if not methods_data:
        raise _error(source, "methods", "must list at least one method")
    methods = tuple(_parse_method(name, body, source) for name, body in methods_data.items())
    return ServiceMapping(source, service, descriptor, database, timezone, methods, python_path)


def _folders(value: object, source: Path) -> tuple[Path, ...]:
    """`python_path`: a folder or a list of folders, relative to the mapping file."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) and e.strip() for e in entries):
        raise _error(source, "python_path", "must be a folder or a list of folders")
    folders = (Path(entry.strip()) for entry in entries)
    return tuple(f if f.is_absolute() else (source.parent / f).resolve() for f in folders)


def _table(value: object, source: Path, where: str, keys: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _error(source, where, "must be a mapping of names to values")
    if keys is not None and (unknown := sorted(set(value) - keys)):
        raise _error(
            source, where, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(keys))}"
        )
    return value


def _text(table: Mapping[str, Any], key: str, source: Path, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _error(source, where, "is required and must be a non-empty string")
    return value.strip()


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    source: Path,
    where: str | None = None,
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        place = where or f"database.{key}"
        raise _error(source, place, f"must be a number from {low:g} to {high:g}")
    return float(value)


def _parse_database(value: object, source: Path) -> DatabaseOptions:
    table: dict[str, Any] = {}
    if isinstance(value, dict):
        table = _table(value, source, "database", _DATABASE_KEYS)
        value = table.get("url")
    if not isinstance(value, str) or not value:
        raise _error(source, "database", "must be a SQLAlchemy URL such as sqlite:///registry.db")
    try:
        url = make_url(value)
    except sa_exc.ArgumentError as exc:
        raise _error(source, "database", "is not a SQLAlchemy URL") from exc
    read_only = table.get("read_only", True)
    if not isinstance(read_only, bool):
        raise _error(source, "database.read_only", "must be true or false")
    url = _with_driver(url, source)
    sqlite_path = None
    if url.get_backend_name() == "sqlite":
        sqlite_path = _sqlite_path(url, source)
    elif "password_file" in table:
        url = url.set(password=_password(table["password_file"], source))
    return DatabaseOptions(
        url=url,
        sqlite_path=sqlite_path,
        read_only=read_only,
        pool_size=int(_number(table, "pool_size", 5, 1, 1000, source)),
        max_overflow=int(_number(table, "max_overflow", 5, 0, 1000, source)),
        pool_timeout=_number(table, "pool_timeout", 5.0, 0.1, 600, source),
    )


def _with_driver(url: URL, source: Path) -> URL:
    return explicit_driver(url, f"{source}: database")


def explicit_driver(url: URL, where: str) -> URL:
    """`url` with the one driver Spean runs its engine with (``postgresql+psycopg``...);
    `ConfigError` starting with `where` for another engine or another driver."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    wanted = _DRIVERS.get(backend)
    if wanted is None:
        raise ConfigError(
            f"{where}: {backend} databases are not supported; use SQLite, PostgreSQL or"
            " MySQL/MariaDB"
        )
    if "+" in url.drivername and driver != wanted:
        raise ConfigError(
            f"{where}: driver {driver!r} is not supported for {backend}; use {backend}+{wanted}://"
        )
    return url.set(drivername=f"{backend}+{wanted}")


def _sqlite_path(url: URL, source: Path) -> Path:
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file:") or url.query:
        raise _error(
            source,
            "database",
            "a SQLite database must be a file path without options, e.g. sqlite:///registry.db",
        )
    path = Path(name)
    return path if path.is_absolute() else (source.parent / path).resolve()


def _password(value: object, source: Path) -> str:
    """The database password, kept in its own file (mode 0600) rather than in the mapping."""
    if not isinstance(value, str) or not value.strip():
        raise _error(source, "database.password_file", "must be the path of a file")
    path = Path(value.strip())
    path = path if path.is_absolute() else source.parent / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(source, "database.password_file", f"cannot read {path}: {exc}") from exc


def _parse_method(name: str, body: object, source: Path) -> MethodMapping:
    where = f"methods.{name}"
    table = _table(body, source, where, _METHOD_KEYS)
    sql = _text(table, "sql", source, f"{where}.sql").rstrip("; \t\r\n")
    params = _paths(table.get("params", {}), source, f"{where}.params")
    fields = _paths(table.get("fields", {}), source, f"{where}.fields")
    result = table.get("result")
    if result is not None and result not in ("one", "many"):
        raise _error(source, f"{where}.result", f"must be 'one' or 'many', not {result!r}")
    into = table.get("into")
    if into is not None and (not isinstance(into, str) or not _PATH.match(into)):
        raise _error(source, f"{where}.into", "must name a repeated field of the response")
    page = None if table.get("page") is None else _parse_page(table["page"], source, where)
    return MethodMapping(name, sql, params, result, into, fields, page)


def _parse_page(value: object, source: Path, where: str) -> PageSpec:
    """`page:` of a unary `many` method: the key columns and, optionally, the field names
    and sizes (whether the fields exist is checked against the descriptor at load)."""
    at = f"{where}.page"
    table = _table(value, source, at, _PAGE_KEYS)
    key = table.get("key")
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
        raise _error(source, f"{at}.key", "must name the column(s) the pages are ordered by")
    names = {}
    for part, default in (
        ("size", "page_size"),
        ("token", "page_token"),
        ("next", "next_page_token"),
    ):
        name = table.get(part, default)
        if not isinstance(name, str) or not _PATH.match(name) or "." in name:
            raise _error(source, f"{at}.{part}", "must name a field such as page_size")
        names[part] = name
    most = _number(table, "max", 1000, 1, 100_000, source, f"{at}.max")
    usual = _number(table, "default", min(100, most), 1, most, source, f"{at}.default")
    return PageSpec(tuple(key), names["size"], names["token"], names["next"], int(usual), int(most))


def _paths(value: object, source: Path, where: str) -> Mapping[str, str]:
    table = _table(value, source, where, None)
    for key, path in table.items():
        if not isinstance(path, str) or not _PATH.match(path):
            raise _error(source, f"{where}.{key}", "must be a field path such as plate or owner.id")
    return MappingProxyType(dict(table))
