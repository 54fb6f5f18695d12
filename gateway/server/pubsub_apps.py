"""Publish, Subscribe and Ack: the services this member's own applications call.

Registered on the consumer endpoint (docs/protocol.md, sections 13.2 and
13.4). Each call names its subsystem in the ``spean-client`` header and is
identified exactly as an exchange is (`ConsumerEndpoint.check_client`).

Guarantees:
- `Publish` answers only after the event is durable in the event store and
  its audit record (kind ``EVENT_PUBLISH``) is durable in the audit log; a
  refused publish is audited too, and answered with its status. A payload
  that is not a message of the topic's event type is refused
  (`pubsub_types.EventTypes.check`). The webhook (`pubsub_webhook`) and the
  outbox publish through the same `publish_event`.
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
from spean.gateway.audit.bodies import auditor_key, seal_event
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.errors import (
    AuditError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SpeanError,
)
from spean.gateway.events import Subscriptions, TopicAccess, TopicId, event_digest, parse_topic_name
from spean.gateway.eventstore.store import EventStore
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.pubsub_types import EventTypes
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
        pushed: frozenset[tuple[SubsystemId, TopicId]] = frozenset(),
        seal_bodies: bool = False,
    ) -> None:
        # pubsub.audit_bodies: encrypted: each published event's bytes are sealed to the
        # federation's auditor key beside its record.
        self._seal_bodies = seal_bodies
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
        self.types = EventTypes()
        self._pushed = pushed

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
        try:
            return self.publish_event(
                exchange_id,
                lambda: self._client(context),
                request.topic,
                request.event_id,
                request.payload,
            )
        except SpeanError as exc:
            context.abort(exc.code, exc.message)

    def publish_event(
        self,
        exchange_id: str,
        identify: Callable[[], tuple[SubsystemId, str]],
        topic_name: str,
        event_id: str,
        body: bytes,
        *,
        body_is_json: bool = False,
    ) -> pb.PublishResponse:
        """The one publish path (gRPC Publish, the webhook, the outbox): identify the
        publisher, check the topic, the event id, the size and the payload's type,
        append durably, audit; answer only then.

        `identify` gives the publishing subsystem and the thumbprint of its
        certificate, or raises. A `body_is_json` body is the event as protobuf
        JSON, stored as the topic's type's binary form. Every refusal is audited
        (kind ``EVENT_PUBLISH``, its status) and raised as its `SpeanError`; an
        audit log that cannot record raises its `AuditError` (fail closed).
        """
        received = time.time_ns()
        record = AuditRecord(
            exchange_id=exchange_id,
            side=Side.PROVIDER,
            origin=self._origin,
            received_at_ns=received,
            status="OK",
            kind=Kind.EVENT_PUBLISH,
            request_sha256=event_digest(body),
            request_size=len(body),
        )
        payload = body
        try:
            client, thumbprint = identify()
            record = _with(record, client=str(client), service=str(client))
            record = _with(record, peer_certificate_sha256=thumbprint)
            topic = TopicId(client, parse_topic_name(topic_name))
            record = _with(record, topic=topic.name)
            conf = self._configuration()  # one version for the whole publish
            info = conf.topic(topic)
            if info is None:
                raise NotFound(
                    f"topic {topic} is not published in the global configuration; the"
                    f" authority adds it with spean authority add-topic"
                )
            event_id = _event_id(event_id)
            record = _with(record, event_id=event_id)
            if body_is_json:
                payload = self.types.from_json(info, body)
                digest = event_digest(payload)
                record = _with(record, request_sha256=digest, request_size=len(payload))
            if len(payload) > self._max_event_bytes:
                raise ResourceExhausted(
                    f"event is {len(payload)} bytes, more than the"
                    f" {self._max_event_bytes} allowed (limits.max_message_bytes)"
                )
            if not body_is_json:
                self.types.check(info, payload)
            # Checked before the event is stored: an event that could not be recorded
            # as configured is refused, not kept (fail closed).
            auditor = auditor_key_for_events(conf) if self._seal_bodies else b""
            appended = self._store.append(
                topic,
                event_id,
                payload,
                record.request_sha256,
                received // 1_000_000,
                self.access.subscribers(topic),
            )
            record = _with(record, sequence=appended.sequence)
        except SpeanError as exc:
            self._audit_durably(_refused(record, exc))
            log.info("event.publish_refused", status=exc.code.name, error=exc.message)
            raise
        sealed = b""
        if auditor:
            sealed = seal_event(
                payload,
                auditor,
                origin=self._origin,
                side=record.side.value,
                exchange_id=record.exchange_id,
            )
        self._audit_durably(_with(record, answered_at_ns=time.time_ns()), sealed)
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

    def _audit_durably(self, record: AuditRecord, bodies: bytes = b"") -> None:
        latency = max(0, ((record.answered_at_ns or time.time_ns()) - record.received_at_ns))
        try:
            self._audit.append(_with(record, latency_us=latency // 1000), bodies=bodies)
        except AuditError as exc:
            log.error("audit.append_failed", exchange_id=record.exchange_id, error=exc.message)
            raise

    # -- Subscribe and Ack ----------------------------------------------------------------

    def _subscribed(self, context: grpc.ServicerContext, text: str) -> tuple[SubsystemId, TopicId]:
        client, _ = self._client(context)
        topic = TopicId.parse(text)
        if not self.subscriptions.takes(client, topic):
            raise NotFound(
                f"{client} has not subscribed to {topic} on this server (pubsub.subscriptions)"
            )
        if (client, topic) in self._pushed:
            raise FailedPrecondition(
                f"{client} takes {topic} by webhook delivery (pubsub.push): this server POSTs"
                " each event to its URL and acknowledges it there, so it is not subscribed here"
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
        try:
            client, topic = self._subscribed(context, request.topic)
            if request.position < 1:
                raise InvalidArgument("position must be at least 1")
            acked = self.ack_event(exchange_id, client, topic, request.position)
        except SpeanError as exc:
            context.abort(exc.code, exc.message)
        return pb.AckResponse(acked_position=acked)

    def ack_event(
        self, exchange_id: str, client: SubsystemId, topic: TopicId, position: int
    ) -> int:
        """The one acknowledgement path (gRPC Ack, webhook delivery): every event of
        `client` on `topic` up to `position` acknowledged durably, then its audit
        record (kind ``EVENT_ACK``); the acknowledged position."""
        received = time.time_ns()
        event = self._store.ack(client, topic, position)
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
        self._audit_durably(record)
        return self._store.acked_position(client, topic)


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


def auditor_key_for_events(conf: GlobalConfiguration) -> bytes:
    """The key event bytes are sealed to; without one the event is refused (fail closed)."""
    return auditor_key(
        conf.auditor_public_key,
        conf.version,
        "this server keeps encrypted event bodies (pubsub.audit_bodies: encrypted)",
    )


def _refused(record: AuditRecord, exc: SpeanError) -> AuditRecord:
    return _with(record, status=exc.code.name, message=exc.message, answered_at_ns=time.time_ns())
