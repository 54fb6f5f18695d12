"""The security server's YAML configuration, validated at start (pure).

One file per security server. Every path in it is resolved against the
folder of the file, so a server's folder can be moved as a whole. Validation
is complete before anything starts: an error names the file, the field (as a
dotted path such as ``provider.access[2].methods[0]``) and what is wrong, and
is raised as `ConfigError`. The loaded value is immutable. Reading the file
(`load_config`) and the secrets it names is `spean.gateway.files.config`'s job.

Secrets never live in this file: key passphrases come from a file named here
or from the environment variable ``SPEAN_KEY_PASSPHRASE``.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spean.gateway.errors import ConfigError, SpeanError
from spean.gateway.events import TopicId, parse_topic_name
from spean.gateway.identifiers import ServerId, SubsystemId, parse_method, parse_server

PASSPHRASE_ENV = "SPEAN_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def _subsystem(value: str) -> str:
    try:
        SubsystemId.parse(value)
    except SpeanError as exc:
        raise ValueError(exc.message) from None
    return value


def _method_or_star(value: str) -> str:
    return value if value == "*" else _method(value)


def _method(value: str) -> str:
    try:
        parse_method(value)
    except SpeanError as exc:
        raise ValueError(exc.message) from None
    return value


FullMethod = Annotated[str, AfterValidator(_method)]


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port``; raises ValueError naming the problem."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {address!r} must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {address!r} has an invalid port")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_or_loopback(url: str, what: str) -> str:
    """`url` if it is https://, or plain http:// to a loopback host; else `ValueError`.

    The host is the URL's parsed host name, so http://localhost.example.org or
    http://127.example.org (remote hosts) are refused."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url
    raise ValueError(f"{what} must be https:// (plain http only to a loopback host)")


def _address(value: str) -> str:
    split_address(value)
    return value


