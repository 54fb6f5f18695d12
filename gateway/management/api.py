"""The security server's management REST API, under /api/v1 (routes only).

Each route declares the permission it needs (`requires`, deny by default),
reads or changes the server through `ManagementService`, and answers a
pydantic model, so the OpenAPI document generated from this module is the
API's reference. The access rules carry an ETag; a change must send it back
as If-Match (428 without, 412 when stale).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response

from spean.gateway.errors import InvalidArgument, PermissionDenied
from spean.gateway.management import models
from spean.gateway.management.service import ManagementService
from spean.gateway.management.traffic_index import Filters
from spean.gateway.web.app import create_app, requires
from spean.gateway.web.auth import Authenticator
from spean.gateway.web.roles import Permission, Principal

VERSION = "1.0.0"

router = APIRouter()

# Required in the document; a request without it is answered 428 (gateway/web/problems.py).
IfMatch = Annotated[
    str,
    Header(description="the ETag of the access rules this change is based on", min_length=1),
]


def _service(request: Request) -> ManagementService:
    service: ManagementService = request.app.state.management
    return service


Service = Annotated[ManagementService, Depends(_service)]


@router.get("/health", tags=["status"])
def health(
    service: Service, _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))]
) -> models.Health:
    """Whether the server is serving: its endpoints, global configuration and adapters."""
    return service.health()


@router.get("/global-configuration", tags=["status"])
def global_configuration(
    service: Service, _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))]
) -> models.GlobalConfigurationStatus:
    """The held global configuration: version, expiry, last refresh, authority reachable."""
    return service.globalconf_status()


@router.get("/certificates", tags=["status"])
def certificates(
    service: Service, _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))]
) -> list[models.Certificate]:
    """The TLS and signing certificates in use, with their expiry."""
    return service.certificates()


@router.get("/services", tags=["services"])
def services(
    response: Response,
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.Service]:
    """The subsystems published here, their adapters and methods (enabled or not); the
    ETag header is what a change sends back as If-Match."""
    response.headers["ETag"] = service.services_etag()
    return service.services()


@router.get("/clients", tags=["services"])
def clients(
    service: Service, _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))]
) -> list[models.Client]:
    """The client subsystems registered on this server, with their application certificates."""
    return service.clients()


@router.get("/access", tags=["access"])
def access(
    response: Response,
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_ACCESS))],
) -> models.AccessRules:
    """The access rights per client subsystem, service and method, with who/when."""
    rules = service.access()
    response.headers["ETag"] = rules.etag
    return rules


@router.post("/access/grants", tags=["access"])
def grant(
    body: models.AccessChangeRequest,
    response: Response,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.EDIT_ACCESS))],
    if_match: IfMatch,
) -> models.AccessChangeResult:
    """Grant methods to a client; in force for the next call, written to the file."""
    result = service.grant(principal, body, if_match)
    response.headers["ETag"] = result.access.etag
    return result


@router.post("/access/revocations", tags=["access"])
def revoke(
    body: models.AccessChangeRequest,
    response: Response,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.EDIT_ACCESS))],
    if_match: IfMatch,
) -> models.AccessChangeResult:
    """Revoke methods from a client ('*' revokes the whole rule)."""
    result = service.revoke(principal, body, if_match)
    response.headers["ETag"] = result.access.etag
    return result


ServicesIfMatch = Annotated[
    str,
    Header(description="the ETag of the services this change is based on", min_length=1),
]


@router.post("/services/disablements", tags=["services"])
def disable_method(
    body: models.MethodStateChange,
    response: Response,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.EDIT_SERVICES))],
    if_match: ServicesIfMatch,
) -> models.MethodStateResult:
    """Disable a published method: callers are refused with FAILED_PRECONDITION and the
    notice until it is enabled again; in force for the next call, written to the file."""
    result = service.set_method_state(principal, body, enabled=False, if_match=if_match)
    response.headers["ETag"] = result.etag
    return result


@router.post("/services/enablements", tags=["services"])
def enable_method(
    body: models.MethodStateChange,
    response: Response,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.EDIT_SERVICES))],
    if_match: ServicesIfMatch,
) -> models.MethodStateResult:
    """Enable a disabled method again."""
    result = service.set_method_state(principal, body, enabled=True, if_match=if_match)
    response.headers["ETag"] = result.etag
    return result


KindPath = Annotated[Literal["signing", "tls"], Path(description="the key: signing or tls")]


@router.get("/keys", tags=["keys"])
def keys(
    service: Service, _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))]
) -> list[models.KeyState]:
    """The signing and TLS keys: the current certificates and any rotation under way."""
    return [service.keys.state("signing"), service.keys.state("tls")]


@router.post("/keys/{kind}/next", tags=["keys"], status_code=201)
def start_rotation(
    kind: KindPath,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.ROTATE_KEYS))],
) -> models.KeyState:
    """Make the next key and its CSR (answered in `next.csr_pem`): send it to the authority."""
    return service.keys.start(principal, kind)


@router.put("/keys/{kind}/next/certificate", tags=["keys"])
def install_certificate(
    kind: KindPath,
    body: models.CertificateUpload,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.ROTATE_KEYS))],
) -> models.KeyState:
    """Install the authority's certificate for the next key (checked: same key, a federation
    CA, valid now)."""
    return service.keys.install(principal, kind, body.certificate_pem)


@router.post("/keys/{kind}/next/activation", tags=["keys"])
def activate_key(
    kind: KindPath,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.ROTATE_KEYS))],
) -> models.KeyState:
    """Switch to the next key: server.yaml rewritten, every worker reloaded."""
    return service.keys.activate(principal, kind)


@router.delete("/keys/{kind}/next", tags=["keys"])
def abandon_rotation(
    kind: KindPath,
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.ROTATE_KEYS))],
) -> models.KeyState:
    """Abandon a started rotation (its key and CSR are deleted)."""
    return service.keys.abandon(principal, kind)


@router.post("/reload", tags=["status"])
def reload(
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.RELOAD))],
) -> list[models.Certificate]:
    """Reload the configuration, keys and certificates from their files, as SIGHUP does
    (the last step of a key rotation); answers the certificates now in use."""
    return service.reload(principal)


@router.get("/admin-log", tags=["audit"])
def admin_log(
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_AUDIT))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[models.AdminLogEntry]:
    """The newest admin actions (the signed admin log), newest first."""
    return service.admin_actions(limit)


Side = Literal["provider", "consumer"]
_STATUS = r"^[A-Z_]{1,40}$"
INT64_MAX = 2**63 - 1


@router.get("/traffic", tags=["traffic"])
def traffic(
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_TRAFFIC))],
    window: Annotated[Literal["1h", "6h", "24h", "7d", "30d"], Query()] = "24h",
    side: Annotated[Side | None, Query(description="one side only; both when absent")] = None,
) -> models.Traffic:
    """Calls and errors per service over a time window, and totals per service, client
    and status (from the audit log)."""
    return service.audit.traffic(window, side)


@router.get("/audit/records", tags=["audit"])
def audit_records(
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_AUDIT))],
    exchange_id: Annotated[str | None, Query(max_length=64)] = None,
    client: Annotated[str | None, Query(max_length=300)] = None,
    service_id: Annotated[str | None, Query(alias="service", max_length=300)] = None,
    status: Annotated[str | None, Query(pattern=_STATUS)] = None,
    side: Annotated[Side | None, Query()] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[dt.datetime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_ns: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="the previous page's cursor")
    ] = None,
) -> models.AuditRecords:
    """Exchange records, newest first, filtered by exchange id, client, service, status,
    side and time; page with next_before_ns."""
    filters = Filters(
        exchange_id=exchange_id,
        client=client,
        service=service_id,
        status=status,
        side=side.upper() if side else None,
        since_ns=_ns(since, "since"),
        until_ns=_ns(until, "until"),
    )
    return service.audit.records(filters, limit, before_ns)


@router.get("/audit/proof", tags=["audit"])
def audit_proof(
    service: Service,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_AUDIT))],
    origin: Annotated[str, Query(min_length=1, max_length=255)],
    index: Annotated[int, Query(ge=0, le=INT64_MAX)],
) -> models.InclusionProof:
    """The inclusion proof of one record under a signed checkpoint (RFC 9162)."""
    return service.audit.proof(origin, index)


OWN_VIEW_PURPOSE = "the data subject's own view"


@router.get("/transparency/me", tags=["transparency"])
def own_exchanges(
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.VIEW_OWN_EXCHANGES))],
) -> models.SubjectView:
    """Every exchange of this server that touched the logged-in person's records, with the
    proofs `spean audit verify-proof` checks offline (the look-up is itself recorded)."""
    return service.subject_view(own_subject(principal), principal.name, OWN_VIEW_PURPOSE)


@router.post("/transparency/lookups", tags=["transparency"])
def look_up_subject(
    service: Service,
    principal: Annotated[Principal, Depends(requires(Permission.LOOK_UP_SUBJECTS))],
    body: models.SubjectLookup,
) -> models.SubjectView:
    """An auditor's (an ombudsman's) look-up of one person for a stated purpose; recorded
    with who asked and why."""
    return service.subject_view(body.subject, principal.name, body.purpose)


def own_subject(principal: Principal) -> str:
    """The person a data subject's login names; `PermissionDenied` for a login without one."""
    if principal.subject is None:
        raise PermissionDenied(
            f"{principal.name} names no person: a data subject logs in through the identity"
            " provider, whose token carries the person's id"
        )
    return principal.subject


def _ns(moment: dt.datetime | None, name: str) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidArgument(f"{name} must carry a time zone, e.g. 2026-01-31T08:00:00Z")
    # The log's timestamps are 64-bit nanoseconds since 1970 (until April 2262): a bound
    # beyond them selects the same records as the nearest one within.
    return min(max(int(moment.timestamp() * 1_000_000_000), 0), INT64_MAX)


def security_server_app(
    service: ManagementService, authenticator: Authenticator, max_body_bytes: int
) -> FastAPI:
    app = create_app(
        title="Spean security server management API",
        version=VERSION,
        routers=[router],
        authenticator=authenticator,
        max_body_bytes=max_body_bytes,
    )
    app.state.management = service
    return app
