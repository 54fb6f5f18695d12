"""The consumer side: the ministry's own applications call in here.

Any gRPC method is accepted and routed by the ``spean-client`` and
``spean-service`` headers. The request bytes are never decoded: the consumer
signs a request token over their digest, forwards them over mutual TLS to a
security server of the provider, and checks the provider's signed response
token before it releases the answer. Unary and server-streaming calls share
one path (on the wire a unary answer is a one-message stream); the last
message is held back until the response token verifies and the audit record
is durable, so a unary answer is never released unverified or unlogged.
A provider security server that cannot be reached, or breaks off before the
application has seen anything (no message, or one), is replaced by the next
server of the provider subsystem; one that answered is final. Each server
tried after the first gets a new exchange (new id, new request token), so a
provider's replay memory, shared by all its servers, never refuses the
retry; the abandoned exchange is logged before the retry starts.
Methods the global configuration lists as unary are only framed as unary
(served by a unary handler, forwarded with a blocking unary call), which
saves grpc's per-message thread hand-offs; the exchange is the same code.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import grpc
import structlog

from spean.gateway import metadata
from spean.gateway.admission import (
    ConsumerRules,
    admit_consumer_call,
    check_answer,
    check_client,
    is_unary,
    may_fail_over,
    request_claims,
    unreachable,
)
from spean.gateway.audit.record import Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.witness import TRAILER as CHECKPOINT_TRAILER
from spean.gateway.audit.witness import accept_witnessed
from spean.gateway.backoff import ProviderBackoff
from spean.gateway.config import LimitsConfig
from spean.gateway.deadlines import hop_budget
from spean.gateway.errors import SpeanError, Unavailable
from spean.gateway.globalconf import GlobalConfiguration, ServerInfo
from spean.gateway.identifiers import MemberId, ServerId, SubsystemId
from spean.gateway.server import tracing
from spean.gateway.server.exchange import (
    AUDIT_REFUSAL,
    ExchangeObserver,
    append_record,
    finish_cancelled,
    finish_consumer,
    report_finished,
    unary_handler,
)
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.server.peer import peer_certificate_pem
from spean.gateway.tokens import RequestClaims, TokenSigner, new_exchange_id

log = structlog.get_logger("spean.consumer")


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """This security server's TLS key and certificate (PEM), for outgoing mTLS."""

    private_key_pem: bytes
    certificate_pem: bytes


LANES = 2
"""Connections to each provider security server, used in turn.

A provider with several workers (`--workers`) gets each connection handed to
one worker by the kernel (SO_REUSEPORT); a single connection would keep
every exchange of this worker on one of them."""


