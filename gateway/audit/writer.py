"""Group commit, the Merkle tree head and checkpoints, shared by every backend.

Theory of operation. One writer thread owns the backend's write connection.
`append` encodes the record on the caller's thread, queues it and blocks. The
writer takes everything queued (up to `max_batch`), extends the hash chain and
the Merkle tree (`CompactRange`) in memory, and hands the batch to the backend,
which inserts it in ONE transaction and commits durably. Only then are the
waiting callers released with their receipts. When a checkpoint is due (every
`every_records` records, or `every_ms` after the oldest record not yet covered)
the writer signs one over the new tree head and the backend stores it in the
same transaction as the batch, so a checkpoint never names records that are
not durable. An idle writer wakes up to sign the pending checkpoint on time,
and `close()` signs a final one.

Invariants:
- Nothing acknowledged is lost: a receipt is handed out only after the
  backend's commit returned.
- Fail closed: if a batch cannot be committed every caller in it gets
  `AuditError`; the backend reconnects for the next batch and the writer
  resumes from the head actually committed (so a commit that failed but
  reached the disk is not forked over).
- One log per origin: the backend checks, under its write lock, that the
  stored head is the one this writer committed; if another writer appended
  to the same origin, every later append is refused.
- The in-memory tree and chain are replaced only after a successful commit.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from spean.gateway.audit.chain import ChainHead
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner, SignedCheckpoint
from spean.gateway.audit.merkle import CompactRange, CompactRangeState
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.store import AuditReceipt, AuditStore, StoredCheckpoint, validate_origin
from spean.gateway.errors import AuditError, InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.files.config import read_passphrase

if TYPE_CHECKING:
    from spean.gateway.config import ServerConfig

log = structlog.get_logger("spean.audit")


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When a writer signs checkpoints, and with which key."""

    signer: CheckpointSigner
    every_records: int = 1000
    every_ms: int = 1000

    def __post_init__(self) -> None:
        if self.every_records < 1:
            raise InvalidArgument(
                f"checkpoint every_records must be at least 1, got {self.every_records}"
            )
        if not 1 <= self.every_ms <= 3_600_000:
            raise InvalidArgument(f"checkpoint every_ms must be 1 to 3600000, got {self.every_ms}")


@dataclass(frozen=True, slots=True)
class Row:
    """One record ready to insert: index, canonical bytes, chain hash, sealed bodies."""

    index: int
    data: bytes
    chain: bytes
    bodies: bytes = b""


@dataclass(frozen=True, slots=True)
class BackendHead:
    """What a backend holds for one origin: chain head, latest checkpoint, tree."""

    chain: ChainHead
    latest: StoredCheckpoint | None
    tree: CompactRangeState


class OriginConflict(AuditError):
    """Another writer appended to this store's origin: the log would fork."""


class _Pending:
    """One queued append. `lock` is held until the writer has decided its fate.

    A pre-acquired Lock released by the writer is the cheapest one-shot signal
    between two threads in CPython (cheaper than an Event or a Future).
    """

    __slots__ = ("bodies", "data", "error", "lock", "receipt")

    def __init__(self, data: bytes, bodies: bytes = b"") -> None:
        self.data = data
        self.bodies = bodies
        self.receipt: AuditReceipt | None = None
        self.error: str | None = None
        self.lock = threading.Lock()
        self.lock.acquire()

    def resolve(self, receipt: AuditReceipt) -> None:
        self.receipt = receipt
        self.lock.release()

    def fail(self, message: str) -> None:
        self.error = message
        self.lock.release()


