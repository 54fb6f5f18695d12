"""The audit store interface every backend implements (the backends: `audit.backends`).

A store holds the logs of one or more writers. Each writer (`origin`: security
server id + "#" + process or worker name) has its own log, numbered from 0 and
hash-chained (gateway/audit/chain.py); one `AuditStore` object is the single
writer of one origin. Contract for every backend:

- `append` blocks until the record is durable (on stable storage, fsync'd) and
  only then returns its receipt. Any failure raises `AuditError`: the caller
  refuses the exchange (fail closed). A record whose `append` raised may or may
  not be in the log; one whose `append` returned always is, even after a crash.
- Appends from many threads are safe; a backend may group them into one commit
  (group commit) but resolves each caller only after that commit.
- Records are stored exactly as encoded by `AuditRecord.to_bytes()`, never
  re-encoded; indexes of one origin are consecutive from 0 and the stored chain
  hashes verify with `verify_chain`.
- Records are never updated, and deleted only by `archive_prefix`: the oldest
  records of a log, up to a signed checkpoint, once they are safely written to
  an archive segment (gateway/audit/archive.py). The store then keeps the
  `ArchiveCut` (chain hash and tree state at the cut), so the remaining log
  still verifies from there and the writer continues the same chain and tree.
- Sealed bodies, when an append carries them, are committed with their record
  and keyed by its index; they are outside the hash chain and the tree (the
  record's digests are inside).
- After `close()` every `append` raises `AuditError`.
- Signed checkpoints (gateway/audit/checkpoint.py) are stored with the log,
  in the transaction of the batch they cover, with the tree's compact range
  at their size so a writer resumes without rereading the whole log.

Backends: SQLite (gateway/audit/backends/sqlite.py, a file path or sqlite:///
URL) and PostgreSQL (gateway/audit/backends/postgres.py, postgresql+psycopg://
URL); both share the group-commit writer of gateway/audit/writer.py.
`spean.gateway.audit.backends.open_store` opens one from its URL.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from spean.gateway.audit.record import AuditRecord
from spean.gateway.errors import InvalidArgument

# Origins become the first line of signed checkpoints (C2SP checkpoint and
# signed-note formats), which forbid empty names, spaces and "+": printable
# ASCII without space and "+", 1 to 255 characters.
_ORIGIN = re.compile(r"[!-*,-~]{1,255}\Z")


def validate_origin(origin: str) -> str:
    """Return `origin` if it can name a log, else raise `InvalidArgument`."""
    if not isinstance(origin, str) or not _ORIGIN.match(origin):
        raise InvalidArgument(
            f"audit log origin {origin!r} is invalid: it must be 1 to 255 printable ASCII "
            'characters without spaces or "+", e.g. "KH/GOV/MOH/ss1#worker-0"'
        )
    return origin


@dataclass(frozen=True, slots=True)
class AuditReceipt:
    """Proof of a durable append: the record's index and chain hash in its log."""

    index: int
    chain_hash: bytes


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as stored: its index, canonical bytes and chain hash."""

    index: int
    record_bytes: bytes
    chain_hash: bytes
    origin: str

    def chain_entry(self) -> tuple[int, bytes, bytes]:
        """(index, record bytes, chain hash), the shape `verify_chain` takes."""
        return (self.index, self.record_bytes, self.chain_hash)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: its size, the signed note, the tree state.

    `tree_state` is `CompactRangeState.to_bytes()` at `size`: not signed, only
    a shortcut for the writer; a verifier recomputes it from the records.
    """

    size: int
    note: bytes
    tree_state: bytes
    origin: str


@dataclass(frozen=True, slots=True)
class ArchiveCut:
    """Where a log's archived prefix ends: records `[0, size)` are no longer stored.

    `chain` is the chain hash of record `size - 1`, `tree_state` the tree's
    `CompactRangeState.to_bytes()` at `size` (equal to the stored checkpoint's
    at that size, which the store keeps), `segment` names the archive segment
    that holds the last archived records, `archived_at_ns` when they were cut.
    """

    origin: str
    size: int
    chain: bytes
    tree_state: bytes
    segment: str
    archived_at_ns: int


