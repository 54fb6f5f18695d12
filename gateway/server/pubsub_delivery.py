"""The delivery loop: the provider's server pushes each topic's events to its subscribers.

Theory of operation. One thread looks, every `delivery.poll_ms` (or at once
when an event was published), at every delivery cursor in the event store.
A cursor whose next event exists and whose attempt is due is handed to a small
pool, at most one attempt per cursor at a time, which is what keeps a topic's
events in order for each subscriber. An attempt:

1. reads event ``acked + 1`` and signs a fresh event token for it (a new
   ``jti`` per attempt, so the subscriber's replay memory never refuses a
   retry);
2. calls EventDelivery/Deliver on the subscriber's servers in their listed
   order, over the same mutual TLS channels the consumer side uses, until one
   answers (an unreachable server is skipped; an answer, refusal or not, ends
   the attempt);
3. verifies the ack token against the event token (`token_events.verify_ack`);
4. appends the attempt's audit record (kind ``EVENT_DELIVERY``, provider side);
5. only then moves the cursor: past the event when acknowledged, else to
   the next backoff or the dead-letter state (`events.Cursor.failed`).

A crash anywhere before step 5 repeats the attempt after restart; the
subscriber stores the event once and acknowledges it again.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace

import grpc
import structlog
from google.protobuf.message import DecodeError

from spean.gateway import trust
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.errors import AuditError, SpeanError
from spean.gateway.events import Cursor, DeliveryPolicy, TopicAccess
from spean.gateway.eventstore.store import DeadLetter, EventStore, StoredEvent
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.server.consumer import ProviderChannels
from spean.gateway.server.pubsub_receive import DELIVER
from spean.gateway.token_events import EventClaims, sign_event, verify_ack
from spean.gateway.tokens import MAX_TOKEN_SIZE, TokenSigner, new_exchange_id
from spean.v1 import pubsub_pb2 as pb

log = structlog.get_logger("spean.pubsub")

_PARALLEL = 8
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class DeliveryLoop:
    """Pushes events to subscribers until `stop` (see the module docstring)."""

    def __init__(
        self,
        *,
        origin: str,
        configuration: Callable[[], GlobalConfiguration],
        signer: Callable[[], TokenSigner],
        channels: ProviderChannels,
        store: EventStore,
        audit: AuditStore,
        access: Callable[[], TopicAccess],
        policy: DeliveryPolicy,
        poll_s: float,
        token_lifetime: int,
    ) -> None:
        self._origin = origin
        self._configuration = configuration
        self._signer = signer
        self._channels = channels
        self._store = store
        self._audit = audit
        self._access = access
        self._policy = policy
        self._poll_s = poll_s
        self._lifetime = token_lifetime
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(_PARALLEL, thread_name_prefix="spean-delivery")
        self._thread = threading.Thread(target=self._run, name="spean-delivery-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (an event was just published)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self._round()
            except SpeanError as exc:
                # The store or the configuration is unusable now: nothing moves, try again.
                log.warning("delivery.round_failed", status=exc.code.name, error=exc.message)
            self._wake.wait(self._poll_s)

    def _round(self) -> None:
        if not self._store.leads_delivery():
            return  # another process of a shared store delivers
        now = time.time_ns()
        access = self._access()
        heads: dict[object, int] = {}
        for cursor in self._store.cursors():
            if not access.allows(cursor.subscriber, cursor.topic):
                continue  # the right was withdrawn: nothing more is delivered
            head = heads.get(cursor.topic)
            if head is None:
                head = heads[cursor.topic] = self._store.head(cursor.topic)
            key = (str(cursor.topic), str(cursor.subscriber))
            if not cursor.due(head, now):
                continue
            with self._lock:
                if key in self._in_flight:
                    continue
                self._in_flight.add(key)
            self._pool.submit(self._attempt_once, cursor, key)

    def _attempt_once(self, cursor: Cursor, key: tuple[str, str]) -> None:
        try:
            self._attempt(cursor)
        except SpeanError as exc:
            log.warning("delivery.attempt_failed", status=exc.code.name, error=exc.message)
        finally:
            with self._lock:
                self._in_flight.discard(key)
            if not self._stopped.is_set():
                self._wake.set()  # the next event of this cursor may be due now

    def _attempt(self, cursor: Cursor) -> None:
        event = self._store.event(cursor.topic, cursor.next_sequence)
        if event is None:
            return
        conf = self._configuration()
        now = int(time.time())
        claims = EventClaims(
            issuer=cursor.topic.owner.member,
            topic=cursor.topic,
            subscriber=cursor.subscriber,
            sequence=event.sequence,
            event_id=event.event_id,
            event_sha256=event.event_sha256,
            published_at_ms=event.published_at_ms,
            attempt_id=new_exchange_id(),
            issued_at=now,
            expires_at=now + self._lifetime,
        )
        token = sign_event(self._signer(), claims)
        record = AuditRecord(
            exchange_id=claims.attempt_id,
            side=Side.PROVIDER,
            origin=self._origin,
            received_at_ns=time.time_ns(),
            status="OK",
            kind=Kind.EVENT_DELIVERY,
            client=str(cursor.subscriber),
            service=str(cursor.topic.owner),
            topic=cursor.topic.name,
            event_id=event.event_id,
            sequence=event.sequence,
            event_token=token,
            request_sha256=event.event_sha256,
            request_size=len(event.payload),
        )
        status, message, ack, peer = self._deliver(conf, claims, token, event)
        answered = time.time_ns()
        record = _ended(record, status, message, ack, peer, answered)
        try:
            self._audit.append(record)
        except AuditError as exc:
            # Unrecorded, so not done: the cursor stays and the attempt is repeated.
            log.error("audit.append_failed", exchange_id=record.exchange_id, error=exc.message)
            status, message = exc.code.name, exc.message
        if status == "OK":
            self._store.save_cursor(cursor.acknowledged(event.sequence))
            log.info(
                "event.delivered",
                topic=str(cursor.topic),
                subscriber=str(cursor.subscriber),
                sequence=event.sequence,
                event_id=event.event_id,
            )
            return
        failed, dead = cursor.failed(
            self._policy, f"{status}: {message}", answered, random.random()
        )
        letter = None
        if dead:
            letter = DeadLetter(
                cursor.topic,
                cursor.subscriber,
                event.sequence,
                cursor.attempts + 1,
                failed.last_error,
                answered,
            )
        self._store.save_cursor(failed, letter)
        log.warning(
            "event.delivery_failed",
            topic=str(cursor.topic),
            subscriber=str(cursor.subscriber),
            sequence=event.sequence,
            attempts=cursor.attempts + 1,
            dead_lettered=dead,
            status=status,
            error=message,
        )

    def _deliver(
        self, conf: GlobalConfiguration, claims: EventClaims, token: str, event: StoredEvent
    ) -> tuple[str, str, str, str]:
        """(status, message, ack token, peer thumbprint) of one attempt."""
        servers = conf.servers_for(claims.subscriber)
        if not servers:
            return "NOT_FOUND", f"subscriber {claims.subscriber} is hosted on no server", "", ""
        request = pb.DeliverRequest(event_token=token, payload=event.payload).SerializeToString()
        status, message = "UNAVAILABLE", ""
        timeout = self._policy.attempt_timeout_ms / 1000
        for server in servers:
            call = self._channels.unary_unary(conf, server, DELIVER)
            try:
                answer = call(request, timeout=timeout)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
                details = error.details() if isinstance(error, grpc.Call) else ""
                status, message = code.name, f"{server.id}: {details or code.name}"
                if code in _UNREACHABLE:
                    continue
                return status, message, "", server.tls_certificate_sha256
            try:
                reply = pb.DeliverResponse.FromString(answer)
            except DecodeError:
                return "UNAUTHENTICATED", f"{server.id} answered no DeliverResponse", "", ""
            try:
                verify_ack(
                    reply.ack_token,
                    trust.key_resolver(conf, dt.datetime.now(dt.UTC)),
                    now=int(time.time()),
                    expected=claims,
                )
            except SpeanError as exc:
                return (
                    exc.code.name,
                    f"{server.id}: {exc.message}",
                    reply.ack_token[:MAX_TOKEN_SIZE],
                    "",
                )
            return "OK", "", reply.ack_token, server.tls_certificate_sha256
        return status, message, "", ""


def _ended(
    record: AuditRecord, status: str, message: str, ack: str, peer: str, answered: int
) -> AuditRecord:
    return replace(
        record,
        status=status,
        message=message,
        ack_token=ack,
        peer_certificate_sha256=peer,
        forwarded_at_ns=record.received_at_ns,
        answered_at_ns=answered,
        latency_us=(answered - record.received_at_ns) // 1000,
    )
