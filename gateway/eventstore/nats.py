"""NATS JetStream event store: the topic logs, cursors and inboxes on a JetStream server.

Theory of operation. The location is ``nats://HOST:PORT?prefix=NAME`` (also
``tls://``; ``&replicas=N`` for a clustered server, default 1); every stream
and bucket of the store is named after the prefix (default ``spean``), so
several security servers share one broker without seeing each other's data.
Everything is JetStream file storage; a call returns only after the server
acknowledged the write (stored, and on ``replicas`` servers when clustered).

Mapping (`P` is the prefix, `t`, `s`, `e`, `i`, `a` are fixed-length hex
digests of a topic, subscriber, event id, issuer and attempt id):

- topic log: one stream per topic, ``P_topic_t`` (its description is the
  topic), subjects ``P.topic.t.e``. The stream sequence *is* the event's
  sequence number: JetStream assigns it at commit, densely, in commit order.
  Each event is published with ``Nats-Expected-Last-Subject-Sequence: 0`` on
  its event id's subject, so the server refuses a second message for an event
  id atomically; the refusal is answered from the stored one (same digest: a
  duplicate; another: `AlreadyExists`);
- delivery cursors: KV bucket ``P_cursors``, key ``t.s``, created with
  `create` (which refuses an existing key) before the event is appended, at
  the topic's head then; dead letters: KV bucket ``P_dead``, key ``t.s.SEQ``;
- inbox: one stream ``P_inbox``, subjects ``P.inbox.s.t.e``, published with
  the same expected-last-subject-sequence 0, so an event is stored once per
  (subscriber, topic, event id); the stream sequence is the inbox position,
  strictly increasing in the order events were received;
- replay memory: KV bucket ``P_seen``, key ``i.a``, created once per event
  token (a second `create` is the replay);
- applications' acknowledged positions: KV bucket ``P_acks``, key ``s.t``,
  moved forward only, by `update` against the revision read (optimistic
  concurrency), so two acknowledgers never move it back;
- delivery lease: KV bucket ``P_lease`` whose entries expire after
  `LEASE_S` seconds (the bucket's max age): the process holding key
  ``delivery`` delivers and renews it (at most every third of `LEASE_S`);
  when it dies the key ages out and another process takes it with `create`.

The delivery rounds read every cursor several times a second; the holder of
the lease, the only process that moves cursors, keeps them in memory with
its own changes and reads the bucket again every `CURSOR_REFRESH_S`.

nats-py is asyncio; the `EventStore` interface is synchronous and called from
the servers' threads. One event loop runs in a thread of its own per store,
with one connection (reconnecting by itself after a broker restart); every
method submits a coroutine to it and waits at most `timeout_s`. A timeout,
an unreachable broker or a refused request raises `EventStoreError` naming
the broker and what could not be done (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent import futures
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    Header,
    KeyValueConfig,
    RawStreamMsg,
    StorageType,
    StreamConfig,
)

from spean.gateway.errors import (
    AlreadyExists,
    EventStoreError,
    InvalidArgument,
    SpeanError,
    Unauthenticated,
)
from spean.gateway.events import Cursor, TopicId
from spean.gateway.eventstore.natsurl import parse_nats_url
from spean.gateway.eventstore.store import (
    REPLAY_MARGIN_S,
    Appended,
    DeadLetter,
    Delivery,
    EventStore,
    InboxEvent,
    Pruned,
    Received,
    Retention,
    StoredEvent,
)
from spean.gateway.identifiers import SubsystemId

T = TypeVar("T")

LEASE_S = 10.0
# The lease is renewed at most this often (it ages out after LEASE_S).
_RENEW_S = LEASE_S / 3
# The delivery rounds read the cursors bucket at most this often (see `cursors`).
CURSOR_REFRESH_S = 1.0
PRUNE_BUDGET_S = 600.0
_WRONG_LAST_SEQUENCE = (10071, 10164)
_LEASE_KEY = "delivery"

# Headers of a stored event (topic log and inbox).
_EVENT_ID = "Spean-Event-Id"
_DIGEST = "Spean-Digest"
_PUBLISHED = "Spean-Published-At-Ms"
_SEQUENCE = "Spean-Sequence"
_RECEIVED = "Spean-Received-At-Ns"


def _token(text: str) -> str:
    """A subject- and key-safe name of a value: 32 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class NatsEventStore(EventStore):
    """The event store on a NATS JetStream server (see the module docstring)."""

    def __init__(self, location: str, *, timeout_s: float = 5.0) -> None:
        where = parse_nats_url(location)
        self._where = where
        self._p = where.prefix
        self._timeout = timeout_s
        self._closed = False
        self._owner = uuid.uuid4().hex  # this store object's name in the delivery lease
        self._lease_revision = 0
        self._renewed_at = 0.0  # monotonic time of the last renewal of the lease
        self._cursor_cache: dict[str, Cursor] | None = None
        self._cursor_read_at = 0.0
        self._known_cursors: set[str] = set()
        self._known_topics: set[str] = set()
        self._arrived = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spean-eventstore-nats", daemon=True
        )
        self._thread.start()
        self._nc: Client | None = None
        try:
            self._call("cannot be opened", self._open())
        except BaseException:
            self._shutdown()
            raise

    # -- the event loop and its errors ----------------------------------------------------

    def _error(self, what: str, exc: BaseException | None = None) -> EventStoreError:
        detail = ""
        if exc is not None:
            text = str(exc).strip() or type(exc).__name__
            detail = f": {text}"
        return EventStoreError(
            f"event store {self._where.display} (prefix {self._p}) {what}{detail}"
        )

    def _call(self, what: str, coro: Coroutine[Any, Any, T], budget: float = 0) -> T:
        """Run `coro` on the loop, at most `budget` seconds (default: three requests' time)."""
        if self._closed:
            coro.close()
            raise self._error("is closed")
        budget = budget or self._timeout * 3
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(budget)
        except SpeanError:
            raise
        except (futures.TimeoutError, nats.errors.Error, OSError) as exc:
            if not future.done():  # the budget ran out, not a request of the coroutine
                future.cancel()
                raise self._error(f"{what}: no answer in {budget:g} s") from exc
            raise self._error(what, exc) from exc

    async def _open(self) -> None:
        async def quiet(*_: Any) -> None:  # reconnection is reported by the failing calls
            return None

        # Reconnect for ever after an outage; the first connection has `timeout_s`.
        connecting = nats.connect(
            servers=[self._where.servers],
            max_reconnect_attempts=-1,
            connect_timeout=self._timeout,
            allow_reconnect=True,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
            closed_cb=quiet,
        )
        try:
            self._nc = await asyncio.wait_for(connecting, self._timeout)
        except TimeoutError:
            raise self._error(f"is unreachable (no connection in {self._timeout:g} s)") from None
        js = self._js
        await self._ensure_stream(
            StreamConfig(name=f"{self._p}_inbox", subjects=[f"{self._p}.inbox.>"])
        )
        for bucket in ("cursors", "dead", "acks", "seen"):
            await self._ensure_bucket(KeyValueConfig(bucket=f"{self._p}_{bucket}", history=1))
        await self._ensure_bucket(KeyValueConfig(bucket=f"{self._p}_lease", history=1, ttl=LEASE_S))
        self._cursors = await js.key_value(f"{self._p}_cursors")
        self._dead = await js.key_value(f"{self._p}_dead")
        self._acks = await js.key_value(f"{self._p}_acks")
        self._seen = await js.key_value(f"{self._p}_seen")
        self._lease = await js.key_value(f"{self._p}_lease")

        async def arrived(_: Any) -> None:
            with self._arrived:
                self._arrived.notify_all()

        await self._nc.subscribe(f"{self._p}.inbox.>", cb=arrived)

    @property
    def _js(self) -> JetStreamContext:
        assert self._nc is not None
        return self._nc.jetstream(timeout=self._timeout)

    async def _ensure_stream(self, config: StreamConfig) -> None:
        assert config.name is not None
        try:
            await self._js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            config.storage = StorageType.FILE
            config.num_replicas = self._where.replicas
            config.discard = DiscardPolicy.OLD
            await self._js.add_stream(config)

    async def _ensure_bucket(self, config: KeyValueConfig) -> None:
        try:
            await self._js.stream_info(f"KV_{config.bucket}")
        except nats.js.errors.NotFoundError:
            config.storage = StorageType.FILE
            config.replicas = self._where.replicas
            await self._js.create_key_value(config)

    async def _scan(self, stream: str, subject: str, start: int = 1) -> AsyncIterator[RawStreamMsg]:
        """The messages of `stream` on `subject` (wildcards allowed) from `start`, in order."""
        seq = max(start, 1)
        while True:
            try:
                msg = await self._js.get_msg(stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return
            assert msg.seq is not None
            yield msg
            seq = msg.seq + 1

    # -- names ----------------------------------------------------------------------------

    def _topic_stream(self, topic: TopicId) -> str:
        return f"{self._p}_topic_{_token(str(topic))}"

    def _topic_subject(self, topic: TopicId, event_id: str) -> str:
        return f"{self._p}.topic.{_token(str(topic))}.{_token(event_id)}"

    def _inbox_filter(self, subscriber: SubsystemId, topic: TopicId) -> str:
        return f"{self._p}.inbox.{_token(str(subscriber))}.{_token(str(topic))}.*"

    @staticmethod
    def _pair(topic: TopicId, subscriber: SubsystemId) -> str:
        return f"{_token(str(topic))}.{_token(str(subscriber))}"

    # -- provider side ------------------------------------------------------------------

    def append(
        self,
        topic: TopicId,
        event_id: str,
        payload: bytes,
        event_sha256: bytes,
        published_at_ms: int,
        subscribers: Sequence[SubsystemId],
    ) -> Appended:
        return self._call(
            f"could not append to topic {topic}",
            self._append(topic, event_id, payload, event_sha256, published_at_ms, subscribers),
        )

    async def _append(
        self,
        topic: TopicId,
        event_id: str,
        payload: bytes,
        event_sha256: bytes,
        published_at_ms: int,
        subscribers: Sequence[SubsystemId],
    ) -> Appended:
        stream = self._topic_stream(topic)
        subject = self._topic_subject(topic, event_id)
        if stream not in self._known_topics:
            await self._ensure_stream(
                StreamConfig(
                    name=stream,
                    subjects=[f"{self._p}.topic.{_token(str(topic))}.*"],
                    description=str(topic),
                )
            )
            self._known_topics.add(stream)
        new = [s for s in subscribers if self._pair(topic, s) not in self._known_cursors]
        if new:
            # A duplicate creates no cursor; a new subscriber starts at the head before it.
            found = await self._stored(stream, subject)
            if found is not None:
                return self._duplicate(topic, event_id, event_sha256, found)
            head = (await self._js.stream_info(stream)).state.last_seq
            for subscriber in new:
                key = self._pair(topic, subscriber)
                value = _cursor_value(Cursor(topic, subscriber, acked=head))
                with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                    await self._cursors.create(key, value)
                    if self._cursor_cache is not None:
                        self._cursor_cache[key] = Cursor(topic, subscriber, acked=head)
                self._known_cursors.add(key)
        headers = {
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE: "0",
            _EVENT_ID: event_id,
            _DIGEST: event_sha256.hex(),
            _PUBLISHED: str(published_at_ms),
        }
        try:
            ack = await self._js.publish(subject, payload, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            found = await self._stored(stream, subject)
            if found is None:
                raise
            return self._duplicate(topic, event_id, event_sha256, found)
        return Appended(ack.seq, duplicate=False, published_at_ms=published_at_ms)

    async def _stored(self, stream: str, subject: str) -> RawStreamMsg | None:
        try:
            return await self._js.get_last_msg(stream, subject)
        except nats.js.errors.NotFoundError:
            return None

    @staticmethod
    def _duplicate(
        topic: TopicId, event_id: str, event_sha256: bytes, found: RawStreamMsg
    ) -> Appended:
        headers = found.headers or {}
        if headers.get(_DIGEST) != event_sha256.hex():
            raise AlreadyExists(
                f"event {event_id} is already on topic {topic} with other bytes;"
                " a new event needs a new event id"
            )
        assert found.seq is not None
        return Appended(found.seq, duplicate=True, published_at_ms=int(headers[_PUBLISHED]))

    def head(self, topic: TopicId) -> int:
        return self._call(f"could not read the head of {topic}", self._head(topic))

    async def _head(self, topic: TopicId) -> int:
        try:
            return int((await self._js.stream_info(self._topic_stream(topic))).state.last_seq)
        except nats.js.errors.NotFoundError:
            return 0

    def event(self, topic: TopicId, sequence: int) -> StoredEvent | None:
        if sequence < 1:
            return None
        return self._call(
            f"could not read event {sequence} of {topic}", self._event(topic, sequence)
        )

    async def _event(self, topic: TopicId, sequence: int) -> StoredEvent | None:
        try:
            msg = await self._js.get_msg(self._topic_stream(topic), seq=sequence)
        except nats.js.errors.NotFoundError:
            return None
        headers = msg.headers or {}
        return StoredEvent(
            topic,
            sequence,
            headers[_EVENT_ID],
            msg.data or b"",
            bytes.fromhex(headers[_DIGEST]),
            int(headers[_PUBLISHED]),
        )

    def cursors(self) -> list[Cursor]:
        """Every cursor: this process's own changes at once, the bucket's read again at most
        every `CURSOR_REFRESH_S` (one request per cursor), and at once after taking the
        delivery lease. Only the lease holder moves cursors; another process's appends
        create them, so those appear within `CURSOR_REFRESH_S`."""
        return self._call("could not read the delivery cursors", self._all_cursors())

    async def _all_cursors(self, fresh: bool = False) -> list[Cursor]:
        now = time.monotonic()
        if fresh or self._cursor_cache is None or now - self._cursor_read_at >= CURSOR_REFRESH_S:
            cache: dict[str, Cursor] = {}
            async for msg in self._scan(f"KV_{self._p}_cursors", f"$KV.{self._p}_cursors.>"):
                if msg.data and msg.subject:
                    cache[msg.subject.removeprefix(f"$KV.{self._p}_cursors.")] = _cursor_of(
                        msg.data
                    )
            self._cursor_cache, self._cursor_read_at = cache, now
        found = list(self._cursor_cache.values())
        return sorted(found, key=lambda c: (str(c.topic), str(c.subscriber)))

    def save_cursor(self, cursor: Cursor, dead_letter: DeadLetter | None = None) -> None:
        self._call("could not save a delivery cursor", self._save_cursor(cursor, dead_letter))

    async def _save_cursor(self, cursor: Cursor, dead_letter: DeadLetter | None) -> None:
        key = self._pair(cursor.topic, cursor.subscriber)
        if dead_letter is not None:
            # First the dead letter, then the cursor that moved past it: a crash between
            # repeats the same dead letter (same key), never loses it.
            value = json.dumps(
                {
                    "attempts": dead_letter.attempts,
                    "error": dead_letter.error,
                    "at_ns": dead_letter.at_ns,
                }
            ).encode()
            await self._dead.put(f"{key}.{dead_letter.sequence}", value)
        await self._cursors.put(key, _cursor_value(cursor))
        if self._cursor_cache is not None:
            self._cursor_cache[key] = cursor

    def dead_letters(self, topic: TopicId, subscriber: SubsystemId) -> list[DeadLetter]:
        return self._call("could not read dead letters", self._dead_letters(topic, subscriber))

    async def _dead_letters(self, topic: TopicId, subscriber: SubsystemId) -> list[DeadLetter]:
        prefix = f"$KV.{self._p}_dead.{self._pair(topic, subscriber)}."
        found: list[DeadLetter] = []
        async for msg in self._scan(f"KV_{self._p}_dead", prefix + "*"):
            if not msg.data or msg.subject is None:
                continue
            value = json.loads(msg.data)
            sequence = int(msg.subject[len(prefix) :])
            found.append(
                DeadLetter(
                    topic, subscriber, sequence, value["attempts"], value["error"], value["at_ns"]
                )
            )
        return sorted(found, key=lambda d: d.sequence)

    def leads_delivery(self) -> bool:
        """Hold (or take) the prefix's delivery lease: one process delivers at a time.

        The lease is a KV entry that ages out `LEASE_S` seconds after its last
        renewal; its holder renews it at every round, and when the holder dies
        another process takes it with `create` at its next round.
        """
        if self._closed:
            return False
        try:
            return self._call("could not take the delivery lease", self._take_lease())
        except EventStoreError:
            return False

    async def _take_lease(self) -> bool:
        now = time.monotonic()
        if self._lease_revision and now - self._renewed_at < _RENEW_S:
            return True  # renewed moments ago: ours until it would age out
        try:
            entry = await self._lease.get(_LEASE_KEY)
        except nats.js.errors.KeyNotFoundError:
            try:
                self._lease_revision = await self._lease.create(_LEASE_KEY, self._owner.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                self._lease_revision = 0
                return False
            self._renewed_at = now
            self._cursor_cache = None  # taken over: the previous holder moved the cursors
            return True
        if entry.value != self._owner.encode() or entry.revision is None:
            self._lease_revision = 0
            return False
        try:
            self._lease_revision = await self._lease.update(
                _LEASE_KEY, self._owner.encode(), last=entry.revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            self._lease_revision = 0
            return False
        self._renewed_at = now
        return True

    # -- consumer side ------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> Received:
        received = self._call(
            f"could not store event {delivery.event_id}", self._receive(delivery, time.time_ns())
        )
        with self._arrived:
            self._arrived.notify_all()
        return received

    async def _receive(self, d: Delivery, now: int) -> Received:
        try:
            await self._seen.create(
                f"{_token(str(d.issuer))}.{_token(d.attempt_id)}",
                str(d.token_expires_at).encode(),
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Unauthenticated(
                f"event token {d.attempt_id} of {d.issuer} was presented before (replay)"
            ) from None
        subject = (
            f"{self._p}.inbox.{_token(str(d.subscriber))}.{_token(str(d.topic))}"
            f".{_token(d.event_id)}"
        )
        headers = {
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE: "0",
            _EVENT_ID: d.event_id,
            _DIGEST: d.event_sha256.hex(),
            _PUBLISHED: str(d.published_at_ms),
            _SEQUENCE: str(d.sequence),
            _RECEIVED: str(now),
        }
        try:
            ack = await self._js.publish(subject, d.payload, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            found = await self._stored(f"{self._p}_inbox", subject)
            if found is None:
                raise
            if (found.headers or {}).get(_DIGEST) != d.event_sha256.hex():
                raise AlreadyExists(
                    f"event {d.event_id} was delivered to {d.subscriber} before with other bytes"
                ) from None
            assert found.seq is not None
            return Received(found.seq, duplicate=True)
        return Received(ack.seq, duplicate=False)

    def read_inbox(
        self, subscriber: SubsystemId, topic: TopicId, after: int, limit: int
    ) -> list[InboxEvent]:
        return self._call(
            f"could not read the inbox of {subscriber}",
            self._read_inbox(subscriber, topic, after, limit),
        )

    async def _read_inbox(
        self, subscriber: SubsystemId, topic: TopicId, after: int, limit: int
    ) -> list[InboxEvent]:
        found: list[InboxEvent] = []
        if limit < 1:
            return found
        filter_ = self._inbox_filter(subscriber, topic)
        async for msg in self._scan(f"{self._p}_inbox", filter_, after + 1):
            found.append(_inbox_event(subscriber, topic, msg))
            if len(found) >= limit:
                break
        return found

    def acked_position(self, subscriber: SubsystemId, topic: TopicId) -> int:
        return self._call(
            f"could not read the position of {subscriber}", self._acked(subscriber, topic)
        )[0]

    async def _acked(self, subscriber: SubsystemId, topic: TopicId) -> tuple[int, int]:
        """The acknowledged position and the revision of its entry (0, 0 before any)."""
        try:
            entry = await self._acks.get(f"{_token(str(subscriber))}.{_token(str(topic))}")
        except nats.js.errors.KeyNotFoundError:
            return 0, 0
        return int(entry.value or b"0"), int(entry.revision or 0)

    def ack(self, subscriber: SubsystemId, topic: TopicId, position: int) -> InboxEvent:
        return self._call(
            f"could not acknowledge position {position}", self._ack(subscriber, topic, position)
        )

    async def _ack(self, subscriber: SubsystemId, topic: TopicId, position: int) -> InboxEvent:
        msg: RawStreamMsg | None = None
        if position >= 1:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                msg = await self._js.get_msg(f"{self._p}_inbox", seq=position)
        if msg is None or not (msg.subject or "").startswith(
            self._inbox_filter(subscriber, topic)[:-1]
        ):
            raise InvalidArgument(
                f"position {position} holds no event of {topic} for {subscriber};"
                " acknowledge a position Subscribe handed out"
            )
        key = f"{_token(str(subscriber))}.{_token(str(topic))}"
        while True:
            current, revision = await self._acked(subscriber, topic)
            if position <= current:
                break
            try:
                if revision:
                    await self._acks.update(key, str(position).encode(), last=revision)
                else:
                    await self._acks.create(key, str(position).encode())
                break
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another acknowledgement moved it meanwhile: compare again
        return _inbox_event(subscriber, topic, msg)

    def wait_for_inbox(self, timeout: float) -> None:
        # A core subscription on the inbox's subjects wakes every process of the server.
        with self._arrived:
            self._arrived.wait(timeout)

    # -- retention ------------------------------------------------------------------------

    def prune(self, retention: Retention, now_ns: int) -> Pruned:
        # A prune walks what it removes, one request per entry: it may take a while.
        return self._call("could not prune", self._prune(retention, now_ns), PRUNE_BUDGET_S)

    async def _prune(self, retention: Retention, now_ns: int) -> Pruned:
        cursors = await self._all_cursors(fresh=True)
        events = 0
        cutoff_ms = (now_ns - int(retention.events_s * 1e9)) // 1_000_000
        async for info in self._topic_streams():
            topic_name = info.config.description or ""
            stream = info.config.name or ""
            acked = [c.acked for c in cursors if str(c.topic) == topic_name]
            # Never the event a cursor still needs, nor the newest (it holds the head).
            last = min([*acked, info.state.last_seq - 1])
            stop = info.state.first_seq
            async for msg in self._scan(stream, f"{self._p}.topic.>", info.state.first_seq):
                assert msg.seq is not None
                if msg.seq > last or int((msg.headers or {})[_PUBLISHED]) >= cutoff_ms:
                    break
                stop = msg.seq + 1
            if stop > info.state.first_seq:
                await self._js.purge_stream(stream, seq=stop)
                events += stop - info.state.first_seq
        inbox = 0
        inbox_cutoff = now_ns - int(retention.inbox_s * 1e9)
        async for msg in self._scan(f"KV_{self._p}_acks", f"$KV.{self._p}_acks.>"):
            if not msg.data or msg.subject is None:
                continue
            position = int(msg.data)
            pair = msg.subject.rsplit(".", 2)
            filter_ = f"{self._p}.inbox.{pair[-2]}.{pair[-1]}.*"
            stop = 0
            count = 0
            async for item in self._scan(f"{self._p}_inbox", filter_):
                assert item.seq is not None
                if item.seq > position or int((item.headers or {})[_RECEIVED]) >= inbox_cutoff:
                    break
                stop = item.seq + 1
                count += 1
            if stop:
                await self._js.purge_stream(f"{self._p}_inbox", seq=stop, subject=filter_)
                inbox += count
        dead = 0
        dead_cutoff = now_ns - int(retention.dead_letters_s * 1e9)
        async for msg in self._scan(f"KV_{self._p}_dead", f"$KV.{self._p}_dead.>"):
            if msg.data and msg.subject and json.loads(msg.data)["at_ns"] < dead_cutoff:
                # Purged by subject: gone without a delete marker (KV buckets refuse deletes).
                await self._js.purge_stream(f"KV_{self._p}_dead", subject=msg.subject)
                dead += 1
        # The replay memory in arrival order, up to the first token not long expired.
        seen = 0
        expired = now_ns // 10**9 - REPLAY_MARGIN_S
        stop = 0
        async for msg in self._scan(f"KV_{self._p}_seen", f"$KV.{self._p}_seen.>"):
            assert msg.seq is not None
            if msg.data and int(msg.data) >= expired:
                break
            stop = msg.seq + 1
            seen += 1
        if stop:
            await self._js.purge_stream(f"KV_{self._p}_seen", seq=stop)
        return Pruned(events=events, inbox=inbox, dead_letters=dead, replay_memory=seen)

    async def _topic_streams(self) -> AsyncIterator[Any]:
        offset = 0
        while True:
            page = await self._js.streams_info(offset=offset)
            if not page:
                return
            for info in page:
                if (info.config.name or "").startswith(f"{self._p}_topic_"):
                    yield info
            offset += len(page)

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(EventStoreError):
            self._call("could not release the delivery lease", self._release(), self._timeout)
        self._closed = True
        self._shutdown()
        with self._arrived:
            self._arrived.notify_all()

    async def _release(self) -> None:
        if self._lease_revision:
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await self._lease.delete(_LEASE_KEY, last=self._lease_revision)

    def _shutdown(self) -> None:
        nc = self._nc
        if nc is not None and not nc.is_closed:
            future = asyncio.run_coroutine_threadsafe(nc.close(), self._loop)
            with contextlib.suppress(Exception):
                future.result(self._timeout)

        async def finish() -> None:
            # Whatever is still running (a call given up on) ends before the loop does.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(finish(), self._loop).result(self._timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        if not self._thread.is_alive():
            self._loop.close()


def _cursor_value(cursor: Cursor) -> bytes:
    return json.dumps(
        {
            "topic": str(cursor.topic),
            "subscriber": str(cursor.subscriber),
            "acked": cursor.acked,
            "attempts": cursor.attempts,
            "next_attempt_ns": cursor.next_attempt_ns,
            "last_error": cursor.last_error,
            "dead_letters": cursor.dead_letters,
        }
    ).encode()


def _cursor_of(data: bytes) -> Cursor:
    value = json.loads(data)
    return Cursor(
        TopicId.parse(value["topic"]),
        SubsystemId.parse(value["subscriber"]),
        acked=value["acked"],
        attempts=value["attempts"],
        next_attempt_ns=value["next_attempt_ns"],
        last_error=value["last_error"],
        dead_letters=value["dead_letters"],
    )


def _inbox_event(subscriber: SubsystemId, topic: TopicId, msg: RawStreamMsg) -> InboxEvent:
    headers = msg.headers or {}
    assert msg.seq is not None
    return InboxEvent(
        msg.seq,
        subscriber,
        topic,
        int(headers[_SEQUENCE]),
        headers[_EVENT_ID],
        msg.data or b"",
        bytes.fromhex(headers[_DIGEST]),
        int(headers[_PUBLISHED]),
    )