Subsystem = Annotated[str, AfterValidator(_subsystem)]
MethodPattern = Annotated[str, AfterValidator(_method_or_star)]
Address = Annotated[str, AfterValidator(_address)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeysConfig(_Model):
    """The member signing key and this server's TLS key, with their certificates."""

    tls_key: Path
    tls_certificate: Path
    signing_key: Path
    signing_certificate: Path
    passphrase_file: Path | None = None


class GlobalConfigurationSource(_Model):
    """Where the signed global configuration comes from and how it is trusted."""

    source: str = Field(description="file path or http(s) URL of the signed configuration")
    anchor: Path = Field(description="the authority's configuration-signing certificate")
    cache: Path = Field(description="where the last good copy is kept")
    refresh_seconds: float = Field(default=60.0, gt=0, le=86400)


class InternalTls(_Model):
    """TLS on the consumer endpoint (required unless it listens on loopback)."""

    certificate: Path
    key: Path


class ClientConfig(_Model):
    """A subsystem of this member whose applications call through this server."""

    subsystem: Subsystem
    certificate: Path | None = Field(
        default=None,
        description="PEM certificate the application must present (X-Road's internal TLS)",
    )


class ConsumerConfig(_Model):
    listen: Address
    tls: InternalTls | None = None
    clients: list[ClientConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> ConsumerConfig:
        host, _ = split_address(self.listen)
        if self.tls is None and not is_loopback(host):
            raise ValueError(
                f"listen address {self.listen} is not loopback: plaintext is only allowed on"
                " loopback; configure consumer.tls"
            )
        if self.tls is None and any(c.certificate for c in self.clients):
            raise ValueError("client certificates need consumer.tls to be configured")
        registered = [c.subsystem for c in self.clients if c.certificate is not None]
        if registered and len(registered) != len(self.clients):
            # gRPC can only require a client certificate of every connection or
            # of none: once one is registered, the handshake demands one of them.
            missing = ", ".join(c.subsystem for c in self.clients if c.certificate is None)
            raise ValueError(
                "once a client certificate is registered, every client needs one (the TLS"
                f" handshake requires a registered certificate); missing for {missing}"
            )
        seen: set[str] = set()
        for client in self.clients:
            if client.subsystem in seen:
                raise ValueError(f"client {client.subsystem} is listed twice")
            seen.add(client.subsystem)
        return self


class DisabledMethodConfig(_Model):
    """A published method its provider has switched off for now (docs/operator.md)."""

    method: FullMethod
    notice: str = Field(
        default="",
        max_length=200,
        description="what callers are told with the refusal: why, and until when",
    )
    disabled_by: str | None = Field(
        default=None, description="who disabled it through the management API"
    )
    disabled_at: str | None = Field(
        default=None, description="when (ISO 8601, UTC) it was disabled through the API"
    )


class ServiceConfig(_Model):
    """A subsystem published by this server and the adapter that serves it."""

    subsystem: Subsystem
    adapter: dict[str, Any]
    audit_bodies: Literal["metadata", "encrypted"] = Field(
        default="metadata",
        description="metadata: the audit log keeps digests only; encrypted: also the bodies,"
        " sealed to the federation's auditor key (gateway/audit/bodies.py)",
    )
    disabled: list[DisabledMethodConfig] = Field(
        default_factory=list,
        description="methods refused with FAILED_PRECONDITION and their notice until enabled",
    )

    @field_validator("disabled")
    @classmethod
    def _disabled_once(cls, value: list[DisabledMethodConfig]) -> list[DisabledMethodConfig]:
        counts = Counter(entry.method for entry in value)
        repeated = sorted(m for m, n in counts.items() if n > 1)
        if repeated:
            raise ValueError(f"method {repeated[0]} is listed twice")
        return value

    @field_validator("adapter")
    @classmethod
    def _adapter_has_type(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("type"), str):
            raise ValueError("adapter needs a 'type' (sql, grpc or python)")
        return value


def _response_field(value: str) -> str:
    parts = value.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"{value!r} is not a field path such as owner_id or owner.id")
    return value


FieldPath = Annotated[str, AfterValidator(_response_field)]


class MinimiseConfig(_Model):
    """Response fields a client does not receive in full (data minimisation)."""

    method: MethodPattern = "*"
    drop: list[FieldPath] = Field(default_factory=list)
    pseudonymise: list[FieldPath] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_and_once(self) -> MinimiseConfig:
        if not self.drop and not self.pseudonymise:
            raise ValueError("list at least one field under drop or pseudonymise")
        twice = set(self.drop) & set(self.pseudonymise)
        if twice:
            raise ValueError(f"field {sorted(twice)[0]!r} is both dropped and pseudonymised")
        return self


class AccessRuleConfig(_Model):
    """Deny by default: a client may call only the methods listed for it."""

    client: Subsystem
    service: Subsystem
    methods: list[MethodPattern] = Field(min_length=1)
    minimise: list[MinimiseConfig] = Field(default_factory=list)
    granted_by: str | None = Field(
        default=None, description="who last changed this rule through the management API"
    )
    granted_at: str | None = Field(
        default=None, description="when (ISO 8601, UTC) the rule was last changed through the API"
    )

    @model_validator(mode="after")
    def _minimise_allowed_methods(self) -> AccessRuleConfig:
        for index, entry in enumerate(self.minimise):
            if "*" not in self.methods and entry.method not in (*self.methods, "*"):
                raise ValueError(
                    f"minimise[{index}].method {entry.method} is not among this rule's methods"
                )
        return self


class ProviderConfig(_Model):
    listen: Address
    services: list[ServiceConfig] = Field(
        default_factory=list,
        description="subsystems published here; none yet (a server just joined) is valid:"
        " the endpoint starts and answers NOT_FOUND until one is added (spean publish-table)",
    )
    access: list[AccessRuleConfig] = Field(default_factory=list)
    pseudonymisation_key: Path | None = Field(
        default=None,
        description="file of at least 32 secret bytes keying pseudonyms (spean.gateway.masking)",
    )

    @model_validator(mode="after")
    def _access_names_published_services(self) -> ProviderConfig:
        published = {s.subsystem for s in self.services}
        if len(published) != len(self.services):
            raise ValueError("a subsystem is listed twice in services")
        for index, rule in enumerate(self.access):
            if rule.service not in published:
                raise ValueError(
                    f"access[{index}].service {rule.service} is not one of the services"
                    " published here"
                )
            if self.pseudonymisation_key is None and any(m.pseudonymise for m in rule.minimise):
                raise ValueError(
                    f"access[{index}] pseudonymises fields: set provider.pseudonymisation_key"
                    " to a file of at least 32 secret bytes (e.g. 'openssl rand -hex 32')"
                )
        return self


def _topic_name_or_star(value: str) -> str:
    if value == "*":
        return value
    try:
        parse_topic_name(value)
    except SpeanError as exc:
        raise ValueError(exc.message) from None
    return value


def _topic(value: str) -> str:
    try:
        TopicId.parse(value)
    except SpeanError as exc:
        raise ValueError(exc.message) from None
    return value


TopicPattern = Annotated[str, AfterValidator(_topic_name_or_star)]
Topic = Annotated[str, AfterValidator(_topic)]


class TopicAccessConfig(_Model):
    """Deny by default: a client receives only the topics listed for it (docs/pubsub.md)."""

    client: Subsystem
    service: Subsystem = Field(description="the topics' owner, a subsystem of this member")
    topics: list[TopicPattern] = Field(min_length=1)


class SubscriptionConfig(_Model):
    """A subsystem of this member that takes a topic's events."""

    client: Subsystem
    topic: Topic


class DeliveryConfig(_Model):
    """Retries of a failed delivery: exponential backoff, then the dead-letter state."""

    initial_backoff_ms: int = Field(default=500, ge=1, le=3_600_000)
    max_backoff_ms: int = Field(default=60_000, ge=1, le=86_400_000)
    max_attempts: int = Field(default=200, ge=1, le=1_000_000)
    attempt_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    poll_ms: int = Field(
        default=200, ge=10, le=60_000, description="how often the delivery loop looks for work"
    )

    @model_validator(mode="after")
    def _initial_below_max(self) -> DeliveryConfig:
        if self.initial_backoff_ms > self.max_backoff_ms:
            raise ValueError("initial_backoff_ms must not exceed max_backoff_ms")
        return self


class EventRetentionConfig(_Model):
    """How long the event store keeps what no one needs any more (docs/pubsub.md,
    "Retention"); a periodic prune removes the rest."""

    events_days: float = Field(
        default=7,
        gt=0,
        le=36500,
        description="an event older than this that every subscriber's cursor passed goes",
    )
    inbox_days: float = Field(
        default=7,
        gt=0,
        le=36500,
        description="an inbox entry received longer ago than this and acknowledged goes",
    )
    dead_letters_days: float = Field(
        default=30, gt=0, le=36500, description="a dead letter older than this goes"
    )
    interval_minutes: int = Field(default=60, ge=1, le=10080, description="how often to prune")


class PubSubConfig(_Model):
    """Publish/subscribe (docs/pubsub.md): the event store, who receives this member's
    topics, and which topics this member's subsystems take."""

    store: str = Field(
        description="SQLite path (relative to the config file), PostgreSQL URL or NATS"
        " JetStream URL of the event store (gateway/eventstore/engines.py)"
    )
    access: list[TopicAccessConfig] = Field(default_factory=list)
    subscriptions: list[SubscriptionConfig] = Field(default_factory=list)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    webhook: WebhookConfig | None = Field(
        default=None, description="HTTPS publishing for systems that do not speak gRPC"
    )
    push: list[PushConfig] = Field(
        default_factory=list,
        description="subscriptions delivered by HTTP POST to an internal URL, not by Subscribe",
    )

    audit_bodies: Literal["metadata", "encrypted"] = Field(
        default="metadata",
        description="metadata: event records keep digests only; encrypted: also the event"
        " bytes, sealed to the federation's auditor key (publish and delivery records)",
    )
    retention: EventRetentionConfig = Field(default_factory=EventRetentionConfig)

    @model_validator(mode="after")
    def _once_each(self) -> PubSubConfig:
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(self.subscriptions):
            if (entry.client, entry.topic) in seen:
                raise ValueError(f"subscriptions[{index}] is listed twice")
            seen.add((entry.client, entry.topic))
        pushed: set[tuple[str, str]] = set()
        for index, push in enumerate(self.push):
            if (push.client, push.topic) not in seen:
                raise ValueError(
                    f"push[{index}]: {push.client} does not subscribe to {push.topic}; add it"
                    " under pubsub.subscriptions"
                )
            if (push.client, push.topic) in pushed:
                raise ValueError(f"push[{index}] is listed twice")
            pushed.add((push.client, push.topic))
        return self


class WebhookTls(_Model):
    """TLS of the webhook listener; with `client_ca`, applications' certificates log in."""

    certificate: Path
    key: Path
    client_ca: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that issue the applications' client certificates",
    )


