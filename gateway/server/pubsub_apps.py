"""Publish, Subscribe and Ack: the services this member's own applications call.

Registered on the consumer endpoint (docs/protocol.md, sections 13.2 and
13.4). Each call names its subsystem in the ``spean-client`` header and is
identified exactly as an exchange is (`ConsumerEndpoint.check_client`).

Guarantees:
- `Publish` answers only after the event is durable in the event store and
  its audit record (kind ``EVENT_PUBLISH``) is durable in the audit log; a
  refused publish is audited too, and answered with its status.
- `Subscribe` hands out the client's events of one topic in inbox order,
  starting after the last acknowledged position, and then waits for more,
  until the server stops (`close_streams`: UNAVAILABLE, subscribe again).
- `Ack` returns only after the acknowledgement and its audit record
  (``EVENT_ACK``) are durable; an acknowledged event is never handed out
  again to that client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import structlog

from spean.gateway import metadata
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.errors import (
    AuditError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SpeanError,
)
from spean.gateway.events import Subscriptions, TopicAccess, TopicId, event_digest, parse_topic_name
from spean.gateway.eventstore.store import EventStore
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.tokens import is_exchange_id, new_exchange_id
from spean.v1 import pubsub_pb2 as pb

log = structlog.get_logger("spean.pubsub")

PUBLISHER = "spean.v1.Publisher"
SUBSCRIBER = "spean.v1.Subscriber"
_BATCH = 64
_IDLE_WAIT_S = 0.5

ClientCheck = Callable[[SubsystemId, grpc.ServicerContext], str]


class PubSubApps:
    """Publisher and Subscriber, answered by this security server for its applications."""

    def __init__(
        self,
        *,
        origin: str,
        configuration: Callable[[], GlobalConfiguration],
        check_client: ClientCheck,
        store: EventStore,
        audit: AuditStore,
        access: TopicAccess,
        subscriptions: Subscriptions,
        max_event_bytes: int,
        max_header_bytes: int,
        published: Callable[[], None],
    ) -> None:
        self._origin = origin
        self._configuration = configuration
        self._check_client = check_client
        self._store = store
        self._audit = audit
        self.access = access
        self.subscriptions = subscriptions
        self._max_event_bytes = max_event_bytes
        self._max_header_bytes = max_header_bytes
        self._published = published
        self._closing = threading.Event()

    def close_streams(self) -> None:
        """End every open Subscribe stream (the server is stopping): UNAVAILABLE, so the
        application subscribes again, after the last position it acknowledged."""
        self._closing.set()

    def publisher_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {
            "Publish": grpc.unary_unary_rpc_method_handler(
                self.publish,
                request_deserializer=pb.PublishRequest.FromString,
                response_serializer=pb.PublishResponse.SerializeToString,
            )
        }

    def subscriber_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.subscribe,
                request_deserializer=pb.SubscribeRequest.FromString,
                response_serializer=pb.Event.SerializeToString,
            ),
            "Ack": grpc.unary_unary_rpc_method_handler(
                self.ack,
                request_deserializer=pb.AckRequest.FromString,
                response_serializer=pb.AckResponse.SerializeToString,
            ),
        }

    def _client(self, context: grpc.ServicerContext) -> tuple[SubsystemId, str]:
        headers = metadata.parse_meta_headers(context.invocation_metadata(), self._max_header_bytes)
        client = headers.require_client()
        return client, self._check_client(client, context)

    # -- Publish --------------------------------------------------------------------------

    def publish(
        self, request: pb.PublishRequest, context: grpc.ServicerContext
    ) -> pb.PublishResponse:
        exchange_id = new_exchange_id()
        context.set_trailing_metadata(((metadata.EXCHANGE_ID, exchange_id),))
        received = time.time_ns()
        digest = event_digest(request.payload)
        record = AuditRecord(
            exchange_id=exchange_id,
            side=Side.PROVIDER,
            origin=self._origin,
            received_at_ns=received,
            status="OK",
            kind=Kind.EVENT_PUBLISH,
            request_sha256=digest,
            request_size=len(request.payload),
        )
        try:
            client, thumbprint = self._client(context)
            record = _with(record, client=str(client), service=str(client))
            record = _with(record, peer_certificate_sha256=thumbprint)
            topic = TopicId(client, parse_topic_name(request.topic))
            record = _with(record, topic=topic.name)
            if self._configuration().topic(topic) is None:
                raise NotFound(
                    f"topic {topic} is not published in the global configuration; the"
                    f" authority adds it with spean authority add-topic"
                )
            event_id = _event_id(request.event_id)
            record = _with(record, event_id=event_id)
            if len(request.payload) > self._max_event_bytes:
                raise ResourceExhausted(
                    f"event is {len(request.payload)} bytes, more than the"
                    f" {self._max_event_bytes} allowed (limits.max_message_bytes)"
                )
            appended = self._store.append(
                topic,
                event_id,
                request.payload,
                digest,
                received // 1_000_000,
                self.access.subscribers(topic),
            )
            record = _with(record, sequence=appended.sequence)
        except SpeanError as exc:
            self._record(_refused(record, exc), context)
            log.info("event.publish_refused", status=exc.code.name, error=exc.message)
            context.abort(exc.code, exc.message)
        self._record(_with(record, answered_at_ns=time.time_ns()), context)
        self._published()
        log.info(
            "event.published",
            topic=str(topic),
            event_id=event_id,
            sequence=appended.sequence,
            duplicate=appended.duplicate,
        )
        return pb.PublishResponse(
            event_id=event_id, sequence=appended.sequence, duplicate=appended.duplicate
        )

    def _record(self, record: AuditRecord, context: grpc.ServicerContext) -> None:
        """Make `record` durable; without it there is no answer (fail closed)."""
        latency = max(0, ((record.answered_at_ns or time.time_ns()) - record.received_at_ns))
        try:
            self._audit.append(_with(record, latency_us=latency // 1000))
        except AuditError as exc:
            log.error("audit.append_failed", exchange_id=record.exchange_id, error=exc.message)
            context.abort(exc.code, exc.message)

    # -- Subscribe and Ack ----------------------------------------------------------------

    def _subscribed(self, context: grpc.ServicerContext, text: str) -> tuple[SubsystemId, TopicId]:
        client, _ = self._client(context)
        topic = TopicId.parse(text)
        if not self.subscriptions.takes(client, topic):
            raise NotFound(
                f"{client} has not subscribed to {topic} on this server (pubsub.subscriptions)"
            )
        return client, topic

    def subscribe(
        self, request: pb.SubscribeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Event]:
        try:
            client, topic = self._subscribed(context, request.topic)
            position = self._store.acked_position(client, topic)
            info = self._configuration().topic(topic)
        except SpeanError as exc:
            context.abort(exc.code, exc.message)
        event_type = info.event_type if info is not None else ""
        log.info("event.subscribed", client=str(client), topic=str(topic), after=position)
        while context.is_active():
            if self._closing.is_set():
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "the security server is stopping; subscribe again to resume",
                )
            try:
                batch = self._store.read_inbox(client, topic, position, _BATCH)
            except SpeanError as exc:
                context.abort(exc.code, exc.message)
            if not batch:
                self._store.wait_for_inbox(_IDLE_WAIT_S)
                continue
            for event in batch:
                yield pb.Event(
                    position=event.position,
                    event_id=event.event_id,
                    topic=str(topic),
                    sequence=event.sequence,
                    published_at_ns=event.published_at_ms * 1_000_000,
                    event_type=event_type,
                    payload=event.payload,
                    event_sha256=event.event_sha256,
                )
                position = event.position

    def ack(self, request: pb.AckRequest, context: grpc.ServicerContext) -> pb.AckResponse:
        exchange_id = new_exchange_id()
        context.set_trailing_metadata(((metadata.EXCHANGE_ID, exchange_id),))
        received = time.time_ns()
        try:
            client, topic = self._subscribed(context, request.topic)
            if request.position < 1:
                raise InvalidArgument("position must be at least 1")
            event = self._store.ack(client, topic, request.position)
        except SpeanError as exc:
            context.abort(exc.code, exc.message)
        record = AuditRecord(
            exchange_id=exchange_id,
            side=Side.CONSUMER,
            origin=self._origin,
            received_at_ns=received,
            answered_at_ns=time.time_ns(),
            status="OK",
            kind=Kind.EVENT_ACK,
            client=str(client),
            service=str(topic.owner),
            topic=topic.name,
            event_id=event.event_id,
            sequence=event.sequence,
            request_sha256=event.event_sha256,
            request_size=len(event.payload),
        )
        self._record(record, context)
        acked = self._store.acked_position(client, topic)
        return pb.AckResponse(acked_position=acked)


def _event_id(text: str) -> str:
    """The publisher's event id, or a new one when it named none."""
    if not text:
        return new_exchange_id()
    if not is_exchange_id(text):
        raise InvalidArgument(
            f"event id {text[:40]!r} must be a lower-case UUID4"
            " (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx), or empty to let the server make one"
        )
    return text


def _with(record: AuditRecord, **changes: Any) -> AuditRecord:
    return replace(record, **changes)


def _refused(record: AuditRecord, exc: SpeanError) -> AuditRecord:
    return _with(record, status=exc.code.name, message=exc.message, answered_at_ns=time.time_ns())
