"""One exchange as a security server sees it, and its audit record.

Both sides fill an `ExchangeLog` while they work and turn it into one
`AuditRecord` when the answer is decided. The invariant both sides keep: the
record is appended (durably) *before* the answer's last message and its
status leave the server; if the append fails, the answer becomes UNAVAILABLE
and no held-back message is released (fail closed).

`finish` is the one place where every exchange ends, on both sides; it closes
the hop's trace span and tells the server's `ExchangeObserver` (its metrics),
which the endpoints pass in, so nothing else needs instrumenting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

import grpc
import structlog
from opentelemetry import trace

from spean.gateway import metadata
from spean.gateway.audit.bodies import RetainingDigest, seal_exchange
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.witness import TRAILER as CHECKPOINT_TRAILER
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import AuditError, SpeanError
from spean.gateway.server import tracing

log = structlog.get_logger("spean.exchange")

AUDIT_REFUSAL = "the security server cannot write its audit log; the exchange was refused"


class ExchangeLog:
    """Mutable notes about one exchange; becomes an immutable AuditRecord."""

    __slots__ = (
        "answered_ns",
        "client",
        "code",
        "exchange_id",
        "forwarded_ns",
        "message",
        "method",
        "peer_certificate",
        "purpose",
        "received_monotonic",
        "received_ns",
        "request",
        "request_sha256",
        "request_token",
        "response",
        "response_token",
        "sealed_to",
        "service",
        "side",
        "span",
        "user",
        "witnessed_checkpoint",
    )

    def __init__(self, side: Side, exchange_id: str, method: str, request: bytes) -> None:
        self.side = side
        self.exchange_id = exchange_id
        self.method = method
        self.request = request
        # Computed once: the token binds it and the audit record holds it.
        self.request_sha256 = request_digest(request)
        self.received_ns = time.time_ns()
        self.received_monotonic = time.monotonic()
        self.forwarded_ns = 0
        self.answered_ns = 0
        self.client = ""
        self.service = ""
        self.user = ""
        self.purpose = ""
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.request_token = ""
        self.response_token = ""
        self.peer_certificate = ""
        self.response = ResponseDigest()
        self.witnessed_checkpoint = b""
        self.sealed_to = b""  # auditor public key the bodies are sealed to, if kept
        self.span: trace.Span = trace.INVALID_SPAN

    def fail(self, error: SpeanError) -> None:
        """Remember the first failure; later ones do not overwrite it."""
        if self.code is grpc.StatusCode.OK:
            self.code = error.code
            self.message = error.message

    def keep_bodies(self, auditor_public_key: bytes) -> None:
        """Keep the response messages too; the bodies are sealed to the auditors in `finish`."""
        self.sealed_to = auditor_public_key
        self.response = RetainingDigest()

    def sealed_bodies(self, origin: str) -> bytes:
        """The bodies sealed to the auditors (gateway/audit/bodies.py), or b"" if not kept."""
        if not self.sealed_to or not isinstance(self.response, RetainingDigest):
            return b""
        return seal_exchange(
            self.request,
            self.response.messages,
            self.sealed_to,
            origin=origin,
            side=self.side.value,
            exchange_id=self.exchange_id,
        )

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK

    def record(self, origin: str) -> AuditRecord:
        self.answered_ns = time.time_ns()
        latency_us = int((time.monotonic() - self.received_monotonic) * 1_000_000)
        return AuditRecord(
            exchange_id=self.exchange_id,
            side=self.side,
            origin=origin,
            client=self.client,
            service=self.service,
            method=self.method,
            user=self.user,
            purpose=self.purpose,
            received_at_ns=self.received_ns,
            forwarded_at_ns=self.forwarded_ns,
            answered_at_ns=self.answered_ns,
            status=self.code.name,
            message=self.message,
            request_sha256=self.request_sha256,
            request_size=len(self.request),
            response_sha256=self.response.digest(),
            response_size=self.response.size,
            response_messages=self.response.count,
            request_token=self.request_token,
            response_token=self.response_token,
            peer_certificate_sha256=self.peer_certificate,
            latency_us=latency_us,
            witnessed_checkpoint=self.witnessed_checkpoint,
        )


class ExchangeObserver(Protocol):
    """Told about every exchange a server ends (spean.gateway.server.metrics.ServerMetrics)."""

    def audit_started(self) -> None: ...

    def exchange_finished(self, ex: ExchangeLog, audit_seconds: float, audit_ok: bool) -> None: ...


def append_record(
    ex: ExchangeLog, store: AuditStore, origin: str, observer: ExchangeObserver | None
) -> tuple[bool, float]:
    """Append `ex`'s record durably: whether it was written, and the seconds it took.

    A failure is logged here; the caller decides what the exchange becomes,
    then calls `report_finished` with these two values.
    """
    if observer is not None:
        observer.audit_started()
    started = time.perf_counter()
    try:
        store.append(ex.record(origin), bodies=ex.sealed_bodies(origin))
    except AuditError as exc:
        log.error("audit.append_failed", exchange_id=ex.exchange_id, error=exc.message)
        return False, time.perf_counter() - started
    return True, time.perf_counter() - started


def report_finished(
    ex: ExchangeLog, observer: ExchangeObserver | None, audit_seconds: float, audit_ok: bool
) -> None:
    """The one `exchange.completed` event and the observer's count of an ended exchange."""
    # The trace id ties this event to the hop's span, when tracing is on.
    correlation = {"trace_id": trace_id} if (trace_id := tracing.trace_id(ex)) else {}
    log.info(
        "exchange.completed",
        exchange_id=ex.exchange_id,
        side=ex.side.value,
        client=ex.client,
        service=ex.service,
        method=ex.method,
        status=ex.code.name,
        ms=round((time.monotonic() - ex.received_monotonic) * 1000, 3),
        **correlation,
    )
    if observer is not None:
        observer.exchange_finished(ex, audit_seconds, audit_ok)


