"""What a security server notes about one exchange while it runs, stage by stage.

An `ExchangeLog` is created when a call arrives and moves through the stages
of `spean.gateway.lifecycle` (received, admitted, forwarded, answered,
recorded, released; or refused): each method below is one move, and the
only way its fields change. What it learnt becomes the immutable
`AuditRecord` that `spean.gateway.server.exchange` appends before the answer
is released. It lives in its own module so that tracing and metrics read it
without importing the code that writes records.
"""

from __future__ import annotations

import time

import grpc
from opentelemetry import trace

from spean.gateway.admission import ConsumerAdmission, ProviderAdmission
from spean.gateway.audit.bodies import RetainingDigest, seal_exchange
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import Internal, SpeanError
from spean.gateway.lifecycle import Stage, advance


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
        "stage",
        "subject",
        "subject_pseudonym",
        "user",
        "witnessed_checkpoint",
    )

    def __init__(self, side: Side, exchange_id: str, method: str, request: bytes) -> None:
        self.stage = Stage.RECEIVED
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
        # Consumer: the data subject to forward (protocol.md 4.4); never recorded or logged.
        self.subject = ""
        self.subject_pseudonym = b""
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.request_token = ""
        self.response_token = ""
        self.peer_certificate = ""
        self.response = ResponseDigest()
        self.witnessed_checkpoint = b""
        self.sealed_to = b""  # auditor public key the bodies are sealed to, if kept
        self.span: trace.Span = trace.INVALID_SPAN

    # -- what the checks learnt (also on a refusal) ------------------------------

    def learn_consumer(self, admission: ConsumerAdmission) -> None:
        """Note the caller as the consumer's checks found it."""
        if admission.headers is not None:
            headers = admission.headers
            self.client, self.service = str(headers.client), str(headers.service)
            self.user, self.purpose = headers.user, headers.purpose
            self.subject = headers.subject
        self.peer_certificate = admission.peer_certificate

    def learn_provider(self, admission: ProviderAdmission) -> None:
        """Note the caller as the provider's checks found it: claimed, then verified."""
        if admission.exchange_id is not None:
            self.exchange_id = admission.exchange_id
        self.peer_certificate = admission.peer_certificate
        self.request_token = admission.request_token
        self.subject_pseudonym = admission.subject_pseudonym
        if admission.claims is not None:
            claims = admission.claims
            self.client, self.service = str(claims.client), str(claims.audience)
            self.user, self.purpose = claims.user, claims.purpose

    # -- the moves ----------------------------------------------------------------

    def admit(self, request_token: str = "") -> None:
        """Every check passed; the consumer gives the request token it signed."""
        self.stage = advance(self.stage, Stage.ADMITTED)
        if request_token:
            self.request_token = request_token

    def forward(self) -> None:
        """Handed on: to a provider server (consumer) or to the adapter (provider)."""
        self.stage = advance(self.stage, Stage.FORWARDED)
        self.forwarded_ns = time.time_ns()

    def answer(
        self,
        response_token: str = "",
        witnessed_checkpoint: bytes = b"",
        subject_pseudonym: bytes = b"",
    ) -> None:
        """The answer is complete (on the consumer: its response token verified).

        On the consumer, `subject_pseudonym` is the verified token's ``sbj``.
        """
        self.stage = advance(self.stage, Stage.ANSWERED)
        if response_token:
            self.response_token = response_token
        self.witnessed_checkpoint = witnessed_checkpoint
        if subject_pseudonym:
            self.subject_pseudonym = subject_pseudonym

    def refuse(
        self,
        error: SpeanError,
        response_token: str = "",
        witnessed_checkpoint: bytes = b"",
        subject_pseudonym: bytes = b"",
    ) -> None:
        """Refused: the first refusal is kept; later ones do not overwrite it.

        On the consumer, `response_token` and `witnessed_checkpoint` are what
        the provider's answer carried, kept for the record when the provider
        said no or its answer could not be trusted; `subject_pseudonym` is the
        ``sbj`` of a token that verified (the provider's signed refusal).
        """
        if subject_pseudonym:
            self.subject_pseudonym = subject_pseudonym
        self.stage = advance(self.stage, Stage.REFUSED)
        if self.code is grpc.StatusCode.OK:
            self.code = error.code
            self.message = error.message
        if response_token:
            self.response_token = response_token
        if witnessed_checkpoint:
            self.witnessed_checkpoint = witnessed_checkpoint

    def cancel(self, reason: str) -> None:
        """The caller went away mid-answer: CANCELLED, whatever was decided before."""
        self.stage = advance(self.stage, Stage.REFUSED)
        self.code, self.message = grpc.StatusCode.CANCELLED, reason

    def sign(self, response_token: str) -> None:
        """The provider's response token over the final status and the messages sent."""
        if self.stage not in (Stage.ANSWERED, Stage.REFUSED):
            raise Internal(f"an exchange {self.stage.value} has no final status to sign")
        self.response_token = response_token

    def recorded(self) -> None:
        """The audit record is durable."""
        self.stage = advance(self.stage, Stage.RECORDED)

    def unrecorded(self, message: str, *, unsign: bool = False) -> None:
        """The audit record could not be written: the answer becomes UNAVAILABLE.

        `unsign` drops the response token (the provider's, which signed the
        status the answer no longer has).
        """
        self.stage = advance(self.stage, Stage.REFUSED)
        self.code, self.message = grpc.StatusCode.UNAVAILABLE, message
        if unsign:
            self.response_token = ""

    def released(self) -> None:
        """The answer's last message and its status left the server."""
        self.stage = advance(self.stage, Stage.RELEASED)

    def successor(self, exchange_id: str, request_token: str) -> ExchangeLog:
        """The exchange that replaces this one on another provider server (failover).

        It is the same call (method, request, caller, receipt time, trace span)
        under a new exchange id and request token, already admitted; this one
        keeps its own record and ends there.
        """
        following = ExchangeLog.__new__(ExchangeLog)
        for name in ExchangeLog.__slots__:
            setattr(following, name, getattr(self, name))
        following.stage = Stage.ADMITTED
        following.exchange_id, following.request_token = exchange_id, request_token
        following.code, following.message = grpc.StatusCode.OK, ""
        following.forwarded_ns = following.answered_ns = 0
        following.response_token, following.witnessed_checkpoint = "", b""
        following.subject_pseudonym = b""
        following.response = (
            RetainingDigest() if isinstance(self.response, RetainingDigest) else ResponseDigest()
        )
        return following

    # -- bodies and the record ------------------------------------------------------

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
        """The audit record of the exchange as it stands (its answer time is now)."""
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
            subject_pseudonym=self.subject_pseudonym,
        )
