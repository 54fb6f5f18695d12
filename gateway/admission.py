"""The exchange's rules: who may call, what the provider answered, when to fail over (pure).

Theory of operation. A security server's handlers read a call (its method,
its size, its metadata, the TLS peer's certificate) and hand them here as
plain values; these functions decide and return a value; the handlers then
write the answer and the audit record. Nothing here does I/O: the global
configuration comes in as a value (or as the error that fetching it gave),
the clock as ``now``, and the one check that needs shared state, replay
memory, as an injected ``first_use`` function.

An admission never raises. It returns what it learnt before it stopped (the
calling subsystem, the TLS peer's thumbprint, the claimed exchange id, the
token) together with the refusal, if any, so that the audit record of a
refused call names everything that was known (docs/protocol.md, section 11).

- `admit_consumer_call`: the consumer's checks, in the order of
  docs/protocol.md section 3.3.
- `admit_provider_call`: the provider's checks 1 to 12 of section 4.2, in
  that order; steps 1 to 5 authenticate (after them every answer is signed),
  step 5a reads the data subject and pseudonymises it (section 4.4), step 10
  is the injected replay check, step 12a refuses a method its provider has
  disabled.
- `check_answer`: the consumer's classification of a provider's answer
  (section 3.5): a signed answer that binds this exchange, or an unsigned
  refusal passed on, or a forgery.
- `unreachable`, `may_fail_over`: the failover decision of section 3.4.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from spean.gateway import metadata
from spean.gateway.access import AccessPolicy
from spean.gateway.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unauthenticated,
    Unavailable,
    status_from_name,
)
from spean.gateway.globalconf import GlobalConfiguration, ServerInfo
from spean.gateway.identifiers import ServerId, SubsystemId, parse_method
from spean.gateway.metadata import ConsumerHeaders
from spean.gateway.pki import pem_thumbprint
from spean.gateway.subjects import subject_pseudonym
from spean.gateway.token_claims import parse_subsystem_cached
from spean.gateway.tokens import (
    RequestClaims,
    check_request_binding,
    check_response_binding,
    check_subject_binding,
    verify_request,
    verify_response,
)
from spean.gateway.trust import (
    claimed_exchange_id,
    key_resolver,
    listed_server,
    presented_certificate,
)

Metadata = Iterable[tuple[str, str | bytes]]

METASERVICE = "spean.v1.MetaService"
ALLOWED_METHODS = f"/{METASERVICE}/AllowedMethods"
"""The metaservice every provider answers itself (docs/protocol.md, section 3.7)."""


def _too_large(size: int, limit: int) -> ResourceExhausted | None:
    if size <= limit:
        return None
    return ResourceExhausted(f"request of {size} bytes exceeds the limit of {limit} bytes")


# ------------------------------------------------------------------ consumer


@dataclass(frozen=True, slots=True)
class ConsumerRules:
    """What the consumer side decides by: its identity, its clients, its limits."""

    server_id: ServerId
    # Registered client subsystems, each with the thumbprint of the client
    # certificate it must present (None: any or none).
    clients: Mapping[SubsystemId, str | None]
    max_message_bytes: int
    max_header_bytes: int


@dataclass(frozen=True, slots=True)
class ConsumerAdmission:
    """The consumer's decision on an application's call, and what it learnt on the way.

    `headers` and `peer_certificate` are set as soon as they are known, also
    on a refusal; `servers` (the provider's servers in failover order) only
    when the call is admitted.
    """

    headers: ConsumerHeaders | None = None
    peer_certificate: str = ""
    servers: tuple[ServerInfo, ...] = ()
    refusal: SpeanError | None = None

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def admit_consumer_call(
    rules: ConsumerRules,
    conf: GlobalConfiguration | SpeanError,
    *,
    method: str,
    request_size: int,
    invocation: Metadata,
    peer_pem: bytes | None,
) -> ConsumerAdmission:
    """The consumer's checks of an application's call, in order (protocol.md 3.3).

    `conf` is the current global configuration, or the error fetching it
    raised (no configuration yet, or expired): that error refuses the call
    at its place in the order, after the checks that need no configuration.
    """
    headers: ConsumerHeaders | None = None
    thumbprint = ""
    try:
        headers = metadata.parse_consumer_headers(invocation, rules.max_header_bytes)
        parse_method(method)
        thumbprint = check_client(rules, headers.client, peer_pem)
        too_large = _too_large(request_size, rules.max_message_bytes)
        if too_large is not None:
            raise too_large
        if isinstance(conf, SpeanError):  # no configuration yet, or expired
            raise conf
        servers = _provider_servers(conf, headers, method)
    except SpeanError as exc:
        return ConsumerAdmission(headers, thumbprint, refusal=exc)
    return ConsumerAdmission(headers, thumbprint, tuple(servers))


def check_client(rules: ConsumerRules, client: SubsystemId, peer_pem: bytes | None) -> str:
    """Check the calling subsystem; return the thumbprint of its certificate, if any."""
    if client.member != rules.server_id.member:
        raise PermissionDenied(
            f"client subsystem {client} does not belong to {rules.server_id.member}, the"
            " member that owns this security server"
        )
    if client not in rules.clients:
        raise PermissionDenied(
            f"client subsystem {client} is not registered on security server"
            f" {rules.server_id}; add it under consumer.clients"
        )
    expected = rules.clients[client]
    presented = pem_thumbprint(peer_pem) if peer_pem is not None else ""
    if expected is not None and presented != expected:
        raise Unauthenticated(
            f"calls as {client} must present the client certificate registered for it"
        )
    return presented


def _provider_servers(
    conf: GlobalConfiguration, headers: ConsumerHeaders, method: str
) -> list[ServerInfo]:
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
    return list(servers)


def request_claims(
    headers: ConsumerHeaders,
    *,
    method: str,
    exchange_id: str,
    request_sha256: bytes,
    now: int,
    lifetime: int,
) -> RequestClaims:
    """The claims of the request token the consumer signs for an admitted call."""
    return RequestClaims(
        issuer=headers.client.member,
        client=headers.client,
        audience=headers.service,
        method=method,
        exchange_id=exchange_id,
        issued_at=now,
        expires_at=now + lifetime,
        request_sha256=request_sha256,
        user=headers.user,
        purpose=headers.purpose,
    )


def is_unary(conf: GlobalConfiguration | SpeanError, method: str, invocation: Metadata) -> bool:
    """Whether the global configuration lists `method` of the called service as unary.

    Only picks the framing: every check still happens in `admit_consumer_call`,
    and a call whose headers do not name a known unary method takes the
    streaming path, which refuses it as before.
    """
    if method == ALLOWED_METHODS:
        return True
    if isinstance(conf, SpeanError):
        return False
    services = [v for k, v in invocation if k == metadata.SERVICE]
    if len(services) != 1 or not isinstance(services[0], str):
        return False
    try:
        found = conf.method(parse_subsystem_cached(services[0]), method)
    except SpeanError:
        return False
    return found is not None and not found.server_streaming


# ------------------------------------------------------------------ provider


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """What the provider side decides by: what it publishes, to whom, its limits."""

    server_id: ServerId
    # The methods each published subsystem's adapter serves (a mapping's keys will do).
    published: Mapping[SubsystemId, Collection[str]]
    policy: AccessPolicy
    max_message_bytes: int
    clock_skew_seconds: int
    # `subjects.subject_key` of the provider's pseudonymisation key; None: no key
    # configured, so a call naming a data subject is refused (it could not be recorded).
    subject_key: bytes | None = None
    # Methods the provider switched off, with the notice its callers are told (step 12a).
    disabled: Mapping[SubsystemId, Mapping[str, str]] = field(default_factory=dict)


ReplayCheck = Callable[[str, int, int], bool]
"""``first_use(key, expires_at, now)``: False when `key` was seen before; may raise
`Unavailable` when the shared replay memory cannot be written (fail closed)."""


@dataclass(frozen=True, slots=True)
class ProviderAdmission:
    """The provider's decision on a call from another security server.

    `exchange_id` is the claimed id (unverified) until the token verifies,
    then the verified one; None when the call claims none. `claims` is set
    once the token verified; `established` once steps 1 to 5 passed: from
    then on every answer, refusals included, carries a signed response token.
    `subject_pseudonym` is the data subject's pseudonym once step 5a read one.
    """

    exchange_id: str | None = None
    peer_certificate: str = ""
    request_token: str = ""
    claims: RequestClaims | None = None
    established: bool = False
    refusal: SpeanError | None = None
    subject_pseudonym: bytes = b""

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def admit_provider_call(
    rules: ProviderRules,
    conf: GlobalConfiguration | SpeanError,
    *,
    method: str,
    request_size: int,
    request_sha256: bytes,
    invocation: Sequence[tuple[str, str | bytes]],
    peer_pem: bytes | None,
    now: int,
    first_use: ReplayCheck,
) -> ProviderAdmission:
    """The provider's checks 1 to 12 of docs/protocol.md section 4.2, in order."""
    # The facts are gathered as locals and the value built once: this runs per call.
    # The peer's thumbprint is taken before any check (it is cached per certificate),
    # so the record of every refusal names the certificate presented (protocol.md 11).
    thumbprint = pem_thumbprint(peer_pem) if peer_pem is not None else ""
    token = ""
    claims: RequestClaims | None = None
    established = False
    pseudonym = b""
    try:
        if isinstance(conf, SpeanError):  # 1: no configuration, or expired
            raise conf
        peer = listed_server(conf, presented_certificate(peer_pem), thumbprint)  # 2
        token = metadata.single_token(invocation, metadata.REQUEST_TOKEN)  # 3
        claims = verify_request(  # 4
            token, key_resolver(conf), now=now, leeway=rules.clock_skew_seconds
        )
        if claims.issuer != peer.id.member:  # 5
            raise Unauthenticated(
                f"request token issued by {claims.issuer} arrived from security server"
                f" {peer.id} of another member"
            )
        established = True
        pseudonym = _subject(rules, invocation)  # 5a
        too_large = _too_large(request_size, rules.max_message_bytes)  # 6
        if too_large is not None:
            raise too_large
        check_request_binding(  # 7 and 8 (the audience is checked by 9)
            claims, audience=claims.audience, method=method, body_sha256=request_sha256
        )
        methods = rules.published.get(claims.audience)  # 9
        if methods is None:
            raise NotFound(
                f"{claims.audience} is not published on security server {rules.server_id}"
            )
        if not first_use(f"{claims.issuer}|{claims.exchange_id}", claims.expires_at, now):  # 10
            raise Unauthenticated(
                f"exchange id {claims.exchange_id} was already used: the request is a replay"
            )
        # Every client may ask which methods it may call: AllowedMethods skips 11 and 12.
        if method != ALLOWED_METHODS:
            if method not in methods:  # 11
                raise NotFound(f"{claims.audience} does not publish method {method}")
            rules.policy.check(claims.client, claims.audience, method)  # 12
            disabled = rules.disabled.get(claims.audience)
            notice = disabled.get(method) if disabled else None
            if notice is not None:  # 12a
                raise FailedPrecondition(
                    f"{method} of {claims.audience} is disabled by its provider"
                    + (f": {notice}" if notice else "")
                )
    except SpeanError as exc:
        # Until the token verifies, its exchange id is only a claim; the record
        # of a refusal still carries it, so both sides' logs can be matched.
        claimed = claimed_exchange_id(invocation) if claims is None else claims.exchange_id
        return ProviderAdmission(claimed, thumbprint, token, claims, established, exc, pseudonym)
    return ProviderAdmission(
        claims.exchange_id, thumbprint, token, claims, established, subject_pseudonym=pseudonym
    )


def _subject(rules: ProviderRules, invocation: Metadata) -> bytes:
    """Step 5a: the data subject's pseudonym, b"" when the call names none (protocol.md 4.4)."""
    subject = metadata.parse_subject(invocation)
    if not subject:
        return b""
    if rules.subject_key is None:
        raise FailedPrecondition(
            f"security server {rules.server_id} cannot record data subjects: the call names"
            f" one in {metadata.SUBJECT}, but provider.pseudonymisation_key is not set"
        )
    return subject_pseudonym(rules.subject_key, subject)


# ------------------------------------------------------------------ answers


class ProviderError(SpeanError):
    """A status the provider answered with, passed on to the application as is."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.code = status_from_name(status)


def passed_on(status: str, details: str) -> SpeanError:
    """The provider's status and message as the application sees them (protocol.md 3.5)."""
    if status == "UNKNOWN":
        # Never pass an unexplained failure through as if it were the provider's word.
        return ProviderError("INTERNAL", "the provider failed without a reason")
    message = details if details.isprintable() else "the provider refused the call"
    return ProviderError(status, message[:1024])


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """The consumer's reading of a provider's answer.

    `verified`: the answer carries one response token that verifies and binds
    this exchange's status, messages and data subject; `response_token` is
    kept for the record whenever exactly one was present, and
    `subject_pseudonym` (its ``sbj``) when it verified. `refusal`: what the application
    gets instead of OK (the provider's own refusal, passed on, or the
    consumer's refusal of an answer it cannot trust); None for a verified OK.
    """

    verified: bool
    response_token: str = ""
    refusal: SpeanError | None = None
    subject_pseudonym: bytes = b""


def check_answer(
    conf: GlobalConfiguration,
    claims: RequestClaims,
    *,
    status: str,
    details: str,
    trailing: Metadata,
    response_sha256: bytes,
    response_messages: int,
    now: int,
    leeway: int,
    subject_sent: bool = False,
) -> ProviderAnswer:
    """Verify the provider's response token, then adopt its status (protocol.md 3.5).

    `subject_sent`: the call named a data subject, which the token must
    acknowledge (and otherwise must not name one; protocol.md 4.4).
    """
    tokens = [value for key, value in trailing if key == metadata.RESPONSE_TOKEN]
    if status == "DEADLINE_EXCEEDED" and not tokens:
        return ProviderAnswer(
            False,
            refusal=DeadlineExceeded("the caller's deadline expired before the provider answered"),
        )
    if not tokens:
        if status == "OK":
            return ProviderAnswer(
                False, refusal=Unauthenticated("the provider's answer carries no response token")
            )
        # Refused before the provider could establish the exchange (no token to bind).
        return ProviderAnswer(False, refusal=passed_on(status, details))
    if len(tokens) > 1 or not isinstance(tokens[0], str):
        return ProviderAnswer(
            False,
            refusal=Unauthenticated("the provider's answer carries more than one response token"),
        )
    token = tokens[0]
    try:
        response = verify_response(
            token,
            key_resolver(conf),
            now=now,
            leeway=leeway,
            expected_exchange_id=claims.exchange_id,
            expected_provider=claims.audience,
            expected_client=claims.client,
        )
        check_response_binding(
            response,
            status=status,
            response_sha256=response_sha256,
            response_messages=response_messages,
        )
        check_subject_binding(response, subject_sent=subject_sent)
    except SpeanError as exc:
        return ProviderAnswer(False, token, exc)
    refusal = None if status == "OK" else passed_on(status, details)
    return ProviderAnswer(True, token, refusal, response.subject_pseudonym)


# ------------------------------------------------------------------ failover


def unreachable(status: str, trailing: Metadata) -> bool:
    """No Spean server answered: every answer a security server gives has an exchange id."""
    answered = any(key == metadata.EXCHANGE_ID for key, _ in trailing)
    return status == "UNAVAILABLE" and not answered


def may_fail_over(*, caller_active: bool, budget: float | None) -> bool:
    """Whether to try the next provider server after one was unreachable.

    Only while the application still waits and has time left: a retry for a
    caller that went away or ran out of time would run the request for nobody.
    (The other condition, that the application has seen nothing yet, is the
    handler's: it knows what it released.)
    """
    return caller_active and (budget is None or budget > 0)