def finish(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    held_back: bytes | None,
    sign: Callable[[ExchangeLog], str] | None = None,
    observer: ExchangeObserver | None = None,
) -> Iterator[bytes]:
    """Sign, write the record durably, then release the last message and the status.

    `sign` (the provider's) makes the response token over the final status;
    it goes into the record and the trailers. If the record cannot be made
    durable, the answer becomes an unsigned UNAVAILABLE and the held-back
    message is dropped: nothing leaves unlogged. Yields at most one message.
    """
    if sign is not None:
        ex.response_token = sign(ex)
    audit_ok, audit_seconds = append_record(ex, store, origin, observer)
    if not audit_ok:
        ex.code = grpc.StatusCode.UNAVAILABLE
        ex.message = AUDIT_REFUSAL
        held_back = None
        if sign is not None:
            ex.response_token = ""
    trailing: list[tuple[str, str | bytes]] = [(metadata.EXCHANGE_ID, ex.exchange_id)]
    if ex.response_token:
        trailing.append((metadata.RESPONSE_TOKEN, ex.response_token))
        latest = store.latest_checkpoint() if sign is not None else None
        if latest is not None:
            # Cross-witnessing (gateway/audit/witness.py): the provider's latest signed tree head.
            trailing.append((CHECKPOINT_TRAILER, latest.note))
    context.set_trailing_metadata(tuple(trailing))
    tracing.end_hop(ex)
    report_finished(ex, observer, audit_seconds, audit_ok)
    if ex.ok:
        if held_back is not None:
            yield held_back
        return
    context.set_code(ex.code)
    context.set_details(ex.message)


def finish_cancelled(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    reason: str,
    observer: ExchangeObserver | None = None,
) -> None:
    """Record an exchange whose caller went away mid-answer; nothing more is released."""
    ex.code, ex.message = grpc.StatusCode.CANCELLED, reason
    for _ in finish(ex, store, origin, context, None, observer=observer):
        pass