class WebhookKeyConfig(_Model):
    """An API key (its id, in the key store) and the subsystem it publishes as."""

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    client: Subsystem


class WebhookConfig(_Model):
    """Publishing by HTTP POST (docs/pubsub.md, "Webhook publishing")."""

    listen: Address
    tls: WebhookTls | None = None
    api_keys: Path = Field(
        default=Path("state/webhook-keys.json"),
        description="the key store (hashes only) of the publishers' API keys",
    )
    keys: list[WebhookKeyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> WebhookConfig:
        host, _ = split_address(self.listen)
        if self.tls is None and not is_loopback(host):
            raise ValueError(
                f"listen address {self.listen} is not loopback: plain HTTP is only allowed on"
                " loopback; configure pubsub.webhook.tls"
            )
        if len({key.id for key in self.keys}) != len(self.keys):
            raise ValueError("an API key is listed twice under keys")
        return self


def _push_url(value: str) -> str:
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class PushConfig(_Model):
    """One subscription's events POSTed, in order, to an internal URL (docs/pubsub.md)."""

    client: Subsystem
    topic: Topic
    url: Annotated[str, AfterValidator(_push_url)]
    secret_file: Path = Field(
        description="file holding the HMAC-SHA256 key of the Spean-Signature header"
    )
    format: Literal["protobuf", "json"] = "protobuf"
    ca: Path | None = Field(
        default=None, description="CA certificates (PEM) for an https URL; the system's if unset"
    )
    timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    initial_backoff_ms: int = Field(default=500, ge=1, le=3_600_000)
    max_backoff_ms: int = Field(default=60_000, ge=1, le=86_400_000)

    @model_validator(mode="after")
    def _initial_below_max(self) -> PushConfig:
        if self.initial_backoff_ms > self.max_backoff_ms:
            raise ValueError("initial_backoff_ms must not exceed max_backoff_ms")
        return self


class RetentionConfig(_Model):
    """How long records stay in the audit store before `spean audit archive` moves them
    to self-contained archive segments (gateway/audit/archive.py)."""

    max_age_days: int = Field(
        ge=1, le=36500, description="records received longer ago than this are archived"
    )
    archive_dir: Path = Field(
        description="folder of the archive segments (relative to the config file)"
    )


class AuditConfig(_Model):
    store: str = Field(description="SQLite path (relative to the config file) or database URL")
    retention: RetentionConfig | None = Field(
        default=None, description="absent: records stay in the store for ever"
    )


class LimitsConfig(_Model):
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    token_lifetime_seconds: int = Field(default=60, ge=5, le=300)
    clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    max_header_bytes: int = Field(default=1024, ge=64, le=8192)
    workers: int = Field(
        default=256,
        ge=1,
        le=4096,
        description=(
            "calls served at once per endpoint, one thread each, counting calls whose request"
            " has not arrived yet; a call beyond them is refused with RESOURCE_EXHAUSTED"
        ),
    )


class MetricsConfig(_Model):
    """The Prometheus endpoint (``GET /metrics``); absent means no endpoint."""

    listen: Address = Field(
        default="127.0.0.1:9464", description="host:port; loopback unless scraped from afar"
    )


class HealthConfig(_Model):
    """A plaintext endpoint answering grpc.health.v1 only, for probes that cannot speak
    mutual TLS (kubelet, a container HEALTHCHECK); absent means none. The consumer
    and provider endpoints answer grpc.health.v1 themselves in any case."""

    listen: Address = Field(
        default="127.0.0.1:8081",
        description="host:port; serves nothing but health, so a pod address is safe",
    )


class TracingConfig(_Model):
    """OpenTelemetry export over OTLP/gRPC; absent means spans are not exported."""

    otlp_endpoint: str = Field(
        min_length=1, description="OTLP/gRPC collector, e.g. http://127.0.0.1:4317"
    )
    insecure: bool = Field(default=False, description="plaintext to the collector")
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    service_name: str = Field(default="spean-security-server", min_length=1)


# The management API's roles (spean.gateway.web.roles.Role names the same values; a
# test keeps the two equal: the pure configuration does not import the web layer).
RoleName = Literal[
    "system-administrator",
    "service-administrator",
    "registration-officer",
    "auditor",
    "data-subject",
]


class ManagementTls(_Model):
    """TLS of the management listener; with `client_ca`, client certificates log in."""

    certificate: Path
    key: Path
    client_ca: Path | None = Field(
        default=None, description="CA certificates (PEM) that issue administrators' certificates"
    )


class CertificateRoleConfig(_Model):
    """The role of an administrator's client certificate, by its subject common name."""

    common_name: str = Field(min_length=1)
    role: RoleName

    @field_validator("role")
    @classmethod
    def _not_a_data_subject(cls, value: str) -> str:
        if value == "data-subject":
            raise ValueError(
                "a certificate cannot have the data-subject role: a data subject"
                " logs in through the identity provider (management.oidc)"
            )
        return value


JwsAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]