class AuditStore(ABC):
    """An append-only, durable, hash-chained audit log for one origin."""

    @property
    @abstractmethod
    def origin(self) -> str:
        """The writer whose log this store appends to."""

    @abstractmethod
    def append(self, record: AuditRecord, *, bodies: bytes = b"") -> AuditReceipt:
        """Make `record` durable at the end of this origin's log.

        `bodies`, when given, are the exchange's sealed bodies
        (gateway/audit/bodies.py), stored with the record in the same commit.
        Blocks until the record is on stable storage. Raises `AuditError` if it
        cannot be made durable or the store is closed, and `Internal` if
        `record.origin` is not this store's origin.
        """

    @abstractmethod
    def size(self) -> int:
        """Number of durable records in this origin's log."""

    @abstractmethod
    def read(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> Iterator[StoredRecord]:
        """Durable records with `start <= index < stop`, in index order.

        Reads this store's origin unless another `origin` held in the same
        store is named. Raises `AuditError` when the store cannot be read.
        """

    @abstractmethod
    def read_bodies(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> dict[int, bytes]:
        """Sealed bodies stored with the records `start <= index < stop`, by index."""

    @abstractmethod
    def checkpoints(
        self, min_size: int = 0, max_size: int | None = None, *, origin: str | None = None
    ) -> list[StoredCheckpoint]:
        """Stored checkpoints with `min_size <= size <= max_size`, by size."""

    @abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The newest checkpoint of this store's origin, or None before the first."""

    @abstractmethod
    def origins(self) -> list[str]:
        """Every origin with records, checkpoints or a cut in this store, sorted."""

    @abstractmethod
    def cut(self, *, origin: str | None = None) -> ArchiveCut | None:
        """The latest archive cut of `origin` (this store's by default), or None."""

    @abstractmethod
    def archive_prefix(self, cut: ArchiveCut) -> int:
        """Delete `cut.origin`'s records, bodies and checkpoints below `cut.size` and
        record `cut`, in one durable transaction; return the records deleted.

        Refused with `AuditError` (nothing deleted) unless the stored record
        `cut.size - 1` has chain hash `cut.chain`, a checkpoint is stored at
        `cut.size`, and `cut.size` is beyond the previous cut. The checkpoint at
        `cut.size` is kept: it proves the tree state the remaining log starts from.
        """

    @abstractmethod
    def close(self) -> None:
        """Wait for pending appends to finish, then release the store. Idempotent."""

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_cut(
    cut: ArchiveCut,
    previous: ArchiveCut | None,
    stored_chain: bytes | None,
    stored_state: bytes | None,
) -> str:
    """Why a backend must refuse `archive_prefix(cut)`, or "" when it may proceed.

    `previous` is the origin's latest cut, `stored_chain` the stored chain
    hash of record `cut.size - 1` and `stored_state` the tree state of the
    checkpoint stored at `cut.size` (None when absent), all read under the
    backend's write lock.
    """
    where = f"archive cut of {cut.origin!r} at {cut.size}"
    if previous is not None and cut.size <= previous.size:
        return f"{where} is not beyond the previous cut at {previous.size}"
    if stored_chain is None:
        return f"{where}: record {cut.size - 1} is not in the store (archived already?)"
    if stored_chain != cut.chain:
        return (
            f"{where}: the stored chain hash of record {cut.size - 1} differs from the archived "
            "segment's: the segment does not hold this log's records; nothing was deleted"
        )
    if stored_state is None:
        return f"{where}: no checkpoint is stored at size {cut.size}"
    if stored_state != cut.tree_state:
        return f"{where}: the tree state differs from the checkpoint stored at size {cut.size}"
    return ""
