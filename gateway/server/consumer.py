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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import grpc
import structlog

from spean.gateway import metadata
from spean.gateway.audit.record import Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.witness import TRAILER as CHECKPOINT_TRAILER
from spean.gateway.audit.witness import accept_witnessed
from spean.gateway.backoff import ProviderBackoff
from spean.gateway.config import LimitsConfig
from spean.gateway.deadlines import hop_budget
from spean.gateway.errors import (
    DeadlineExceeded,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unauthenticated,
    Unavailable,
    status_from_name,
)
from spean.gateway.globalconf import GlobalConfiguration, ServerInfo
from spean.gateway.identifiers import MemberId, ServerId, SubsystemId, parse_method
from spean.gateway.pki import pem_thumbprint
from spean.gateway.server import tracing
from spean.gateway.server.exchange import (
    AUDIT_REFUSAL,
    ExchangeObserver,
    append_record,
    finish,
    finish_cancelled,
    report_finished,
)
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.server.metaservices import ALLOWED_METHODS
from spean.gateway.server.peer import peer_certificate_pem
from spean.gateway.tokens import (
    RequestClaims,
    TokenSigner,
    check_response_binding,
    new_exchange_id,
    verify_response,
)
from spean.gateway.trust import key_resolver

log = structlog.get_logger("spean.consumer")

