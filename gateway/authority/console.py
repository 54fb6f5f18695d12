"""The authority's web console: the pages of its management API, for the registration
officer, the system administrator and the auditor.

Every page reads through the same `AuthorityAdmin` as the API and every change
goes the same way (If-Match against the registry state the page showed, the
admin log, then the change), so the console can do nothing the API cannot,
and is refused what the API would refuse, with the same words. Pages: login
(API key or client certificate); registration requests, each with what it
asks for and approve and reject forms, and the approval setting; the registry
(members and servers with a certificate expiry timeline, subsystems, and a
form to upload a service description); publication (the published version,
the publish button, revocations and the revoke form). Every form carries the
session's CSRF token. English and Khmer.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.datastructures import FormData
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from spean.gateway.authority import admin as models
from spean.gateway.authority.admin import AuthorityAdmin
from spean.gateway.errors import InvalidArgument, SpeanError
from spean.gateway.web.charts import Expiry, expiry_timeline
from spean.gateway.web.console import LOGIN, Console, Session, console_of, page_session
from spean.gateway.web.i18n import Translator
from spean.gateway.web.problems import http_status
from spean.gateway.web.roles import Permission, Principal

NAVIGATION = [
    ("/console/requests", "authority.nav.requests", Permission.VIEW_STATUS),
    ("/console/registry", "authority.nav.registry", Permission.VIEW_STATUS),
    ("/console/publication", "authority.nav.publication", Permission.VIEW_STATUS),
]
HOME = "/console/requests"
TEMPLATES = Path(__file__).parent / "templates"
# The timeline shows the certificates that expire first; the table lists them all.
TIMELINE_ROWS = 12

router = APIRouter(include_in_schema=False)


def _admin(request: Request) -> AuthorityAdmin:
    admin: AuthorityAdmin = request.app.state.authority_admin
    return admin


# ------------------------------------------------------------ pages


def _requests_context(request: Request, principal: Principal) -> dict[str, Any]:
    admin = _admin(request)
    return {
        "etag": admin.etag(),
        "requests": admin.requests(),
        "policy": admin.policy(),
        "may_decide": principal.may(Permission.DECIDE_REGISTRATIONS),
        "may_set_policy": principal.may(Permission.SET_APPROVAL),
    }


def _timeline(t: Translator, items: list[tuple[str, models.CertificateView]]) -> str:
    now = dt.datetime.now(dt.UTC)
    soonest = sorted(items, key=lambda item: item[1].not_after)[:TIMELINE_ROWS]
    return expiry_timeline(
        [
            Expiry(
                label,
                dt.datetime.fromisoformat(c.not_after),
                t("certs.days_left", days=c.days_left),
            )
            for label, c in soonest
        ],
        now,
        t("authority.timeline"),
        t("authority.timeline_desc", count=len(soonest)),
        t("certs.today"),
    )


def _registry_context(request: Request, principal: Principal) -> dict[str, Any]:
    admin = _admin(request)
    t = Translator(console_of(request).locale(request))
    members, servers = admin.members(), admin.servers()
    current = [
        *((m.id, c) for m in members for c in m.certificates if c.revoked_at is None),
        *((s.id, c) for s in servers for c in s.certificates if c.revoked_at is None),
    ]
    return {
        "etag": admin.etag(),
        "members": members,
        "servers": servers,
        "subsystems": admin.subsystems(),
        "timeline": _timeline(t, current) if current else "",
        "may_register": principal.may(Permission.REGISTER),
    }


def _publication_context(request: Request, principal: Principal) -> dict[str, Any]:
    admin = _admin(request)
    return {
        "etag": admin.etag(),
        "publication": admin.publication(),
        "revocations": admin.revocations(),
        "may_publish": principal.may(Permission.PUBLISH),
        "may_revoke": principal.may(Permission.REVOKE),
    }


_PAGES: dict[str, tuple[str, Callable[[Request, Principal], dict[str, Any]]]] = {
    "requests": ("requests.html", _requests_context),
    "registry": ("registry.html", _registry_context),
    "publication": ("publication.html", _publication_context),
}


def _show(
    request: Request,
    page: str,
    session: Session,
    principal: Principal,
    *,
    status: int = 200,
    notice: str | None = None,
    refused: str | None = None,
) -> HTMLResponse:
    template, context = _PAGES[page]
    return console_of(request).render(
        request,
        template,
        status=status,
        session=session,
        notice=notice,
        refused=refused,
        path=f"/console/{page}",
        **context(request, principal),
    )


@router.get("/console/requests")
def requests_page(request: Request) -> HTMLResponse:
    session, principal = page_session(request, Permission.VIEW_STATUS)
    return _show(request, "requests", session, principal)


@router.get("/console/registry")
def registry_page(request: Request) -> HTMLResponse:
    session, principal = page_session(request, Permission.VIEW_STATUS)
    return _show(request, "registry", session, principal)


@router.get("/console/publication")
def publication_page(request: Request) -> HTMLResponse:
    session, principal = page_session(request, Permission.VIEW_STATUS)
    return _show(request, "publication", session, principal)


# ------------------------------------------------------------ changes


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _body(model: type[BaseModel], values: dict[str, Any]) -> Any:
    return model.model_validate(values)


async def _change(
    request: Request,
    page: str,
    permission: Permission,
    apply: Callable[[AuthorityAdmin, Principal, FormData, Translator], str],
) -> Response:
    """Check session, CSRF and role; apply the change; show the page with the outcome."""
    console = console_of(request)
    session = console.session(request)
    form = await request.form()
    notice = refused = None
    status = 200
    try:
        console.check_csrf(request, session, form)
        principal = console.require(session, permission)
        t = Translator(console.locale(request))
        try:
            notice = apply(_admin(request), principal, form, t)
        except SpeanError as exc:
            refused, status = exc.message, http_status(exc)
        except ValidationError as exc:  # the form's fields, named as the API names them
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            refused, status = f"{where}: {first['msg'].removeprefix('Value error, ')}", 422
    finally:
        await form.close()  # an uploaded file's spooled copy
    return _show(request, page, session, principal, status=status, notice=notice, refused=refused)


@router.post("/console/requests/approve")
async def approve(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        decision = _body(models.Decision, {"server": _text(form, "server")})
        admitted = admin.approve(p, decision, _text(form, "etag"))
        return t("authority.approved", server=admitted.server, version=admitted.version)

    return await _change(request, "requests", Permission.DECIDE_REGISTRATIONS, apply)


@router.post("/console/requests/reject")
async def reject(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        rejection = _body(
            models.Rejection, {"server": _text(form, "server"), "reason": _text(form, "reason")}
        )
        rejected = admin.reject(p, rejection, _text(form, "etag"))
        return t("authority.rejected", server=rejected.server)

    return await _change(request, "requests", Permission.DECIDE_REGISTRATIONS, apply)


@router.post("/console/requests/policy")
async def policy(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        required = _text(form, "approval_required") == "yes"
        admin.set_policy(
            p, models.RegistrationPolicy(approval_required=required), _text(form, "etag")
        )
        return t("authority.policy_required" if required else "authority.policy_not_required")

    return await _change(request, "requests", Permission.SET_APPROVAL, apply)


@router.post("/console/registry/service-descriptions")
async def describe(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        upload = form.get("descriptor_set")
        data = b""
        if isinstance(upload, UploadFile):
            data = upload.file.read()
        if not data:
            raise InvalidArgument(t("authority.no_file"))
        servers = [s for s in _text(form, "servers").replace(",", " ").split() if s]
        description = _body(
            models.ServiceDescription,
            {
                "subsystem": _text(form, "subsystem"),
                "name": _text(form, "name"),
                "servers": servers,
                "file_descriptor_set": base64.b64encode(data).decode(),
            },
        )
        result = admin.describe_services(p, description, _text(form, "etag"))
        key = "authority.registered" if result.created else "authority.updated"
        return t(key, subsystem=result.subsystem.id, methods=len(result.subsystem.methods))

    return await _change(request, "registry", Permission.REGISTER, apply)


@router.post("/console/publication/publish")
async def publish(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        hours = _text(form, "validity_hours") or "24"
        body = _body(models.PublishRequest, {"validity_hours": hours})
        published = admin.publish(p, body, _text(form, "etag"))
        return t("authority.published", version=published.version)

    return await _change(request, "publication", Permission.PUBLISH, apply)


@router.post("/console/publication/revoke")
async def revoke(request: Request) -> Response:
    def apply(admin: AuthorityAdmin, p: Principal, form: FormData, t: Translator) -> str:
        body = _body(
            models.RevocationRequest,
            {"serial": _text(form, "serial") or None, "reason": _text(form, "reason")},
        )
        revoked = admin.revoke(p, body, _text(form, "etag"))
        return t("authority.revoked", serial=revoked.serial, subject=revoked.subject)

    return await _change(request, "publication", Permission.REVOKE, apply)


def install_console(app: FastAPI, console: Console) -> None:
    console.install(app, LOGIN)
    app.include_router(router)