class OidcLoginConfig(_Model):
    """Logging in to the console through the identity provider in a browser: the
    OAuth 2.0 authorization code flow with PKCE (RFC 7636), an OpenID Connect ID token."""

    authorization_url: str = Field(description="the provider's authorization endpoint")
    token_url: str = Field(description="the provider's token endpoint")
    client_id: str = Field(min_length=1, description="this console's client id at the provider")
    client_secret_file: Path | None = Field(
        default=None,
        description="a file holding the client secret, for a confidential client (none: public)",
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid"], min_length=1)
    redirect_url: str | None = Field(
        default=None,
        description="the callback URL registered at the provider (default: this listener's"
        " /console/login/oidc/callback as the browser reached it)",
    )

    @field_validator("authorization_url", "token_url")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        return https_or_loopback(value, "the identity provider's endpoints")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include openid (the console reads the ID token)")
        return value


class OidcConfig(_Model):
    """Bearer tokens from the ministry's identity provider, checked against its JWKS."""

    issuer: str = Field(min_length=1, description="the token's iss claim, exactly")
    audience: str = Field(min_length=1, description="the token's aud claim (this API)")
    jwks_url: str = Field(description="the identity provider's JWKS document (https)")
    roles_claim: str = Field(default="roles", min_length=1)
    role_map: dict[str, RoleName] = Field(
        min_length=1, description="a value of roles_claim -> the Spean role it grants"
    )
    algorithms: list[JwsAlgorithm] = Field(
        default_factory=lambda: list[JwsAlgorithm](["RS256", "ES256"]), min_length=1
    )
    subject_claim: str | None = Field(
        default=None,
        min_length=1,
        description="the claim holding the person's id (as spean-subject carries it), for"
        " the data-subject role: citizens who see the exchanges that touched their records",
    )
    login: OidcLoginConfig | None = Field(
        default=None, description="browser login to the console (authorization code + PKCE)"
    )

    @model_validator(mode="after")
    def _data_subjects_need_their_id(self) -> OidcConfig:
        if "data-subject" in self.role_map.values() and self.subject_claim is None:
            raise ValueError(
                "role_map grants data-subject: set subject_claim, the claim holding the person's id"
            )
        return self

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str) -> str:
        return https_or_loopback(value, "jwks_url")


