"""The management API's request and response bodies (pydantic v2; the OpenAPI schemas).

Requests reuse the configuration's own field types (`Subsystem`,
`MethodPattern`), so the API refuses exactly what the file would refuse, with
the same words. Every model forbids unknown fields: a misspelt field is an
error (422), never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from spean.gateway.config import FullMethod, MethodPattern, Subsystem
from spean.gateway.subjects import SUBJECT_PATTERN


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterHealth(_Model):
    subsystem: str
    ok: bool
    detail: str


class Health(_Model):
    status: Literal["serving", "degraded"]
    server_id: str
    consumer_port: int | None
    provider_port: int | None
    global_configuration_valid: bool
    adapters: list[AdapterHealth]


class GlobalConfigurationStatus(_Model):
    source: str
    valid: bool
    version: int | None = Field(description="the held configuration's version, when valid")
    expires_at: str | None
    last_refresh: str | None = Field(description="when the source last answered (ISO 8601)")
    authority_reachable: bool = Field(
        description="the source answered within the last two refresh intervals"
    )
    problem: str | None = Field(description="why the configuration is not valid, when it is not")


class Certificate(_Model):
    name: Literal["tls", "signing"]
    subject: str
    issuer: str
    sha256: str
    not_before: str
    not_after: str
    days_left: int


class Client(_Model):
    """A subsystem of this member whose applications call through this server."""

    subsystem: str
    certificate_sha256: str | None = Field(
        description="the certificate its applications must present (internal TLS), if any"
    )
    certificate_not_after: str | None
    days_left: int | None


class Method(_Model):
    method: str
    kind: Literal["unary", "server_streaming"]
    enabled: bool = Field(default=True, description="false: refused with FAILED_PRECONDITION")
    notice: str | None = Field(default=None, description="what callers are told while disabled")
    disabled_by: str | None = None
    disabled_at: str | None = None


class Service(_Model):
    subsystem: str
    adapter: str
    healthy: bool
    methods: list[Method]


class AccessRule(_Model):
    client: str
    service: str
    methods: list[str]
    granted_by: str | None
    granted_at: str | None


class AccessRules(_Model):
    etag: str = Field(description="also the ETag header; send it as If-Match to change the rules")
    rules: list[AccessRule]


# The identifier grammar of spean.gateway.identifiers, for the OpenAPI document only:
# the values are checked by the configuration's own validators (one grammar).
_CODE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SUBSYSTEM_PATTERN = rf"^{_CODE}/{_CODE}/{_CODE}/{_CODE}$"
METHOD_PATTERN = r"^(\*|/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*)$"
FULL_METHOD_PATTERN = r"^/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*$"


class AccessChangeRequest(_Model):
    client: Subsystem = Field(
        description="the client subsystem, e.g. KH/GOV/MOH/nhis",
        json_schema_extra={"pattern": SUBSYSTEM_PATTERN, "maxLength": 255},
    )
    service: Subsystem = Field(
        description="a subsystem published by this server",
        json_schema_extra={"pattern": SUBSYSTEM_PATTERN, "maxLength": 255},
    )
    methods: list[
        Annotated[MethodPattern, Field(json_schema_extra={"pattern": METHOD_PATTERN})]
    ] = Field(min_length=1, max_length=256, description="full gRPC method paths, or '*'")


class MethodStateChange(_Model):
    subsystem: Subsystem = Field(
        description="a subsystem published by this server",
        json_schema_extra={"pattern": SUBSYSTEM_PATTERN, "maxLength": 255},
    )
    method: FullMethod = Field(
        description="a full gRPC method path the subsystem publishes",
        json_schema_extra={"pattern": FULL_METHOD_PATTERN},
    )
    notice: str = Field(
        default="",
        max_length=200,
        description="(disabling) what callers are told with the refusal: why, until when",
    )


class MethodStateResult(_Model):
    changed: bool
    action_id: str | None = Field(description="the admin log record of the change, if any")
    etag: str = Field(description="the services' new ETag (also the ETag header)")
    services: list[Service]


class AccessChangeResult(_Model):
    changed: bool
    action_id: str | None = Field(description="the admin log record of the change, if any")
    access: AccessRules


class AdminLogEntry(_Model):
    index: int
    action_id: str
    at: str
    principal: str
    role: str
    action: str
    client: str
    service: str
    status: str
    description: str


class TrafficPoint(_Model):
    bucket_start: str
    calls: int
    errors: int


class TrafficSeries(_Model):
    service: str
    points: list[TrafficPoint]


class TrafficTotal(_Model):
    service: str
    client: str
    calls: int
    errors: int
    error_rate: float
    by_status: dict[str, int]


class Traffic(_Model):
    window: str
    since: str
    until: str
    bucket_seconds: int
    side: Literal["provider", "consumer"] | None
    series: list[TrafficSeries]
    totals: list[TrafficTotal]


class AuditRecordSummary(_Model):
    origin: str
    index: int
    exchange_id: str
    side: str
    client: str
    service: str
    method: str
    status: str
    received_at: str
    received_at_ns: int
    latency_ms: float


class AuditRecords(_Model):
    records: list[AuditRecordSummary]
    next_before_ns: int | None = Field(
        description="pass as before_ns for the next (older) page; null on the last page"
    )


class InclusionProof(_Model):
    """RFC 9162 inclusion of one record in its log, under a signed checkpoint."""

    origin: str
    index: int
    tree_size: int
    record: str = Field(description="the record's canonical bytes, base64")
    leaf_hash: str = Field(description="SHA-256(0x00 || record), hex")
    proof: list[str] = Field(description="the audit path, leaf first, hex")
    checkpoint: str = Field(description="the signed checkpoint (C2SP note) at tree_size")


class SubjectExchange(_Model):
    """One exchange that touched the person: who asked, for which service, why, when."""

    exchange_id: str
    client: str
    service: str
    method: str
    user: str
    purpose: str
    status: str
    received_at: str


class SubjectLog(_Model):
    """One log of the server: the person's proven exchanges in it, and its proof file."""

    origin: str
    exchanges: list[SubjectExchange]
    pending: int = Field(description="the person's records after the latest signed checkpoint")
    lookup_exchange_id: str = Field(description="this look-up's own record, in SERVER#transparency")
    proof: str = Field(description="the spean-subject-proof/1 file: spean audit verify-proof")


class SubjectView(_Model):
    """Every exchange of this server that touched one person, log by log, with proofs."""

    server_id: str
    subject_pseudonym: str = Field(description="the provider's pseudonym of the person (hex)")
    logs: list[SubjectLog]


class SubjectLookup(_Model):
    """An auditor's (an ombudsman's) look-up of one person, for a stated purpose."""

    subject: str = Field(
        pattern="^" + SUBJECT_PATTERN.pattern.removesuffix(r"\Z") + "$",
        description="the person's id, as spean-subject carries it (docs/protocol.md 4.4)",
    )
    purpose: str = Field(
        min_length=1, max_length=200, pattern=r"\S", description="why: the case or its basis"
    )


class KeyCertificate(_Model):
    serial: str
    sha256: str
    not_after: str
    days_left: int


class NextKey(_Model):
    """A started rotation: the new key's CSR for the authority, and its certificate once
    installed."""

    folder: str
    csr_pem: str
    certificate: KeyCertificate | None


class KeyState(_Model):
    kind: Literal["signing", "tls"]
    current: KeyCertificate
    next: NextKey | None


class CertificateUpload(_Model):
    certificate_pem: str = Field(
        min_length=1, max_length=16_384, description="the certificate the authority issued (PEM)"
    )