class ProviderChannels:
    """Persistent mTLS channels to provider security servers, `LANES` per server.

    Channels are reused across exchanges (HTTP/2 multiplexing); they are
    rebuilt when the federation's CA set changes.
    """

    def __init__(self, identity: TlsIdentity, limits: LimitsConfig) -> None:
        self._identity = identity
        self._limits = limits
        self._lock = threading.Lock()
        self._channels: dict[tuple[ServerId, str, int], grpc.Channel] = {}
        # Multi-callables per (server, address, lane, method, unary): creating
        # one registers the method with the channel, which costs more than the
        # call itself. Bounded by the methods the global configuration lists.
        self._callables: dict[tuple[ServerId, str, int, str, bool], Any] = {}
        self._turn = itertools.count()  # next() is atomic under the GIL
        self._retired: list[grpc.Channel] = []
        self._ca_pem = b""

    def get(self, conf: GlobalConfiguration, server: ServerInfo, lane: int = 0) -> grpc.Channel:
        key = (server.id, server.address, lane)
        with self._lock:
            if conf.ca_pem != self._ca_pem:
                self._close_all()
                self._ca_pem = conf.ca_pem
            channel = self._channels.get(key)
            if channel is None:
                channel = self._open(server)
                self._channels[key] = channel
            return channel

    def unary_unary(
        self, conf: GlobalConfiguration, server: ServerInfo, method: str
    ) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
        """The cached unary multi-callable for `method` on `server`'s channel."""
        made: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._callable(
            conf, server, method, unary=True
        )
        return made

    def unary_stream(
        self, conf: GlobalConfiguration, server: ServerInfo, method: str
    ) -> grpc.UnaryStreamMultiCallable[bytes, bytes]:
        """The cached server-streaming multi-callable for `method` on `server`'s channel."""
        made: grpc.UnaryStreamMultiCallable[bytes, bytes] = self._callable(
            conf, server, method, unary=False
        )
        return made

    def _callable(
        self, conf: GlobalConfiguration, server: ServerInfo, method: str, *, unary: bool
    ) -> Any:
        lane = next(self._turn) % LANES
        key = (server.id, server.address, lane, method, unary)
        # Reading a dict is atomic; the CA check is the one `get` makes.
        found = self._callables.get(key)
        if found is not None and conf.ca_pem == self._ca_pem:
            return found
        channel = self.get(conf, server, lane)
        with self._lock:
            made = channel.unary_unary(method) if unary else channel.unary_stream(method)
            self._callables[key] = made
        return made

    def _open(self, server: ServerInfo) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self._ca_pem,
            private_key=self._identity.private_key_pem,
            certificate_chain=self._identity.certificate_pem,
        )
        # The provider's certificate must carry the DNS name derived from the
        # server id listed for this address: only the federation CA issues it.
        options = [
            ("grpc.ssl_target_name_override", server.id.dns_name()),
            ("grpc.max_receive_message_length", self._limits.max_message_bytes * 2),
            ("grpc.max_send_message_length", self._limits.max_message_bytes * 2),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.enable_retries", 0),
            # Each lane its own connection: channels with equal arguments
            # would otherwise share one from the process-wide pool.
            ("grpc.use_local_subchannel_pool", 1),
            # A provider back after an outage is reached again within seconds,
            # not after gRPC's default back-off of up to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 3000),
        ]
        return grpc.secure_channel(server.address, credentials, options=options)

    def use_identity(self, identity: TlsIdentity) -> None:
        """Open new channels with `identity` (a rotated TLS key) from now on.

        Channels in use are retired, not closed: closing a channel cancels its
        calls, and a reload must not drop a call. They close with `close()`.
        """
        with self._lock:
            self._identity = identity
            self._retired.extend(self._channels.values())
            self._channels.clear()
            self._callables.clear()

    def _close_all(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._callables.clear()

    def close(self) -> None:
        with self._lock:
            self._close_all()
            for channel in self._retired:
                channel.close()
            self._retired.clear()


@dataclass(slots=True)
class _Attempt:
    """The exchange being made: its current attempt's notes, the claims its token carries,
    its call to a provider server.

    `_forward` replaces all three when it fails over to another server (a
    successor exchange); the answer is checked against the attempt that made
    the last call.
    """

    exchange: ExchangeLog
    claims: RequestClaims | None = None
    call: grpc.Call | None = None


class ConsumerEndpoint(grpc.GenericRpcHandler):
    """Generic handler for every method called by this member's applications."""

    def __init__(
        self,
        *,
        server_id: ServerId,
        origin: str,
        configuration: Callable[[], GlobalConfiguration],
        signer: TokenSigner,
        clients: Mapping[SubsystemId, str | None],
        channels: ProviderChannels,
        audit: AuditStore,
        observer: ExchangeObserver | None = None,
        limits: LimitsConfig,
        backoff: ProviderBackoff | None = None,
    ) -> None:
        self._server_id = server_id
        self._origin = origin
        self._configuration = configuration
        self._signer = signer
        self._rules = ConsumerRules(
            server_id=server_id,
            clients=dict(clients),
            max_message_bytes=limits.max_message_bytes,
            max_header_bytes=limits.max_header_bytes,
        )
        self._channels = channels
        self._audit = audit
        self._observer = observer
        self._limits = limits
        # Shared by every call: a provider server that was just unreachable is tried last.
        self.backoff = backoff or ProviderBackoff()
        # Checkpoint notes already verified, with the configuration they were
        # verified under (see `_witnessed`); cleared when it grows.
        self._witnessed_notes: dict[tuple[bytes, MemberId], GlobalConfiguration] = {}

    @property
    def rules(self) -> ConsumerRules:
        """The rules calls are admitted by now (the registered clients follow SIGHUP)."""
        return self._rules

    def reconfigure(
        self, *, signer: TokenSigner, clients: Mapping[SubsystemId, str | None]
    ) -> None:
        """Swap the signing key and registered clients (SIGHUP); calls in flight keep theirs."""
        # Each exchange reads these attributes once; rebinding them is atomic.
        self._signer = signer
        self._rules = replace(self._rules, clients=dict(clients))

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method = handler_call_details.method
        if is_unary(self._current(), method, handler_call_details.invocation_metadata or ()):
            # The same exchange; the answer and its status leave in one batch, and
            # the provider is called on this thread (bench/hops.py: ~30% less CPU).
            return unary_handler(functools.partial(self._exchange, method, unary=True))
        return grpc.unary_stream_rpc_method_handler(functools.partial(self._exchange, method))

    def _current(self) -> GlobalConfiguration | SpeanError:
        """The global configuration, or why there is none to use (refused in order)."""
        try:
            return self._configuration()
        except SpeanError as exc:
            return exc

    def _exchange(
        self, method: str, request: bytes, context: grpc.ServicerContext, *, unary: bool = False
    ) -> Iterator[bytes]:
        attempt = _Attempt(ExchangeLog(Side.CONSUMER, new_exchange_id(), method, request))
        invocation = context.invocation_metadata()
        tracing.start_hop(attempt.exchange, invocation)
        held_back: bytes | None = None
        try:
            conf, servers = self._admit(attempt, method, request, invocation, context)
            for message in self._forward(attempt, conf, servers, context, unary):
                attempt.exchange.response.update(message)
                if held_back is not None:
                    yield held_back
                held_back = message
            self._check_answer(attempt, conf)
        except SpeanError as exc:
            attempt.exchange.refuse(exc)
        except GeneratorExit:
            if attempt.call is not None:
                attempt.call.cancel()
            finish_cancelled(
                attempt.exchange,
                self._audit,
                self._origin,
                context,
                "the application cancelled the call",
                self._observer,
            )
            raise
        yield from finish_consumer(
            attempt.exchange, self._audit, self._origin, context, held_back, self._observer
        )

    def _admit(
        self,
        attempt: _Attempt,
        method: str,
        request: bytes,
        invocation: Sequence[tuple[str, str | bytes]],
        context: grpc.ServicerContext,
    ) -> tuple[GlobalConfiguration, tuple[ServerInfo, ...]]:
        """The consumer's checks (`admit_consumer_call`), then the signed request token."""
        ex = attempt.exchange
        conf = self._current()
        admission = admit_consumer_call(
            self._rules,
            conf,
            method=method,
            request_size=len(request),
            invocation=invocation,
            peer_pem=peer_certificate_pem(context),
        )
        ex.learn_consumer(admission)
        if admission.refusal is not None:
            raise admission.refusal
        assert admission.headers is not None
        assert not isinstance(conf, SpeanError)
        claims = request_claims(
            admission.headers,
            method=method,
            exchange_id=ex.exchange_id,
            request_sha256=ex.request_sha256,
            now=int(time.time()),
            lifetime=self._limits.token_lifetime_seconds,
        )
        ex.admit(self._signer.sign_request(claims))
        attempt.claims = claims
        return conf, admission.servers

    def check_client(self, client: SubsystemId, context: grpc.ServicerContext) -> str:
        """Check the calling subsystem; return the thumbprint of its certificate, if any."""
        return check_client(self._rules, client, peer_certificate_pem(context))

    def _forward(
        self,
        attempt: _Attempt,
        conf: GlobalConfiguration,
        servers: Sequence[ServerInfo],
        context: grpc.ServicerContext,
        unary: bool = False,
    ) -> Iterator[bytes]:
        """Yield the provider's messages; fail over while nothing was released.

        The unary and the streaming paths share the failover: an unreachable
        server (`UNAVAILABLE` without an exchange id) makes the consumer try
        the next server of that subsystem, in a successor exchange
        (`_fail_over`), while the application has seen nothing and still
        waits (`may_fail_over`). A provider that refused or failed with a
        signed answer is final. Servers unreachable a moment ago are tried
        last (`ProviderBackoff`).
        """
        broken: tuple[ServerInfo, SpeanError] | None = None
        for server in self.backoff.order(servers):
            timeout = hop_budget(context.time_remaining())
            if broken is not None:
                if not may_fail_over(caller_active=context.is_active(), budget=timeout):
                    break
                self._fail_over(attempt, *broken, server)
            attempt.exchange.forward()
            forward = self._forward_unary if unary else self._forward_stream
            outcome = yield from forward(attempt, conf, server, timeout)
            if outcome is not None:
                broken = server, outcome
                continue
            return
        assert broken is not None
        raise broken[1]

    def _outgoing(self, ex: ExchangeLog) -> tuple[tuple[str, str], ...]:
        headers = ((metadata.REQUEST_TOKEN, ex.request_token), *tracing.outgoing_headers(ex))
        if ex.subject:  # the data subject, for the provider to pseudonymise (protocol.md 4.4)
            return (*headers, (metadata.SUBJECT, ex.subject))
        return headers

    def _forward_unary(
        self,
        attempt: _Attempt,
        conf: GlobalConfiguration,
        server: ServerInfo,
        timeout: float | None,
    ) -> Generator[bytes, None, SpeanError | None]:
        """One unary call to `server`; returns the error if it was unreachable.

        A blocking unary call completes on this thread, without the hand-offs
        to the channel's spin thread a streaming call makes.
        """
        assert attempt.claims is not None
        ex = attempt.exchange
        try:
            message, answered = self._channels.unary_unary(
                conf, server, attempt.claims.method
            ).with_call(ex.request, timeout=timeout, metadata=self._outgoing(ex))
        except grpc.RpcError as exc:
            # grpc raises the ended call itself: its status and trailers.
            attempt.call = cast(grpc.Call, exc)
            if _unreachable(attempt.call):
                return self._unreachable(server, attempt.call)
            self.backoff.reached(server)
            return None
        attempt.call = answered
        self.backoff.reached(server)
        yield message
        return None

    def _forward_stream(
        self,
        attempt: _Attempt,
        conf: GlobalConfiguration,
        server: ServerInfo,
        timeout: float | None,
    ) -> Generator[bytes, None, SpeanError | None]:
        """One streaming call to `server`; returns the error if it may be failed over.

        The first message waits here for the second: the exchange would hold
        it back until then anyway, so the application sees it no later, and a
        server that breaks off after one message is failed over with nothing
        released (and nothing digested: only yielded messages are). A message
        the broken server did send is dropped, never yielded.
        """
        assert attempt.claims is not None
        ex = attempt.exchange
        stub = self._channels.unary_stream(conf, server, attempt.claims.method)
        call = stub(ex.request, timeout=timeout, metadata=self._outgoing(ex))
        attempt.call = call
        first: bytes | None = None
        streaming = False
        try:
            for message in call:
                if streaming:
                    yield message
                elif first is None:
                    first = message
                else:
                    streaming = True
                    yield first
                    yield message
        except grpc.RpcError:
            if _unreachable(call):
                error = self._unreachable(server, call, broke_off=first is not None)
                if not streaming:
                    return error
                # Messages were released: too late to fail over, and the
                # server stays backed off like any unreachable one.
                return None
        if first is not None and not streaming:
            yield first
        self.backoff.reached(server)
        return None

    def _unreachable(
        self, server: ServerInfo, call: grpc.Call, *, broke_off: bool = False
    ) -> SpeanError:
        """Note that `server` did not answer (it is tried last for a while); the error."""
        log.warning(
            "provider.unreachable",
            server=str(server.id),
            error=call.details(),
            backoff_seconds=round(self.backoff.failed(server), 3),
        )
        what = "broke off after its first message" if broke_off else "is unreachable"
        return Unavailable(f"provider security server {server.id} at {server.address} {what}")

    def _fail_over(
        self,
        attempt: _Attempt,
        broken: ServerInfo,
        error: SpeanError,
        following: ServerInfo,
    ) -> None:
        """Record the attempt `broken` did not answer, then go on in a successor exchange.

        The broken server may have admitted the request token (a provider
        remembers it in a replay store its other servers may share), so the
        next server gets a new exchange id and a new token. The abandoned
        exchange is a record of its own, UNAVAILABLE, naming the exchange
        that replaced it; if it cannot be logged, nothing more is tried.
        """
        assert attempt.claims is not None
        ex = attempt.exchange
        now = int(time.time())
        claims = replace(
            attempt.claims,
            exchange_id=new_exchange_id(),
            issued_at=now,
            expires_at=now + self._limits.token_lifetime_seconds,
        )
        token = self._signer.sign_request(claims)
        ex.refuse(Unavailable(f"{error.message}; retried as exchange {claims.exchange_id}"))
        # An exchange of its own: logged, counted and timed like any other.
        audit_ok, audit_seconds = append_record(ex, self._audit, self._origin, self._observer)
        report_finished(ex, self._observer, audit_seconds, audit_ok)
        if not audit_ok:
            ex.unrecorded(AUDIT_REFUSAL)
            raise Unavailable(AUDIT_REFUSAL)
        log.warning(
            "provider.failover",
            exchange_id=ex.exchange_id,
            retried_as=claims.exchange_id,
            server=str(broken.id),
            next_server=str(following.id),
        )
        # The hop's span carries the final exchange id; this event keeps the first.
        ex.span.add_event(
            "provider.failover",
            {"spean.exchange_id": ex.exchange_id, "spean.retried_as": claims.exchange_id},
        )
        attempt.exchange = ex.successor(claims.exchange_id, token)
        attempt.claims, attempt.call = claims, None

    def _witnessed(
        self,
        trailing: Sequence[tuple[str, str | bytes]],
        conf: GlobalConfiguration,
        provider: MemberId,
        exchange_id: str,
    ) -> bytes:
        """`accept_witnessed`, remembering notes it accepted under this configuration.

        A provider attaches the same checkpoint to every answer until it signs
        the next one (every second or so): checking its signature once per note
        and configuration gives the same answer as checking it every time.
        """
        notes = [value for key, value in trailing if key == CHECKPOINT_TRAILER]
        if (
            len(notes) == 1
            and isinstance(notes[0], bytes)
            and self._witnessed_notes.get((notes[0], provider)) is conf
        ):
            return notes[0]
        note = accept_witnessed(trailing, conf, provider, exchange_id)
        if note:
            if len(self._witnessed_notes) >= 64:
                self._witnessed_notes.clear()
            self._witnessed_notes[(note, provider)] = conf
        return note

    def _check_answer(self, attempt: _Attempt, conf: GlobalConfiguration) -> None:
        """Classify the provider's answer (`check_answer`), then note what it is."""
        ex, claims, call = attempt.exchange, attempt.claims, attempt.call
        assert claims is not None
        assert call is not None
        trailing = call.trailing_metadata() or ()
        verdict = check_answer(
            conf,
            claims,
            status=call.code().name,
            details=call.details() or "",
            trailing=trailing,
            response_sha256=ex.response.digest(),
            response_messages=ex.response.count,
            now=int(time.time()),
            leeway=self._limits.clock_skew_seconds,
            subject_sent=bool(ex.subject),
        )
        if not verdict.verified:
            assert verdict.refusal is not None
            ex.refuse(verdict.refusal, verdict.response_token)
            return
        # Never raises: an invalid checkpoint is recorded as absent (protocol.md 4.3).
        witnessed = self._witnessed(trailing, conf, claims.audience.member, claims.exchange_id)
        if verdict.refusal is not None:
            ex.refuse(verdict.refusal, verdict.response_token, witnessed, verdict.subject_pseudonym)
        else:
            ex.answer(verdict.response_token, witnessed, verdict.subject_pseudonym)


def _unreachable(call: grpc.Call) -> bool:
    """No Spean server answered the call (`spean.gateway.admission.unreachable`)."""
    return unreachable(call.code().name, call.trailing_metadata() or ())
