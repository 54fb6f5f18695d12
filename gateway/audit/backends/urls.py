"""Audit store URLs: which backend, and where (pure).

Accepted: a file path (SQLite), ``sqlite:///relative/path`` and
``sqlite:////absolute/path`` (SQLAlchemy's spelling), and
``postgresql+psycopg://user:pass@host:port/db[?schema=name&...]`` (also
``postgresql://`` and ``postgres://``). A password never appears in an error
message: `redact_url` replaces it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spean.gateway.errors import ConfigError

SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")


def is_postgres(url_or_path: str) -> bool:
    """True when `url_or_path` names a PostgreSQL store."""
    return url_or_path.strip().split("://", 1)[0] in POSTGRES_SCHEMES and "://" in url_or_path


def sqlite_path(url_or_path: str) -> str:
    """The file an SQLite store URL or path names; `ConfigError` for anything else."""
    text = url_or_path.strip()
    if text.startswith(SQLITE_SCHEME):
        rest = text[len(SQLITE_SCHEME) :]
        if not rest.startswith("/") or "?" in rest:
            raise ConfigError(
                f"audit store URL {url_or_path!r} is not understood: use sqlite:///relative/path "
                "or sqlite:////absolute/path, without query parameters"
            )
        path = rest[1:]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"audit store URL scheme {scheme!r} is not supported; use an SQLite file path, "
            "sqlite:///path or postgresql+psycopg://..."
        )
    else:
        path = text
    if path in ("", ":memory:") or path.startswith("file:"):
        raise ConfigError(
            f"audit store {url_or_path!r} does not name a file: the audit log must be durable"
        )
    return path


def parse_postgres_url(url: str) -> tuple[str, str]:
    """Split a Spean PostgreSQL URL into (libpq conninfo URL, schema name)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme
    if scheme not in POSTGRES_SCHEMES:
        raise ConfigError(f"audit store URL {redact_url(url)} is not a PostgreSQL URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "public"
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"audit store schema {schema!r} must be 1-63 lower-case letters, digits or '_'"
        )
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    return conninfo, schema


def redact_url(url: str) -> str:
    """`url` with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
