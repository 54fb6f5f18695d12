"""What a security server notes about one exchange while it runs.

An `ExchangeLog` is created when a call arrives, filled in as the exchange
goes (who calls, what is answered, the tokens), and turned into the
immutable `AuditRecord` that `spean.gateway.server.exchange.finish` appends
before the answer is released. It lives in its own module so that tracing
and metrics read it without importing the code that writes records.
"""

from __future__ import annotations

import time

import grpc
from opentelemetry import trace

from spean.gateway.audit.bodies import RetainingDigest, seal_exchange
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import SpeanError


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