# Applications name a few services over and over; errors are not cached.
_parse_subsystem = functools.lru_cache(maxsize=1024)(SubsystemId.parse)


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
    """The exchange's current attempt: the claims its request token carries, its call.

    `_forward` replaces both when it fails over to another server; the answer
    is checked against the claims of the attempt that made the last call.
    """

    claims: RequestClaims
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
        self._clients = dict(clients)
        self._channels = channels
        self._audit = audit
        self._observer = observer
        self._limits = limits
        # Shared by every call: a provider server that was just unreachable is tried last.
        self.backoff = backoff or ProviderBackoff()
        # Checkpoint notes already verified, with the configuration they were
        # verified under (see `_witnessed`); cleared when it grows.
        self._witnessed_notes: dict[tuple[bytes, MemberId], GlobalConfiguration] = {}

    def reconfigure(
        self, *, signer: TokenSigner, clients: Mapping[SubsystemId, str | None]
    ) -> None:
        """Swap the signing key and registered clients (SIGHUP); calls in flight keep theirs."""
        # Each exchange reads these attributes once; rebinding them is atomic.
        self._signer = signer
        self._clients = dict(clients)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method = handler_call_details.method
        if self._is_unary(method, handler_call_details.invocation_metadata):
            # The same exchange; the answer and its status leave in one batch, and
            # the provider is called on this thread (bench/hops.py: ~30% less CPU).
            return grpc.unary_unary_rpc_method_handler(
                functools.partial(self._exchange_unary, method)
            )
        return grpc.unary_stream_rpc_method_handler(functools.partial(self._exchange, method))

    def _is_unary(self, method: str, invocation: Sequence[tuple[str, str | bytes]] | None) -> bool:
        """Whether the global configuration lists `method` of the called service as unary.

        Only picks the framing: every check still happens in `_prepare`, and a
        call whose headers do not name a known unary method takes the
        streaming path, which refuses it as before.
        """
        if method == ALLOWED_METHODS:
            return True
        services = [v for k, v in invocation or () if k == metadata.SERVICE]
        if len(services) != 1 or not isinstance(services[0], str):
            return False
        try:
            found = self._configuration().method(_parse_subsystem(services[0]), method)
        except SpeanError:
            return False
        return found is not None and not found.server_streaming

    def _exchange_unary(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> bytes | None:
        """A unary method's exchange: `_exchange`, which yields at most one message here.

        None (no message) goes with the status `finish` set on the context.
        """
        answer = None
        for message in self._exchange(method, request, context, unary=True):
            answer = message
        return answer

    def _exchange(
        self, method: str, request: bytes, context: grpc.ServicerContext, *, unary: bool = False
    ) -> Iterator[bytes]:
        ex = ExchangeLog(Side.CONSUMER, new_exchange_id(), method, request)
        tracing.start_hop(ex, context.invocation_metadata())
        held_back: bytes | None = None
        attempt: _Attempt | None = None
        try:
            conf, claims, servers = self._prepare(ex, method, request, context)
            attempt = _Attempt(claims)
            for message in self._forward(ex, conf, attempt, servers, context, unary):
                ex.response.update(message)
                if held_back is not None:
                    yield held_back
                held_back = message
            assert attempt.call is not None
            self._check_answer(ex, conf, attempt.claims, attempt.call)
        except SpeanError as exc:
            ex.fail(exc)
        except GeneratorExit:
            if attempt is not None and attempt.call is not None:
                attempt.call.cancel()
            finish_cancelled(
                ex,
                self._audit,
                self._origin,
                context,
                "the application cancelled the call",
                self._observer,
            )
            raise
        yield from finish(
            ex, self._audit, self._origin, context, held_back, observer=self._observer
        )

    def _prepare(
        self,
        ex: ExchangeLog,
        method: str,
        request: bytes,
        context: grpc.ServicerContext,
    ) -> tuple[GlobalConfiguration, RequestClaims, list[ServerInfo]]:
        headers = metadata.parse_consumer_headers(
            context.invocation_metadata(), self._limits.max_header_bytes
        )
        ex.client, ex.service = str(headers.client), str(headers.service)
        ex.user, ex.purpose = headers.user, headers.purpose
        parse_method(method)
        ex.peer_certificate = self.check_client(headers.client, context)
        if len(request) > self._limits.max_message_bytes:
            raise ResourceExhausted(
                f"request of {len(request)} bytes exceeds the limit of"
                f" {self._limits.max_message_bytes} bytes"
            )
        conf = self._configuration()
        if conf.subsystem(headers.client) is None:
            raise NotFound(
                f"client subsystem {headers.client} is not registered in the global configuration"
            )
        if conf.member(headers.service.member) is None:
            raise NotFound(f"member {headers.service.member} is not in the federation")
        if conf.subsystem(headers.service) is None:
            raise NotFound(f"service subsystem {headers.service} is not in the federation")
        # AllowedMethods is answered by every provider (gateway/server/metaservices.py).
        if conf.method(headers.service, method) is None and method != ALLOWED_METHODS:
            raise NotFound(f"{headers.service} does not publish method {method}")
        servers = conf.servers_for(headers.service)
        if not servers:
            raise Unavailable(f"no security server publishes {headers.service}")
        now = int(time.time())
        claims = RequestClaims(
            issuer=headers.client.member,
            client=headers.client,
            audience=headers.service,
            method=method,
            exchange_id=ex.exchange_id,
            issued_at=now,
            expires_at=now + self._limits.token_lifetime_seconds,
            request_sha256=ex.request_sha256,
            user=headers.user,
            purpose=headers.purpose,
        )
        ex.request_token = self._signer.sign_request(claims)
        return conf, claims, servers

    def check_client(self, client: SubsystemId, context: grpc.ServicerContext) -> str:
        """Check the calling subsystem; return the thumbprint of its certificate, if any."""
        if client.member != self._server_id.member:
            raise PermissionDenied(
                f"client subsystem {client} does not belong to {self._server_id.member}, the"
                " member that owns this security server"
            )
        if client not in self._clients:
            raise PermissionDenied(
                f"client subsystem {client} is not registered on security server"
                f" {self._server_id}; add it under consumer.clients"
            )
        expected = self._clients[client]
        pem = peer_certificate_pem(context)
        presented = pem_thumbprint(pem) if pem is not None else ""
        if expected is not None and presented != expected:
            raise Unauthenticated(
                f"calls as {client} must present the client certificate registered for it"
            )
        return presented

    def _forward(
        self,
        ex: ExchangeLog,
        conf: GlobalConfiguration,
        attempt: _Attempt,
        servers: list[ServerInfo],
        context: grpc.ServicerContext,
        unary: bool = False,
    ) -> Iterator[bytes]:
        """Yield the provider's messages; fail over while nothing was released.

        `attempt` holds the last call made and the claims of its request
        token: each server after the first is asked in a new exchange
        (`_fail_over`). A provider that refused or failed with a signed answer is
        final: only an unreachable server (`UNAVAILABLE` without an exchange
        id) makes the consumer try the next server of that subsystem, and
        only while the application has seen nothing: before the second
        message of a stream arrives (the first is held back, here until the
        second arrives, then in `_exchange`). A message the broken server
        did send is dropped, never yielded. Servers unreachable a moment ago
        are tried last (`ProviderBackoff`).
        """
        broken: tuple[ServerInfo, SpeanError] | None = None
        for server in self.backoff.order(servers):
            timeout = hop_budget(context.time_remaining())
            if broken is not None:
                if not context.is_active() or (timeout is not None and timeout <= 0):
                    # The application is gone or out of time: a retry would run
                    # the request for nobody.
                    break
                self._fail_over(ex, attempt, *broken, server)
            ex.forwarded_ns = time.time_ns()
            outgoing = ((metadata.REQUEST_TOKEN, ex.request_token), *tracing.outgoing_headers(ex))
            if unary:
                # A blocking unary call completes on this thread, without the
                # hand-offs to the channel's spin thread a streaming call makes.
                try:
                    message, answered = self._channels.unary_unary(
                        conf, server, attempt.claims.method
                    ).with_call(ex.request, timeout=timeout, metadata=outgoing)
                except grpc.RpcError as exc:
                    # grpc raises the ended call itself: its status and trailers.
                    attempt.call = cast(grpc.Call, exc)
                    if _unreachable(attempt.call):
                        broken = server, self._unreachable(server, attempt.call)
                        continue
                    self.backoff.reached(server)
                    return
                attempt.call = answered
                self.backoff.reached(server)
                yield message
                return
            stub = self._channels.unary_stream(conf, server, attempt.claims.method)
            call = stub(ex.request, timeout=timeout, metadata=outgoing)
            attempt.call = call
            # The first message waits here for the second: `_exchange` would hold
            # it back until then anyway, so the application sees it no later, and
            # a server that breaks off after one message is failed over with
            # nothing released (and nothing digested: only yielded messages are).
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
                        broken = server, error
                        continue
                    # Messages were released: too late to fail over, and the
                    # server stays backed off like any unreachable one.
                    return
            if first is not None and not streaming:
                yield first
            self.backoff.reached(server)
            return
        assert broken is not None
        raise broken[1]

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
        ex: ExchangeLog,
        attempt: _Attempt,
        broken: ServerInfo,
        error: SpeanError,
        following: ServerInfo,
    ) -> None:
        """Log the attempt `broken` did not answer, then make `ex` a new exchange.

        The broken server may have admitted the request token (a provider
        remembers it in a replay store its other servers may share), so the
        next server gets a new exchange id and a new token. The abandoned
        exchange is a record of its own, UNAVAILABLE, naming the exchange
        that replaced it; if it cannot be logged, nothing more is tried.
        """
        now = int(time.time())
        claims = replace(
            attempt.claims,
            exchange_id=new_exchange_id(),
            issued_at=now,
            expires_at=now + self._limits.token_lifetime_seconds,
        )
        token = self._signer.sign_request(claims)
        ex.code = grpc.StatusCode.UNAVAILABLE
        ex.message = f"{error.message}; retried as exchange {claims.exchange_id}"
        # An exchange of its own: logged, counted and timed like any other.
        audit_ok, audit_seconds = append_record(ex, self._audit, self._origin, self._observer)
        report_finished(ex, self._observer, audit_seconds, audit_ok)
        if not audit_ok:
            ex.message = AUDIT_REFUSAL
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
        ex.exchange_id, ex.request_token = claims.exchange_id, token
        ex.code, ex.message = grpc.StatusCode.OK, ""
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

    def _check_answer(
        self,
        ex: ExchangeLog,
        conf: GlobalConfiguration,
        claims: RequestClaims,
        call: grpc.Call,
    ) -> None:
        """Verify the provider's response token, then adopt its status."""
        code = call.code()
        trailing = call.trailing_metadata() or ()
        tokens = [value for key, value in trailing if key == metadata.RESPONSE_TOKEN]
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and not tokens:
            raise DeadlineExceeded("the caller's deadline expired before the provider answered")
        if not tokens:
            if code is grpc.StatusCode.OK:
                raise Unauthenticated("the provider's answer carries no response token")
            # Refused before the provider could establish the exchange (no token to bind).
            raise _provider_error(code, call.details() or "")
        if len(tokens) > 1 or not isinstance(tokens[0], str):
            raise Unauthenticated("the provider's answer carries more than one response token")
        ex.response_token = tokens[0]
        response = verify_response(
            tokens[0],
            key_resolver(conf),
            now=int(time.time()),
            leeway=self._limits.clock_skew_seconds,
            expected_exchange_id=claims.exchange_id,
            expected_provider=claims.audience,
            expected_client=claims.client,
        )
        check_response_binding(
            response,
            status=code.name,
            response_sha256=ex.response.digest(),
            response_messages=ex.response.count,
        )
        ex.witnessed_checkpoint = self._witnessed(
            trailing, conf, claims.audience.member, claims.exchange_id
        )
        if code is not grpc.StatusCode.OK:
            raise _provider_error(code, call.details() or "")


def _unreachable(call: grpc.Call) -> bool:
    """No Spean server answered: every answer a security server gives has an exchange id."""
    trailing = call.trailing_metadata() or ()
    answered = any(key == metadata.EXCHANGE_ID for key, _ in trailing)
    return call.code() is grpc.StatusCode.UNAVAILABLE and not answered


class ProviderError(SpeanError):
    """A status the provider answered with, passed on to the application as is."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _provider_error(code: grpc.StatusCode, details: str) -> SpeanError:
    if code is grpc.StatusCode.UNKNOWN:
        # Never pass an unexplained failure through as if it were the provider's word.
        return ProviderError(grpc.StatusCode.INTERNAL, "the provider failed without a reason")
    message = details if details.isprintable() else "the provider refused the call"
    return ProviderError(status_from_name(code.name), message[:1024])
