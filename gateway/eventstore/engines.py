"""Which engine a `pubsub.store` setting names, and opening it.

`open_event_store` is the one place that maps the setting to an engine:
SQLite for a file path (relative to the configuration file) or a
``sqlite:///`` URL, PostgreSQL for a ``postgresql+psycopg://...?schema=``
URL (`eventstore.postgres`, one store shared by every process and replica),
NATS JetStream for a ``nats://HOST:PORT?prefix=NAME`` (or ``tls://``) URL
(`eventstore.nats`). Any other location is refused with `ConfigError` saying
what to use. The drivers of the server engines (psycopg, nats-py) are
imported only when their engine is chosen, with a `ConfigError` naming the
extra to install when missing.
"""

from __future__ import annotations

from pathlib import Path

from spean.gateway.audit.backends.urls import is_postgres, sqlite_path
from spean.gateway.errors import ConfigError
from spean.gateway.eventstore.natsurl import parse_nats_url
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import EventStore

NATS_SCHEMES = ("nats", "tls")


def _scheme(location: str) -> str:
    return location.split("://", 1)[0] if "://" in location else ""


def is_nats(location: str) -> bool:
    """Whether `location` names a NATS JetStream event store."""
    return _scheme(location) in NATS_SCHEMES


def check_location(location: str) -> str:
    """Return `location` if an engine of this version can open it, else `ConfigError`."""
    scheme = _scheme(location)
    if is_nats(location):
        parse_nats_url(location)
        return location
    if is_postgres(location):
        return location
    if scheme and scheme != "sqlite":
        raise ConfigError(
            f"event store URL scheme {scheme!r} is not supported; use a SQLite file path,"
            " sqlite:///path, postgresql+psycopg://...?schema=NAME or"
            " nats://HOST:PORT?prefix=NAME"
        )
    try:
        sqlite_path(location)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("audit store", "event store")) from None
    return location


def open_event_store(location: str, base_dir: Path) -> EventStore:
    """The engine for a `pubsub.store` setting; a relative path is against `base_dir`."""
    check_location(location)
    if is_postgres(location):
        try:
            from spean.gateway.eventstore.postgres import PostgresEventStore
        except ImportError as exc:  # psycopg is the optional `postgres` extra
            raise ConfigError(
                "a PostgreSQL event store needs psycopg: pip install 'spean[postgres]'"
            ) from exc
        return PostgresEventStore(location)
    if is_nats(location):
        try:
            from spean.gateway.eventstore.nats import NatsEventStore
        except ImportError as exc:  # nats-py is the optional `nats` extra
            raise ConfigError(
                "a NATS JetStream event store needs nats-py: pip install 'spean[nats]'"
            ) from exc
        return NatsEventStore(location)
    path = Path(sqlite_path(location))
    return SqliteEventStore(path if path.is_absolute() else base_dir / path)