class ManagementConfig(_Model):
    """The management REST API and console (docs/operator.md); absent means off."""

    listen: Address
    tls: ManagementTls | None = None
    api_keys: Path = Field(
        default=Path("state/management-keys.json"),
        description="the API key store (hashes only), written by 'spean management api-key'",
    )
    audit_store: str = Field(
        default="state/management-audit.sqlite",
        description="the signed log of admin actions: SQLite path or database URL",
    )
    index: Path = Field(
        default=Path("state/management-index.sqlite"),
        description="the traffic index derived from the audit store (rebuilt if deleted)",
    )
    client_certificates: list[CertificateRoleConfig] = Field(default_factory=list)
    oidc: OidcConfig | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ManagementConfig:
        host, _ = split_address(self.listen)
        if self.tls is None and not is_loopback(host):
            raise ValueError(
                f"listen address {self.listen} is not loopback: configure management.tls"
            )
        if self.client_certificates and (self.tls is None or self.tls.client_ca is None):
            raise ValueError("client_certificates need management.tls.client_ca")
        return self


class ServerConfig(_Model):
    """A whole security server configuration (one YAML file)."""

    server_id: str
    keys: KeysConfig
    global_configuration: GlobalConfigurationSource
    consumer: ConsumerConfig | None = None
    provider: ProviderConfig | None = None
    audit: AuditConfig
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    metrics: MetricsConfig | None = None
    tracing: TracingConfig | None = None
    health: HealthConfig | None = None
    pubsub: PubSubConfig | None = None
    management: ManagementConfig | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    path: Path = Field(default=Path("."), exclude=True)

    @field_validator("server_id")
    @classmethod
    def _server(cls, value: str) -> str:
        try:
            parse_server(value)
        except SpeanError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _belongs_to_owner(self) -> ServerConfig:
        if self.consumer is None and self.provider is None:
            raise ValueError("configure at least one of consumer and provider")
        owner = parse_server(self.server_id).member
        subsystems = [c.subsystem for c in self.consumer.clients] if self.consumer else []
        subsystems += [s.subsystem for s in self.provider.services] if self.provider else []
        if self.pubsub is not None:
            subsystems += [rule.service for rule in self.pubsub.access]
            subsystems += [entry.client for entry in self.pubsub.subscriptions]
        for subsystem in subsystems:
            if SubsystemId.parse(subsystem).member != owner:
                raise ValueError(
                    f"subsystem {subsystem} does not belong to {owner}, the member that owns"
                    f" security server {self.server_id}"
                )
        return self

    @model_validator(mode="after")
    def _pubsub_has_its_endpoints(self) -> ServerConfig:
        pubsub = self.pubsub
        if pubsub is None:
            return self
        clients = {c.subsystem for c in self.consumer.clients} if self.consumer else set()
        for index, entry in enumerate(pubsub.subscriptions):
            if entry.client not in clients:
                raise ValueError(
                    f"pubsub.subscriptions[{index}].client {entry.client} must be one of"
                    " consumer.clients: its applications call Subscribe on the consumer endpoint"
                )
        if pubsub.subscriptions and self.provider is None:
            raise ValueError(
                "pubsub.subscriptions need a provider endpoint: events are delivered to it"
                " over mutual TLS"
            )
        if pubsub.access and self.consumer is None:
            raise ValueError("pubsub.access needs a consumer endpoint: applications publish there")
        return self

    @property
    def server(self) -> ServerId:
        return parse_server(self.server_id)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        """A path from the file, made absolute against the file's folder."""
        return path if path.is_absolute() else self.base_dir / path


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def parse_config(data: object, path: Path) -> ServerConfig:
    """Validate an already-parsed YAML document; errors name `path` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    try:
        return ServerConfig.model_validate({**data, "path": path})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {_field_path(error['loc'])}: {message}")
        raise ConfigError("\n".join(problems)) from None


def member_folder_document(server_id: str, source: str, anchor: str) -> dict[str, Any]:
    """The part of a server.yaml that every member folder Spean prepares shares
    (`spean join`, the demo): the keys under ``keys/`` where the member's and the
    server's initialisation write them, the global configuration from `source`
    checked against `anchor` and cached under ``state/``, and the audit store there."""
    return {
        "server_id": server_id,
        "keys": {
            "tls_key": "keys/tls.key",
            "tls_certificate": "keys/tls.crt",
            "signing_key": "keys/signing.key",
            "signing_certificate": "keys/signing.crt",
        },
        "global_configuration": {
            "source": source,
            "anchor": anchor,
            "cache": "state/globalconf.signed",
        },
        "audit": {"store": "state/audit.db"},
    }
