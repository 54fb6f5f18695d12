"""The authority's management REST API, under /api/v1 (routes only).

Each route declares the permission it needs (`requires`, deny by default),
reads or changes the authority through `AuthorityAdmin`
(gateway/authority/admin.py) and answers a pydantic model, so the OpenAPI
3.1 document generated from this module is the API's reference. Every
answer carries the ETag of the registry state; every change must send it
back as If-Match (428 without, 412 when stale) and answers the new one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response

from spean.gateway.authority import admin as models
from spean.gateway.authority.admin import AuthorityAdmin
from spean.gateway.web.app import create_app, requires
from spean.gateway.web.auth import Authenticator
from spean.gateway.web.roles import Permission, Principal

VERSION = "1.0.0"

router = APIRouter()

# Required in the document; a request without it is answered 428 (gateway/web/problems.py).
IfMatch = Annotated[
    str,
    Header(description="the ETag of the registry this change is based on", min_length=1),
]


def _admin(request: Request) -> AuthorityAdmin:
    admin: AuthorityAdmin = request.app.state.authority_admin
    return admin


Admin = Annotated[AuthorityAdmin, Depends(_admin)]


def _tagged(response: Response, admin: AuthorityAdmin) -> None:
    response.headers["ETag"] = admin.etag()


@router.get("/registration-requests", tags=["registration"])
def registration_requests(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.RegistrationRequest]:
    """The join requests waiting for a registration officer, with their content: the
    member, its server and address, the subsystems and methods, both key requests."""
    _tagged(response, admin)
    return admin.requests()


@router.post("/registration-requests", tags=["registration"])
def submit_request(
    body: models.JoinRequestUpload,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REGISTER))],
    if_match: IfMatch,
) -> models.Submission:
    """Take a join request (join-request.yaml of spean join): kept for approval where
    approval is required, else admitted and published at once."""
    result = admin.submit(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.post("/registration-requests/approvals", tags=["registration"])
def approve_request(
    body: models.Decision,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.DECIDE_REGISTRATIONS))],
    if_match: IfMatch,
) -> models.Admission:
    """Approve a pending join request: the member, its server and its subsystems are
    admitted and a new configuration is published; answers both certificates."""
    result = admin.approve(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.post("/registration-requests/rejections", tags=["registration"])
def reject_request(
    body: models.Rejection,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.DECIDE_REGISTRATIONS))],
    if_match: IfMatch,
) -> models.Rejected:
    """Reject a pending join request, with the reason (kept in the admin log)."""
    result = admin.reject(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/registration-policy", tags=["registration"])
def registration_policy(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> models.RegistrationPolicy:
    """Whether join requests wait for an officer, or are admitted at once."""
    _tagged(response, admin)
    return admin.policy()


@router.put("/registration-policy", tags=["registration"])
def set_registration_policy(
    body: models.RegistrationPolicy,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.SET_APPROVAL))],
    if_match: IfMatch,
) -> models.RegistrationPolicy:
    """Make join requests wait for an officer, or admit them at once (auto-approve)."""
    result = admin.set_policy(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/members", tags=["registry"])
def members(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.MemberView]:
    """The admitted members and their signing certificates, with expiry and revocation."""
    _tagged(response, admin)
    return admin.members()


@router.post("/members", tags=["registry"])
def admit_member(
    body: models.MemberAdmission,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REGISTER))],
    if_match: IfMatch,
) -> models.CertificateView:
    """Certify a member's signing key (a new member, or a key rotation of an admitted
    one); reaches security servers with the next publication."""
    result = admin.admit_member(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/servers", tags=["registry"])
def servers(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.ServerView]:
    """The admitted security servers, their addresses and listed TLS certificates."""
    _tagged(response, admin)
    return admin.servers()


@router.post("/servers/certificates", tags=["registry"], status_code=201)
def admit_server(
    body: models.ServerAdmission,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REGISTER))],
    if_match: IfMatch,
) -> models.CertificateView:
    """Certify a security server's TLS key: a new server, a rotation beside its current
    certificates, or a replacement; reaches the federation with the next publication."""
    result = admin.admit_server(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.post("/servers/certificate-retirements", tags=["registry"])
def retire_certificate(
    body: models.CertificateRetirement,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REVOKE))],
    if_match: IfMatch,
) -> models.ServerView:
    """End a TLS rotation's overlap: stop listing one of a server's certificates (and
    revoke it, if asked) from the next publication."""
    result = admin.retire_certificate(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/subsystems", tags=["registry"])
def subsystems(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.SubsystemView]:
    """The registered subsystems, their servers, published methods and topics."""
    _tagged(response, admin)
    return admin.subsystems()


@router.post("/service-descriptions", tags=["registry"])
def describe_services(
    body: models.ServiceDescription,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REGISTER))],
    if_match: IfMatch,
) -> models.ServiceDescriptionResult:
    """Register a service description: a new subsystem with the methods of its
    descriptor set, or a registered one's methods replaced by them."""
    result = admin.describe_services(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/revocations", tags=["revocation"])
def revocations(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> list[models.Revocation]:
    """The revoked certificates, when and why."""
    _tagged(response, admin)
    return admin.revocations()


@router.post("/revocations", tags=["revocation"])
def revoke(
    body: models.RevocationRequest,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.REVOKE))],
    if_match: IfMatch,
) -> models.Revocation:
    """Revoke a certificate this authority issued, by serial or thumbprint, with the
    reason; security servers refuse it from the next publication."""
    result = admin.revoke(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/global-configuration", tags=["publication"])
def global_configuration(
    response: Response,
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_STATUS))],
) -> models.PublicationStatus:
    """The published global configuration (version, issued, expiry) and the next version."""
    _tagged(response, admin)
    return admin.publication()


@router.post("/publications", tags=["publication"])
def publish(
    body: models.PublishRequest,
    response: Response,
    admin: Admin,
    principal: Annotated[Principal, Depends(requires(Permission.PUBLISH))],
    if_match: IfMatch,
) -> models.Publication:
    """Build and sign the next global configuration from the registry; answers its version."""
    result = admin.publish(principal, body, if_match)
    _tagged(response, admin)
    return result


@router.get("/admin-log", tags=["audit"])
def admin_log(
    admin: Admin,
    _: Annotated[Principal, Depends(requires(Permission.VIEW_AUDIT))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[models.AdminLogEntry]:
    """The newest admin actions (the signed admin log), newest first."""
    return admin.admin_actions(limit)


def authority_app(
    admin: AuthorityAdmin, authenticator: Authenticator, max_body_bytes: int
) -> FastAPI:
    app = create_app(
        title="Spean federation authority management API",
        version=VERSION,
        routers=[router],
        authenticator=authenticator,
        max_body_bytes=max_body_bytes,
    )
    app.state.authority_admin = admin
    return app
