"""EventDelivery/Deliver: a subscriber's security server receives one event.

Registered on the provider endpoint (mutual TLS between security servers).
The checks are `event_admission.admit_delivery` (protocol.md 13.3, checks 1
to 9) and the store's (10: a replayed event token; 11: an event id stored
with other bytes). Then, in this order: the event is committed to the inbox
(once per subscriber and event id), the audit record (kind
``EVENT_DELIVERY``, exchange id = the token's ``jti``, the ack token in it)
is made durable, and only then is the signed ack token returned. A refusal is
audited with the status the provider sees; nothing is acknowledged without
both the event and its record on stable storage.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import grpc
import structlog

from spean.gateway.audit.bodies import seal_event
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.errors import AuditError, SpeanError
from spean.gateway.event_admission import DeliveryRules, admit_delivery
from spean.gateway.eventstore.store import Delivery, EventStore
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.server.peer import peer_certificate_pem
from spean.gateway.server.pubsub_apps import auditor_key_for_events
from spean.gateway.token_events import AckClaims, sign_ack
from spean.gateway.tokens import MAX_TOKEN_SIZE, TokenSigner, new_exchange_id
from spean.v1 import pubsub_pb2 as pb

log = structlog.get_logger("spean.pubsub")

EVENT_DELIVERY = "spean.v1.EventDelivery"
DELIVER = f"/{EVENT_DELIVERY}/Deliver"


class EventReceiver:
    """The subscriber side of a delivery (see the module docstring)."""

    def __init__(
        self,
        *,
        origin: str,
        configuration: Callable[[], GlobalConfiguration],
        signer: Callable[[], TokenSigner],
        rules: DeliveryRules,
        store: EventStore,
        audit: AuditStore,
        token_lifetime: int,
        seal_bodies: bool = False,
    ) -> None:
        self._origin = origin
        self._configuration = configuration
        self._signer = signer
        self.rules = rules
        self._store = store
        self._audit = audit
        self._lifetime = token_lifetime
        self._seal_bodies = seal_bodies  # pubsub.audit_bodies: encrypted

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {
            "Deliver": grpc.unary_unary_rpc_method_handler(
                self.deliver,
                request_deserializer=pb.DeliverRequest.FromString,
                response_serializer=pb.DeliverResponse.SerializeToString,
            )
        }

    def _current(self) -> GlobalConfiguration | SpeanError:
        try:
            return self._configuration()
        except SpeanError as exc:
            return exc

    def deliver(
        self, request: pb.DeliverRequest, context: grpc.ServicerContext
    ) -> pb.DeliverResponse:
        received = time.time_ns()
        conf = self._current()
        admitted = admit_delivery(
            self.rules,
            conf,
            peer_pem=peer_certificate_pem(context),
            token=request.event_token,
            payload=request.payload,
            now=dt.datetime.now(dt.UTC),
        )
        claims = admitted.claims
        record = AuditRecord(
            # A delivery refused before its token verified gets an id of its own.
            exchange_id=claims.attempt_id if claims else new_exchange_id(),
            side=Side.CONSUMER,
            origin=self._origin,
            received_at_ns=received,
            status="OK",
            kind=Kind.EVENT_DELIVERY,
            client=str(claims.subscriber) if claims else "",
            service=str(claims.topic.owner) if claims else "",
            topic=claims.topic.name if claims else "",
            event_id=claims.event_id if claims else "",
            sequence=claims.sequence if claims else 0,
            # Kept as presented, but never more than a token can be.
            event_token=request.event_token if len(request.event_token) <= MAX_TOKEN_SIZE else "",
            request_sha256=admitted.payload_sha256,
            request_size=len(request.payload),
            peer_certificate_sha256=admitted.peer_sha256,
        )
        duplicate = False
        try:
            if admitted.refusal is not None:
                raise admitted.refusal
            assert claims is not None
            assert not isinstance(conf, SpeanError)  # admitted: it had a configuration
            auditor = auditor_key_for_events(conf) if self._seal_bodies else b""
            stored = self._store.receive(
                Delivery(
                    subscriber=claims.subscriber,
                    topic=claims.topic,
                    sequence=claims.sequence,
                    event_id=claims.event_id,
                    payload=request.payload,
                    event_sha256=claims.event_sha256,
                    published_at_ms=claims.published_at_ms,
                    issuer=claims.issuer,
                    attempt_id=claims.attempt_id,
                    token_expires_at=claims.expires_at,
                )
            )
            duplicate = stored.duplicate
            signer = self._signer()
            ack = sign_ack(
                signer,
                AckClaims.answering(
                    claims, claims.subscriber.member, int(time.time()), self._lifetime
                ),
            )
        except SpeanError as exc:
            self._finish(_ended(record, exc.code.name, exc.message), context)
            log.info(
                "event.delivery_refused",
                event_id=record.event_id,
                topic=record.topic,
                status=exc.code.name,
                error=exc.message,
            )
            context.abort(exc.code, exc.message)
        sealed = b""
        if auditor:
            sealed = seal_event(
                request.payload,
                auditor,
                origin=self._origin,
                side=record.side.value,
                exchange_id=record.exchange_id,
            )
        self._finish(_ended(replace(record, ack_token=ack), "OK", ""), context, sealed)
        log.info(
            "event.received",
            topic=str(claims.topic),
            subscriber=str(claims.subscriber),
            sequence=claims.sequence,
            event_id=claims.event_id,
            duplicate=duplicate,
        )
        return pb.DeliverResponse(ack_token=ack, duplicate=duplicate)

    def _finish(
        self, record: AuditRecord, context: grpc.ServicerContext, bodies: bytes = b""
    ) -> None:
        try:
            self._audit.append(record, bodies=bodies)
        except AuditError as exc:
            log.error("audit.append_failed", exchange_id=record.exchange_id, error=exc.message)
            context.abort(exc.code, exc.message)


def _ended(record: AuditRecord, status: str, message: str) -> AuditRecord:
    answered = time.time_ns()
    return replace(
        record,
        status=status,
        message=message,
        answered_at_ns=answered,
        latency_us=(answered - record.received_at_ns) // 1000,
    )
