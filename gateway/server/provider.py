"""The provider side: other members' security servers call in here over mutual TLS.

Order of checks, each refusal audited (fail closed, unknown means no):
1. the TLS peer is a security server listed in the global configuration and
   its certificate is not revoked (the chain to the federation CA and the
   validity period were checked by the TLS handshake);
2. exactly one request token, signed by a listed member key, whose issuer is
   the member owning the calling security server;
3. the token is bound to this call: audience published here, method, body
   digest; its exchange id was never seen before (replay);
4. an access right for (client subsystem, provider subsystem, method);
5. the adapter publishes the method.
Only then is the adapter called. Every answer made after step 2 carries a
signed response token over the status and the digest of every message sent;
the last message is held back until the audit record is durable. A method
every adapter here serves as unary is framed as unary (answer, trailers and
status in one batch); the exchange and its checks are the same code.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping

import grpc
import structlog

from spean.adapters.base import Adapter, CallContext, MethodKind
from spean.gateway import metadata
from spean.gateway.access import AccessPolicy
from spean.gateway.audit.record import Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.config import LimitsConfig
from spean.gateway.deadlines import hop_budget
from spean.gateway.errors import (
    FailedPrecondition,
    Internal,
    NotFound,
    ResourceExhausted,
    SpeanError,
    Unauthenticated,
)
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import ServerId, SubsystemId
from spean.gateway.masking import MaskingPolicy
from spean.gateway.server import tracing
from spean.gateway.server.exchange import ExchangeObserver, finish, finish_cancelled
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.server.metaservices import ALLOWED_METHODS, allowed_methods_answer
from spean.gateway.server.peer import peer_certificate_pem
from spean.gateway.server.replay_guard import ReplayCache
from spean.gateway.tokens import (
    RequestClaims,
    ResponseClaims,
    TokenSigner,
    check_request_binding,
    new_exchange_id,
    verify_request,
)
from spean.gateway.trust import (
    claimed_exchange_id,
    identify_server,
    key_resolver,
)

log = structlog.get_logger("spean.provider")


class ProviderEndpoint(grpc.GenericRpcHandler):
    """Generic handler for every method other security servers call."""

    def __init__(
        self,
        *,
        server_id: ServerId,
        origin: str,
        configuration: Callable[[], GlobalConfiguration],
        signer: TokenSigner,
        services: Mapping[SubsystemId, Adapter],
        policy: AccessPolicy,
        replay: ReplayCache,
        audit: AuditStore,
        observer: ExchangeObserver | None = None,
        limits: LimitsConfig,
        masking: MaskingPolicy | None = None,
        sealed_bodies: frozenset[SubsystemId] = frozenset(),
    ) -> None:
        self._server_id = server_id
        self._sealed_bodies = sealed_bodies  # services with audit_bodies: encrypted
        self._origin = origin
        self._configuration = configuration
        self._signer = signer
        self._services = dict(services)
        self._unary_methods = _unary_methods(self._services)
        self._policy = policy
        self._replay = replay
        self._audit = audit
        self._observer = observer
        self._limits = limits
        self._masking = masking or MaskingPolicy((), {}, None)

    def reconfigure(
        self, *, signer: TokenSigner, policy: AccessPolicy, masking: MaskingPolicy | None = None
    ) -> None:
        """Swap the signing key and access rules (SIGHUP); calls in flight keep theirs."""
        # Each exchange reads these attributes once; rebinding them is atomic.
        self._signer = signer
        self._policy = policy
        if masking is not None:
            self._masking = masking

    @property
    def services(self) -> Mapping[SubsystemId, Adapter]:
        """The adapters published here, by subsystem."""
        return self._services

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method = handler_call_details.method
        if method in self._unary_methods:
            # The same exchange; the answer and its status leave in one batch
            # (bench/hops.py: ~25% less CPU than the streaming framing).
            return grpc.unary_unary_rpc_method_handler(
                functools.partial(self._exchange_unary, method)
            )
        return grpc.unary_stream_rpc_method_handler(functools.partial(self._exchange, method))

    def _exchange_unary(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> bytes | None:
        """A unary method's exchange: `_exchange`, which yields at most one message here.

        None (no message) goes with the status `finish` set on the context.
        """
        answer = None
        for message in self._exchange(method, request, context):
            answer = message
        return answer

    def _exchange(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        ex = ExchangeLog(Side.PROVIDER, new_exchange_id(), method, request)
        tracing.start_hop(ex, context.invocation_metadata())
        held_back: bytes | None = None
        claims: RequestClaims | None = None
        try:
            claims = self._authenticate(ex, method, request, context)
            # From here on the exchange is established: every answer is signed.
            adapter, kind = self._authorize(claims, method, request, ex.request_sha256)
            if claims.audience in self._sealed_bodies:
                ex.keep_bodies(_auditor_key(self._configuration(), claims.audience))
            ctx = CallContext(
                method=method,
                exchange_id=claims.exchange_id,
                client=str(claims.client),
                user=claims.user,
                purpose=claims.purpose,
                deadline=_deadline(context),
            )
            ex.forwarded_ns = time.time_ns()
            if method == ALLOWED_METHODS:
                # A metaservice every provider answers itself, from its access policy.
                answer = allowed_methods_answer(
                    self._policy, adapter.methods(), claims.client, claims.audience
                )
                messages: Iterator[bytes] = iter((answer,))
            else:
                messages = _call_adapter(adapter, kind, ctx, request)
                # Data minimisation, before anything is digested, signed, logged or sent.
                masker = self._masking.masker(claims.client, claims.audience, method)
                if masker is not None:
                    messages = map(masker.apply, messages)
            with tracing.adapter_call(ex, type(adapter).__name__):
                for message in messages:
                    if len(message) > self._limits.max_message_bytes:
                        raise ResourceExhausted(
                            f"a response message of {len(message)} bytes exceeds the limit of"
                            f" {self._limits.max_message_bytes} bytes"
                        )
                    ex.response.update(message)
                    if held_back is not None:
                        yield held_back
                    held_back = message
        except SpeanError as exc:
            ex.fail(exc)
        except GeneratorExit:
            finish_cancelled(
                ex,
                self._audit,
                self._origin,
                context,
                "the consumer cancelled the call",
                self._observer,
            )
            raise
        signer = None if claims is None else functools.partial(self._sign_response, claims)
        yield from finish(ex, self._audit, self._origin, context, held_back, signer, self._observer)

    def _authenticate(
        self,
        ex: ExchangeLog,
        method: str,
        request: bytes,
        context: grpc.ServicerContext,
    ) -> RequestClaims:
        """Checks 1 and 2: who is calling, and is the token theirs."""
        invocation = context.invocation_metadata()
        # Until the token verifies, its exchange id is only a claim; the record
        # of a refusal still carries it, so both sides' logs can be matched.
        claimed = claimed_exchange_id(invocation)
        if claimed is not None:
            ex.exchange_id = claimed
        conf = self._configuration()
        peer, thumbprint = identify_server(conf, peer_certificate_pem(context))
        ex.peer_certificate = thumbprint
        token = metadata.single_token(invocation, metadata.REQUEST_TOKEN)
        ex.request_token = token
        claims = verify_request(
            token,
            key_resolver(conf),
            now=int(time.time()),
            leeway=self._limits.clock_skew_seconds,
        )
        ex.exchange_id = claims.exchange_id
        ex.client, ex.service = str(claims.client), str(claims.audience)
        ex.user, ex.purpose = claims.user, claims.purpose
        if claims.issuer != peer.id.member:
            raise Unauthenticated(
                f"request token issued by {claims.issuer} arrived from security server"
                f" {peer.id} of another member"
            )
        return claims

    def _authorize(
        self, claims: RequestClaims, method: str, request: bytes, body_sha256: bytes
    ) -> tuple[Adapter, MethodKind]:
        """Checks 3 to 5: bound to this call, not replayed, allowed, published."""
        if len(request) > self._limits.max_message_bytes:
            raise ResourceExhausted(
                f"request of {len(request)} bytes exceeds the limit of"
                f" {self._limits.max_message_bytes} bytes"
            )
        check_request_binding(
            claims, audience=claims.audience, method=method, body_sha256=body_sha256
        )
        adapter = self._services.get(claims.audience)
        if adapter is None:
            raise NotFound(
                f"{claims.audience} is not published on security server {self._server_id}"
            )
        if not self._replay.first_use(
            f"{claims.issuer}|{claims.exchange_id}", claims.expires_at, int(time.time())
        ):
            raise Unauthenticated(
                f"exchange id {claims.exchange_id} was already used: the request is a replay"
            )
        if method == ALLOWED_METHODS:
            # Every client may ask which methods it may call; the answer is its own rights.
            return adapter, MethodKind.UNARY
        kind = adapter.methods().get(method)
        if kind is None:
            raise NotFound(f"{claims.audience} does not publish method {method}")
        self._policy.check(claims.client, claims.audience, method)
        return adapter, kind

    def _sign_response(self, claims: RequestClaims, ex: ExchangeLog) -> str:
        """The response token over the final status and every message sent."""
        now = int(time.time())
        return self._signer.sign_response(
            ResponseClaims(
                issuer=claims.audience.member,
                provider=claims.audience,
                audience=claims.client,
                exchange_id=claims.exchange_id,
                issued_at=now,
                expires_at=now + self._limits.token_lifetime_seconds,
                status=ex.code.name,
                response_sha256=ex.response.digest(),
                response_messages=ex.response.count,
            )
        )


def _auditor_key(conf: GlobalConfiguration, service: SubsystemId) -> bytes:
    """The key bodies are sealed to; without one the exchange is refused (fail closed)."""
    if not conf.auditor_public_key:
        raise FailedPrecondition(
            f"{service} keeps encrypted bodies (audit_bodies: encrypted) but global "
            f"configuration version {conf.version} has no auditor key; the federation "
            "authority must register one (spean authority set-auditor-key)"
        )
    return conf.auditor_public_key


def _unary_methods(services: Mapping[SubsystemId, Adapter]) -> frozenset[str]:
    """Methods every adapter publishing them serves as unary (adapters' methods never
    change after construction), and the AllowedMethods metaservice."""
    kinds: dict[str, set[MethodKind]] = {}
    for adapter in services.values():
        for method, kind in adapter.methods().items():
            kinds.setdefault(method, set()).add(kind)
    unary = {method for method, found in kinds.items() if found == {MethodKind.UNARY}}
    return frozenset(unary | {ALLOWED_METHODS})


def _deadline(context: grpc.ServicerContext) -> float | None:
    remaining = hop_budget(context.time_remaining())
    return None if remaining is None else time.monotonic() + remaining


def _call_adapter(
    adapter: Adapter, kind: MethodKind, ctx: CallContext, request: bytes
) -> Iterator[bytes]:
    """The boundary to adapter code: its expected errors pass, anything else is a bug."""
    try:
        if kind is MethodKind.UNARY:
            yield adapter.unary(ctx, request)
        else:
            yield from adapter.stream(ctx, request)
    except SpeanError:
        raise
    except Exception as exc:
        log.exception("adapter.failed", exchange_id=ctx.exchange_id, method=ctx.method)
        raise Internal(
            f"the provider's adapter failed; its operator can find exchange {ctx.exchange_id}"
            " in the log"
        ) from exc