class GroupCommitStore(AuditStore):
    """An `AuditStore` whose backend only implements a few transactional steps.

    Subclasses call `_start()` at the end of their constructor, once the
    write connection works, and implement the `_backend_*` methods, all of
    which run on the writer thread except `_backend_load` at start.
    """

    def __init__(
        self,
        origin: str,
        *,
        max_batch: int,
        max_wait_s: float,
        checkpoints: CheckpointPolicy | None,
    ) -> None:
        self._origin = validate_origin(origin)
        if max_batch < 1:
            raise InvalidArgument(f"audit store max_batch must be at least 1, got {max_batch}")
        if not 0 <= max_wait_s <= 1:
            raise InvalidArgument(f"audit store max_wait_s must be 0 to 1 s, got {max_wait_s}")
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._policy = checkpoints
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        # Guards `_closed` and `_refusal` together with every queue.put, so that
        # nothing is queued after the writer has been told to stop.
        self._lock = threading.Lock()
        self._closed = False
        self._refusal: str | None = None
        self._last_batch = 1  # size of the previous batch, the writer's estimate of concurrency
        self._committed = ChainHead(0, b"")
        self._tree = CompactRange()
        self._latest: StoredCheckpoint | None = None
        self._uncovered_since: float | None = None  # monotonic time of the oldest uncovered record
        self._writer: threading.Thread | None = None
        self._stale = False  # a commit failed: re-read the stored head before the next one

    # -- what a backend implements ----------------------------------------------

    @property
    @abstractmethod
    def _where(self) -> str:
        """Where the log lives, for messages (a path, a database without password)."""

    @abstractmethod
    def _backend_load(self) -> BackendHead:
        """Read this origin's chain head, latest checkpoint and the tree's compact range."""

    @abstractmethod
    def _backend_write(
        self, expected: ChainHead, rows: list[Row], checkpoint: StoredCheckpoint | None
    ) -> None:
        """In one durable transaction: check the stored head is `expected` (else raise
        `OriginConflict`), insert `rows` and `checkpoint`, commit."""

    @abstractmethod
    def _backend_reset(self) -> None:
        """Drop the write connection after a failure; the next write reconnects."""

    @abstractmethod
    def _backend_close(self) -> None:
        """Release the write connection for good."""

    # -- the AuditStore interface ----------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    def size(self) -> int:
        # `_committed` is replaced (never mutated) by the writer: reading it is atomic.
        return self._committed.size

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self._latest

    def append(self, record: AuditRecord, *, bodies: bytes = b"") -> AuditReceipt:
        if record.origin != self._origin:
            raise AuditError(
                f"audit record of exchange {record.exchange_id!r} names origin "
                f"{record.origin!r} but this store writes the log of {self._origin!r}"
            )
        try:
            data = record.to_bytes()
        except InvalidArgument as exc:
            raise AuditError(exc.message) from exc
        pending = _Pending(data, bodies)
        with self._lock:
            if self._refusal is not None:
                raise AuditError(self._refusal)
            if self._closed:
                raise AuditError(f"audit store {self._where} ({self._origin}) is closed")
            self._queue.put(pending)
        pending.lock.acquire()  # released by the writer once the batch is decided
        if pending.receipt is None:
            # A fresh exception per caller: one instance raised in many threads
            # would share (and garble) its traceback.
            raise AuditError(pending.error or "audit append failed")
        return pending.receipt

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)  # FIFO: everything queued before is committed first
        if self._writer is not None:
            self._writer.join()

    # -- start ------------------------------------------------------------------

    def _start(self) -> None:
        self._install(self._backend_load())
        self._writer = threading.Thread(
            target=self._run, name=f"audit-writer {self._origin}", daemon=True
        )
        self._writer.start()
        log.info(
            "audit.store_opened", origin=self._origin, where=self._where, size=self._committed.size
        )

    def _install(self, head: BackendHead) -> None:
        if head.tree.size != head.chain.size:
            raise AuditError(
                f"audit store {self._where}: the tree of {self._origin!r} covers "
                f"{head.tree.size} records but the log holds {head.chain.size}; "
                "run the audit verifier"
            )
        self._committed = head.chain
        self._tree = CompactRange.from_state(head.tree)
        self._latest = head.latest
        covered = 0 if head.latest is None else head.latest.size
        self._uncovered_since = time.monotonic() if head.chain.size > covered else None

    # -- the writer thread ------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        batch: list[_Pending] = []
        try:
            while not stopping:
                try:
                    first = self._queue.get(timeout=self._checkpoint_wait())
                except queue.Empty:
                    self._commit([])  # a checkpoint is due and nothing else came
                    continue
                if first is None:
                    break
                batch = [first]  # in hand from here on, whatever happens
                batch, stopping = self._collect(first)
                self._commit(batch)
                batch = []
            if self._policy is not None and self._uncovered_since is not None:
                self._commit([], force_checkpoint=True)
        # Documented boundary: the writer thread must never die silently while
        # callers wait on it. Any unexpected failure (a bug) refuses the batch
        # in hand and every later append.
        except Exception as exc:
            log.exception("audit.writer_crashed", origin=self._origin, where=self._where)
            message = (
                f"audit store {self._where} ({self._origin}) stopped after an internal error "
                f"({type(exc).__name__}); restart the security server"
            )
            self._refuse_all(message, batch)
        finally:
            self._backend_close()

    def _checkpoint_wait(self) -> float | None:
        if self._policy is None or self._uncovered_since is None or self._refusal is not None:
            return None
        due = self._uncovered_since + self._policy.every_ms / 1000
        return max(due - time.monotonic(), 0.0)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """Take `first` and whatever else is queued; True if told to stop.

        When the queue runs dry before the batch is as large as the previous
        one, the writer lingers up to `max_wait_s` for the rest: appenders
        released by the previous commit are usually about to append again, and
        waiting a little for them saves a whole fsync. A lone appender (previous
        batch of one) is never kept waiting.
        """
        batch = [first]
        expected = min(self._max_batch, self._last_batch)
        deadline: float | None = None
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if len(batch) >= expected or self._max_wait_s == 0:
                    break
                if deadline is None:
                    deadline = time.monotonic() + self._max_wait_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        self._last_batch = len(batch)
        return batch, False

    def _commit(self, batch: list[_Pending], *, force_checkpoint: bool = False) -> None:
        """Make `batch` durable (with a checkpoint if due); release its callers."""
        if self._refusal is not None:
            for pending in batch:
                pending.fail(self._refusal)
            return
        if self._stale:
            try:
                self._resync()
            except AuditError as exc:
                self._backend_reset()
                for pending in batch:
                    pending.fail(exc.message)
                return
        head = self._committed
        tree = CompactRange.from_state(self._tree.state())
        rows = []
        for pending in batch:
            head = head.extend(pending.data)
            tree.append_record(pending.data)
            rows.append(Row(head.size - 1, pending.data, head.hash, pending.bodies))
        checkpoint = self._due_checkpoint(tree, force=force_checkpoint or not batch)
        try:
            self._backend_write(self._committed, rows, checkpoint)
        except OriginConflict as exc:
            self._refuse_all(exc.message, batch)
            return
        except AuditError as exc:
            self._backend_reset()
            # The backend logged the failure and named it in the message.
            for pending in batch:
                pending.fail(exc.message)
            self._stale = True
            return
        self._committed = head
        self._tree = tree
        if checkpoint is not None:
            self._latest = checkpoint
            self._uncovered_since = None
        elif rows and self._uncovered_since is None:
            self._uncovered_since = time.monotonic()
        for pending, row in zip(batch, rows, strict=True):
            pending.resolve(AuditReceipt(row.index, row.chain))

    def _due_checkpoint(self, tree: CompactRange, *, force: bool) -> StoredCheckpoint | None:
        policy = self._policy
        if policy is None:
            return None
        covered = 0 if self._latest is None else self._latest.size
        if tree.size == covered:
            return None
        late = (
            self._uncovered_since is not None
            and time.monotonic() - self._uncovered_since >= policy.every_ms / 1000
        )
        if not (force or late or tree.size - covered >= policy.every_records):
            return None
        signed: SignedCheckpoint = policy.signer.sign(
            Checkpoint(self._origin, tree.size, tree.root(), covered, time.time_ns())
        )
        return StoredCheckpoint(signed.size, signed.note, tree.state().to_bytes(), self._origin)

    def _resync(self) -> None:
        """After a failed commit: continue from what the backend really holds."""
        head = self._backend_load()
        if head.chain != self._committed:
            # A commit reported as failed did reach storage. Its callers were
            # refused, but the records exist: continue after them, never over them.
            log.warning(
                "audit.head_moved",
                origin=self._origin,
                where=self._where,
                expected_size=self._committed.size,
                found_size=head.chain.size,
            )
        self._install(head)
        self._stale = False

    def _refuse_all(self, message: str, batch: list[_Pending]) -> None:
        """Refuse `batch`, everything queued, and every later append."""
        with self._lock:
            self._refusal = message
            leftovers: list[_Pending] = []
            stop_requested = False
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop_requested = True
                else:
                    leftovers.append(item)
            if stop_requested:
                self._queue.put(None)  # close() is waiting for the writer to see it
        for pending in [*batch, *leftovers]:
            if pending.receipt is None and pending.error is None:
                pending.fail(message)

    def _conflict_message(self, found_size: int) -> str:
        log.error(
            "audit.origin_conflict",
            origin=self._origin,
            where=self._where,
            expected_size=self._committed.size,
            found_size=found_size,
        )
        return (
            f"audit log {self._origin!r} in {self._where} was changed by another writer "
            f"(this writer committed {self._committed.size} records, the store holds "
            f"{found_size}): every process needs its own origin; appends are refused "
            "until the security server is restarted with a distinct worker name"
        )


def tree_after(state: CompactRangeState, leaves: Iterator[bytes]) -> CompactRangeState:
    """The compact range after appending the records `leaves` (canonical bytes) to `state`."""
    tree = CompactRange.from_state(state)
    for data in leaves:
        tree.append_record(data)
    return tree.state()


def server_checkpoint_policy(config: ServerConfig) -> CheckpointPolicy:
    """The checkpoint policy of a security server: signed with its member's signing key.

    Reads the key files named by the server configuration (the same files the
    token signer uses); a bad key raises `ConfigError` through `spean.gateway.pki`.
    """

    keys = config.keys
    key = keyfiles.load_private_key(config.resolve(keys.signing_key), read_passphrase(config))
    certificate = keyfiles.load_certificate(config.resolve(keys.signing_certificate))
    return CheckpointPolicy(CheckpointSigner(str(config.server.member), key, certificate))
