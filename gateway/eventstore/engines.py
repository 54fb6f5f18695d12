"""Which engine a `pubsub.store` setting names, and opening it.

`open_event_store` is the one place that maps the setting to an engine:
SQLite for a file path (relative to the configuration file) or a
``sqlite:///`` URL, PostgreSQL for a ``postgresql+psycopg://...?schema=``
URL (`eventstore.postgres`, one store shared by every process and replica).
A NATS JetStream engine is to implement `EventStore` (`eventstore.store`) and
be chosen here by its scheme; until then ``nats://`` is refused by name, and
any other location with `ConfigError` saying what to use.
"""

from __future__ import annotations

from pathlib import Path

from spean.gateway.audit.backends.urls import is_postgres, sqlite_path
from spean.gateway.errors import ConfigError
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import EventStore

PLANNED_SCHEMES = ("nats",)


def check_location(location: str) -> str:
    """Return `location` if an engine of this version can open it, else `ConfigError`."""
    scheme = location.split("://", 1)[0] if "://" in location else ""
    if scheme in PLANNED_SCHEMES:
        raise ConfigError(
            f"event store of scheme {scheme!r}: that engine is not part of this version;"
            " use a SQLite file path or a PostgreSQL URL (docs/pubsub.md, Storage)"
        )
    if is_postgres(location):
        return location
    if scheme and scheme != "sqlite":
        raise ConfigError(
            f"event store URL scheme {scheme!r} is not supported; use a SQLite file path,"
            " sqlite:///path or postgresql+psycopg://..."
        )
    try:
        sqlite_path(location)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("audit store", "event store")) from None
    return location


def open_event_store(location: str, base_dir: Path) -> EventStore:
    """The engine for a `pubsub.store` setting; a relative path is against `base_dir`."""
    if is_postgres(check_location(location)):
        try:
            from spean.gateway.eventstore.postgres import PostgresEventStore
        except ImportError as exc:  # psycopg is the optional `postgres` extra
            raise ConfigError(
                "a PostgreSQL event store needs psycopg: pip install 'spean[postgres]'"
            ) from exc
        return PostgresEventStore(location)
    path = Path(sqlite_path(location))
    return SqliteEventStore(path if path.is_absolute() else base_dir / path)
