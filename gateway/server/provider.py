"""The provider side: other members' security servers call in here over mutual TLS.

The checks are `spean.gateway.admission.admit_provider_call`: steps 1 to 12
of docs/protocol.md section 4.2, in that order, each refusal audited (fail
closed, unknown means no). In short: 1 a valid global configuration; 2 the
TLS peer is a listed, unrevoked security server (the chain to the federation
CA and the validity period were checked by the TLS handshake); 3 to 5 exactly
one request token, signed by a listed member key, issued by the member owning
the calling server; 6 the request's size; 7 and 8 the token binds this
method and body; 9 the audience is published here; 10 its exchange id was
never seen before (replay, `ReplayCache`); 11 the adapter publishes the
method; 12 an access right for (client subsystem, provider subsystem,
method). Between 5 and 6, step 5a pseudonymises the data subject a call
names (`spean-subject`, protocol.md 4.4); the pseudonym goes into the record
and, as claim ``sbj``, into the response token. Only then is the adapter
called. Every answer made after step 5 carries a signed response token over
the status and the digest of every message sent; the last message is held
back until the audit record is durable. A method every adapter here serves
as unary is framed as unary (answer, trailers and status in one batch,
`exchange.unary_handler`); the exchange and its checks are the same code.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import grpc
import structlog

from spean.adapters.base import Adapter, CallContext, MethodKind
from spean.gateway.access import AccessPolicy
from spean.gateway.admission import (
    ALLOWED_METHODS,
    ProviderAdmission,
    ProviderRules,
    admit_provider_call,
)
from spean.gateway.audit.bodies import auditor_key
from spean.gateway.audit.record import Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.config import LimitsConfig
from spean.gateway.deadlines import hop_budget
from spean.gateway.errors import (
    Internal,
    ResourceExhausted,
    SpeanError,
)
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import ServerId, SubsystemId
from spean.gateway.masking import MaskingPolicy
from spean.gateway.server import tracing
from spean.gateway.server.exchange import (
    ExchangeObserver,
    finish_cancelled,
    finish_provider,
    unary_handler,
)
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.server.metaservices import allowed_methods_answer
from spean.gateway.server.peer import peer_certificate_pem
from spean.gateway.server.replay_guard import ReplayCache
from spean.gateway.tokens import (
    RequestClaims,
    ResponseClaims,
    TokenSigner,
    new_exchange_id,
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
        subject_key: bytes | None = None,
        disabled: Mapping[SubsystemId, Mapping[str, str]] | None = None,
    ) -> None:
        self._server_id = server_id
        self._sealed_bodies = sealed_bodies  # services with audit_bodies: encrypted
        self._origin = origin
        self._configuration = configuration
        self._signer = signer
        self._services = dict(services)
        self._unary_methods = _unary_methods(self._services)
        # Adapters' methods never change after construction: read once, not per exchange.
        self._methods = {subsystem: adapter.methods() for subsystem, adapter in services.items()}
        self._rules = ProviderRules(
            server_id=server_id,
            published=self._methods,
            policy=policy,
            max_message_bytes=limits.max_message_bytes,
            clock_skew_seconds=limits.clock_skew_seconds,
            subject_key=subject_key,
            disabled=dict(disabled or {}),
        )
        self._replay = replay
        self._audit = audit
        self._observer = observer
        self._limits = limits
        self._masking = masking or MaskingPolicy((), {}, None)

    def reconfigure(
        self,
        *,
        signer: TokenSigner,
        policy: AccessPolicy,
        masking: MaskingPolicy | None = None,
        subject_key: bytes | None = None,
        disabled: Mapping[SubsystemId, Mapping[str, str]] | None = None,
    ) -> None:
        """Swap the signing key, access rules, subject key and disabled methods (SIGHUP);
        calls in flight keep theirs."""
        # Each exchange reads these attributes once; rebinding them is atomic.
        self._signer = signer
        self._rules = replace(
            self._rules, policy=policy, subject_key=subject_key, disabled=dict(disabled or {})
        )
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
            return unary_handler(functools.partial(self._exchange, method))
        return grpc.unary_stream_rpc_method_handler(functools.partial(self._exchange, method))

    def _exchange(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        ex = ExchangeLog(Side.PROVIDER, new_exchange_id(), method, request)
        invocation = context.invocation_metadata()
        tracing.start_hop(ex, invocation)
        held_back: bytes | None = None
        admission, conf = self._admit(ex, method, request, invocation, context)
        try:
            if admission.refusal is not None:
                raise admission.refusal
            claims = admission.claims
            assert claims is not None  # an admitted call's token verified
            adapter = self._services[claims.audience]
            if claims.audience in self._sealed_bodies:
                assert not isinstance(conf, SpeanError)  # an admitted call had one
                ex.keep_bodies(
                    auditor_key(
                        conf.auditor_public_key,
                        conf.version,
                        f"{claims.audience} keeps encrypted bodies (audit_bodies: encrypted)",
                    )
                )
            ex.admit()
            ex.forward()
            with tracing.adapter_call(ex, type(adapter).__name__):
                for message in self._answer(claims, adapter, method, request, context):
                    if len(message) > self._limits.max_message_bytes:
                        raise ResourceExhausted(
                            f"a response message of {len(message)} bytes exceeds the limit of"
                            f" {self._limits.max_message_bytes} bytes"
                        )
                    ex.response.update(message)
                    if held_back is not None:
                        yield held_back
                    held_back = message
            ex.answer()
        except SpeanError as exc:
            ex.refuse(exc)
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
        claims = admission.claims
        sign = (
            functools.partial(self._sign_response, claims)
            if admission.established and claims is not None
            else None
        )
        yield from finish_provider(
            ex, self._audit, self._origin, context, held_back, sign, self._observer
        )

    def _admit(
        self,
        ex: ExchangeLog,
        method: str,
        request: bytes,
        invocation: Sequence[tuple[str, str | bytes]],
        context: grpc.ServicerContext,
    ) -> tuple[ProviderAdmission, GlobalConfiguration | SpeanError]:
        """Checks 1 to 12 (`admit_provider_call`); `ex` notes what they learnt.

        Returns the configuration the checks used, so the rest of the exchange
        reads the same version."""
        try:
            conf: GlobalConfiguration | SpeanError = self._configuration()
        except SpeanError as exc:
            conf = exc
        rules = self._rules
        admission = admit_provider_call(
            rules,
            conf,
            method=method,
            request_size=len(request),
            request_sha256=ex.request_sha256,
            invocation=invocation,
            peer_pem=peer_certificate_pem(context),
            now=int(time.time()),
            first_use=self._replay.first_use,
        )
        ex.learn_provider(admission)
        return admission, conf

    def _answer(
        self,
        claims: RequestClaims,
        adapter: Adapter,
        method: str,
        request: bytes,
        context: grpc.ServicerContext,
    ) -> Iterator[bytes]:
        """The answer's messages: the adapter's, masked, or the metaservice's own."""
        if method == ALLOWED_METHODS:
            # A metaservice every provider answers itself, from its access policy.
            yield allowed_methods_answer(
                self._rules.policy, self._methods[claims.audience], claims.client, claims.audience
            )
            return
        ctx = CallContext(
            method=method,
            exchange_id=claims.exchange_id,
            client=str(claims.client),
            user=claims.user,
            purpose=claims.purpose,
            deadline=_deadline(context),
        )
        messages = _call_adapter(adapter, self._methods[claims.audience][method], ctx, request)
        # Data minimisation, before anything is digested, signed, logged or sent.
        masker = self._masking.masker(claims.client, claims.audience, method)
        if masker is not None:
            messages = map(masker.apply, messages)
        yield from messages

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
                subject_pseudonym=ex.subject_pseudonym,
            )
        )


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
