"""Which engine a `pubsub.store` setting names, and opening it.

`open_event_store` is the one place that maps the setting to an engine. Today
that is SQLite (a file path, relative to the configuration file, or a
``sqlite:///`` URL); PostgreSQL and NATS JetStream engines are to implement
`EventStore` (`eventstore.store`) and be chosen here by their URL scheme.
Any other location is refused with `ConfigError` saying what to use.
"""

from __future__ import annotations

from pathlib import Path

from spean.gateway.audit.backends.urls import sqlite_path
from spean.gateway.errors import ConfigError
from spean.gateway.eventstore.sqlite import SqliteEventStore
from spean.gateway.eventstore.store import EventStore

PLANNED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "nats")


def check_location(location: str) -> str:
    """Return `location` if an engine of this version can open it, else `ConfigError`."""
    scheme = location.split("://", 1)[0] if "://" in location else ""
    if scheme in PLANNED_SCHEMES:
        raise ConfigError(
            f"event store of scheme {scheme!r}: that engine is not part of this version;"
            " use a SQLite file path (docs/pubsub.md, Storage)"
        )
    if scheme and scheme != "sqlite":
        raise ConfigError(
            f"event store URL scheme {scheme!r} is not supported; use a SQLite file path"
            " or sqlite:///path"
        )
    try:
        sqlite_path(location)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("audit store", "event store")) from None
    return location


def open_event_store(location: str, base_dir: Path) -> EventStore:
    """The engine for a `pubsub.store` setting; a relative path is against `base_dir`."""
    path = Path(sqlite_path(check_location(location)))
    return SqliteEventStore(path if path.is_absolute() else base_dir / path)
