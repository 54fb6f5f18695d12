"""The audit store backends, and `open_store`, which opens one from its URL.

- `sqlite`: the embedded default, a file path or ``sqlite:///`` URL;
- `postgres`: a shared store for many servers, ``postgresql+psycopg://`` URL
  (the ``postgres`` extra);
- `urls`: how store URLs are read (the one place that parses them; the
  replay memory on PostgreSQL and `spean doctor` use it too).

Both backends implement `spean.gateway.audit.store.AuditStore` over the
group-commit writer of `spean.gateway.audit.writer`.
"""

from __future__ import annotations

from spean.gateway.audit.backends.sqlite import SqliteAuditStore
from spean.gateway.audit.backends.urls import is_postgres, sqlite_path
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.writer import CheckpointPolicy


def open_store(
    url_or_path: str, origin: str, *, checkpoints: CheckpointPolicy | None = None
) -> AuditStore:
    """Open the audit store named by a path or URL, as writer `origin`.

    Accepted: a file path (SQLite), `sqlite:///relative/path` and
    `sqlite:////absolute/path` (SQLAlchemy's spelling), and
    `postgresql+psycopg://user:pass@host:port/db[?schema=name&...]` (also
    `postgresql://` and `postgres://`). In-memory databases are refused: an
    audit log that does not survive the process is no audit log. With
    `checkpoints`, the writer signs checkpoints as that policy says.
    """
    if is_postgres(url_or_path):
        # Imported here: psycopg is the postgres extra, needed only for this backend.
        from spean.gateway.audit.backends.postgres import PostgresAuditStore

        return PostgresAuditStore(url_or_path.strip(), origin, checkpoints=checkpoints)
    return SqliteAuditStore(sqlite_path(url_or_path), origin, checkpoints=checkpoints)


__all__ = ["open_store"]
