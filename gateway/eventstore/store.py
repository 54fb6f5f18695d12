"""The event store interface every engine implements (`eventstore.sqlite`, `.postgres`, `.nats`).

One store per security server holds both faces of publish/subscribe
(docs/pubsub.md, "Storage"):

- provider side: the topic logs (`append`, `event`, `head`) and each
  subscriber's delivery `Cursor` with its dead letters (`cursors`,
  `save_cursor`);
- consumer side: the inbox of delivered events per subscriber, deduplicated by
  event id, with the replay memory of event tokens (`receive`), and the
  applications' acknowledged positions (`read_inbox`, `acked_position`, `ack`).

Contract for every engine:

- Every method that changes the store returns only after the change is
  durable (committed and on stable storage); any failure raises
  `EventStoreError` (fail closed). A change whose call raised may or may not
  be stored; one whose call returned always is, even after a crash.
- `append` assigns the topic's next sequence number (1, 2, ...) inside the
  transaction that stores the event, so sequence numbers are dense and in
  commit order; the same event id with the same digest appends nothing and
  answers the first number; with another digest, `AlreadyExists`.
- `append` creates, in the same transaction, a cursor for every subscriber
  given that has none, at the topic's head before this event: a subscription
  starts with the first event appended after it is known.
- `receive` stores an event at most once per (subscriber, event id), refuses
  a (issuer, attempt id) it has seen (`Unauthenticated`, a replay) and an
  event id already stored with another digest (`AlreadyExists`).
- Positions of one (subscriber, topic) in the inbox increase strictly in
  the order events were received; `ack` is cumulative and never moves back.
- `prune` (retention, docs/pubsub.md "Retention") removes only what no one
  needs any more: an event older than the retention that every cursor of its
  topic has passed (never a topic's newest event, which holds its head), an
  inbox entry older than the retention that the applications acknowledged,
  a dead letter older than its retention, and a remembered event token
  expired for more than `REPLAY_MARGIN_S` seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from spean.gateway.events import Cursor, TopicId
from spean.gateway.identifiers import MemberId, SubsystemId


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a topic log (provider side)."""

    topic: TopicId
    sequence: int
    event_id: str
    payload: bytes
    event_sha256: bytes
    published_at_ms: int


@dataclass(frozen=True, slots=True)
class Appended:
    """The answer to `append`: the event's sequence number, and whether it was there."""

    sequence: int
    duplicate: bool
    published_at_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivered event as the consumer's server received it (the inbox's input)."""

    subscriber: SubsystemId
    topic: TopicId
    sequence: int
    event_id: str
    payload: bytes
    event_sha256: bytes
    published_at_ms: int
    issuer: MemberId
    attempt_id: str
    token_expires_at: int


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One event in a subscriber's inbox, at its position (consumer side)."""

    position: int
    subscriber: SubsystemId
    topic: TopicId
    sequence: int
    event_id: str
    payload: bytes
    event_sha256: bytes
    published_at_ms: int


@dataclass(frozen=True, slots=True)
class Received:
    """The answer to `receive`: the event's inbox position, and whether it was there."""

    position: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event given up for one subscriber after its last failed attempt."""

    topic: TopicId
    subscriber: SubsystemId
    sequence: int
    attempts: int
    error: str
    at_ns: int


# A remembered event token is forgotten this long after it expired (clock skew included).
REPLAY_MARGIN_S = 600


@dataclass(frozen=True, slots=True)
class Retention:
    """How long what is no longer needed stays in the store (`pubsub.retention`), in seconds."""

    events_s: float
    inbox_s: float
    dead_letters_s: float


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one `prune` removed."""

    events: int = 0
    inbox: int = 0
    dead_letters: int = 0
    replay_memory: int = 0


# -- rows: the column lists every engine selects, and the values made of them ------------------

EVENT_COLUMNS = "event_id, payload, digest, published_at_ms"
CURSOR_COLUMNS = "topic, subscriber, acked, attempts, next_attempt_ns, last_error, dead_letters"
INBOX_COLUMNS = "position, subscriber, topic, seq, event_id, payload, digest, published_at_ms"


def event_of_row(topic: TopicId, sequence: int, row: Sequence[Any]) -> StoredEvent:
    """The event of a row of `EVENT_COLUMNS`."""
    event_id, payload, digest, published = row
    return StoredEvent(topic, sequence, str(event_id), bytes(payload), bytes(digest), published)


def cursor_of_row(row: Sequence[Any]) -> Cursor:
    """The cursor of a row of `CURSOR_COLUMNS`."""
    topic, subscriber, acked, attempts, next_attempt_ns, last_error, dead_letters = row
    return Cursor(
        TopicId.parse(str(topic)),
        SubsystemId.parse(str(subscriber)),
        acked=acked,
        attempts=attempts,
        next_attempt_ns=next_attempt_ns,
        last_error=last_error,
        dead_letters=dead_letters,
    )


def inbox_event_of_row(row: Sequence[Any]) -> InboxEvent:
    """The inbox event of a row of `INBOX_COLUMNS`."""
    position, subscriber, topic, seq, event_id, payload, digest, published = row
    return InboxEvent(
        int(position),
        SubsystemId.parse(str(subscriber)),
        TopicId.parse(str(topic)),
        int(seq),
        str(event_id),
        bytes(payload),
        bytes(digest),
        int(published),
    )


class EventStore(ABC):
    """Durable topic logs, delivery cursors and inboxes of one security server."""

    # -- provider side ------------------------------------------------------------------

    @abstractmethod
    def append(
        self,
        topic: TopicId,
        event_id: str,
        payload: bytes,
        event_sha256: bytes,
        published_at_ms: int,
        subscribers: Sequence[SubsystemId],
    ) -> Appended:
        """Append an event durably (see the module docstring)."""

    @abstractmethod
    def head(self, topic: TopicId) -> int:
        """The topic's last sequence number, 0 when it has none."""

    @abstractmethod
    def event(self, topic: TopicId, sequence: int) -> StoredEvent | None:
        """The event at `sequence`, or None."""

    @abstractmethod
    def cursors(self) -> list[Cursor]:
        """Every delivery cursor, by topic and subscriber."""

    @abstractmethod
    def save_cursor(self, cursor: Cursor, dead_letter: DeadLetter | None = None) -> None:
        """Store a cursor's new state (and the dead letter that moved it) durably."""

    @abstractmethod
    def dead_letters(self, topic: TopicId, subscriber: SubsystemId) -> list[DeadLetter]:
        """The events given up for `subscriber` on `topic`, by sequence."""

    def leads_delivery(self) -> bool:
        """Whether this process is to run the delivery rounds now.

        One process per store delivers, so that two never push the same cursor
        at once. The SQLite engine serves the processes of one server, which
        deliver from worker 0 only: always True. A store shared by several
        servers' processes (PostgreSQL) elects one and answers False elsewhere.
        """
        return True

    # -- consumer side ------------------------------------------------------------------

    @abstractmethod
    def receive(self, delivery: Delivery) -> Received:
        """Store a delivered event once, durably (see the module docstring)."""

    @abstractmethod
    def read_inbox(
        self, subscriber: SubsystemId, topic: TopicId, after: int, limit: int
    ) -> list[InboxEvent]:
        """Up to `limit` events of the inbox after position `after`, in order."""

    @abstractmethod
    def acked_position(self, subscriber: SubsystemId, topic: TopicId) -> int:
        """The last position the subscriber's applications acknowledged, 0 before any."""

    @abstractmethod
    def ack(self, subscriber: SubsystemId, topic: TopicId, position: int) -> InboxEvent:
        """Acknowledge every event up to `position` durably; the event at `position`.

        `InvalidArgument` for a position that holds no event of this
        subscriber and topic; an older position than the acknowledged one
        changes nothing.
        """

    @abstractmethod
    def prune(self, retention: Retention, now_ns: int) -> Pruned:
        """Remove, durably, what `retention` lets go at `now_ns` (see the module docstring)."""

    @abstractmethod
    def wait_for_inbox(self, timeout: float) -> None:
        """Block until an event may have arrived, at most `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Release the store. Idempotent; later calls raise `EventStoreError`."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
