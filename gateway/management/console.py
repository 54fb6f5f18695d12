"""The security server's web console: the pages of the management API, for people.

Every page reads through the same `ManagementService` as the API and every
change goes the same way (If-Match against the rules the page showed, the
admin log, write-back, reload), so the console can do nothing the API
cannot, and is refused what the API would refuse, with the same words.
Pages: login (API key or client certificate), status with the certificate
expiry timeline, services, access rights (grant and revoke, CSRF-checked;
htmx swaps the table in place, and without scripts the form posts and
redirects), traffic with a chart per service, and the audit log with
inclusion proofs to download. English and Khmer.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from spean.gateway.errors import InvalidArgument, NotFound, SpeanError
from spean.gateway.management import models
from spean.gateway.management.api import OWN_VIEW_PURPOSE, own_subject
from spean.gateway.management.service import ManagementService
from spean.gateway.management.traffic_index import Filters
from spean.gateway.web.charts import Expiry, bar_chart, expiry_timeline
from spean.gateway.web.console import (
    LOGIN,
    Console,
    Session,
    console_of,
    page_session,
    posted_form,
)
from spean.gateway.web.i18n import Translator
from spean.gateway.web.problems import http_status
from spean.gateway.web.roles import Permission, Principal

NAVIGATION = [
    ("/console/status", "nav.status", Permission.VIEW_STATUS),
    ("/console/services", "nav.services", Permission.VIEW_STATUS),
    ("/console/access", "nav.access", Permission.VIEW_ACCESS),
    ("/console/traffic", "nav.traffic", Permission.VIEW_TRAFFIC),
    ("/console/keys", "nav.keys", Permission.VIEW_STATUS),
    ("/console/audit", "nav.audit", Permission.VIEW_AUDIT),
    ("/console/transparency", "nav.transparency", Permission.VIEW_OWN_EXCHANGES),
    ("/console/transparency", "nav.lookups", Permission.LOOK_UP_SUBJECTS),
]
TEMPLATES = Path(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)


def _service(request: Request) -> ManagementService:
    service: ManagementService = request.app.state.management
    return service


@router.get("/console/status")
def status_page(request: Request) -> HTMLResponse:
    session, _ = page_session(request, Permission.VIEW_STATUS)
    service, console = _service(request), console_of(request)
    t = Translator(console.locale(request))
    certificates = service.certificates()
    now = dt.datetime.now(dt.UTC)
    timeline = expiry_timeline(
        [
            Expiry(
                t(f"certs.{c.name}"),
                dt.datetime.fromisoformat(c.not_after),
                t("certs.days_left", days=c.days_left),
            )
            for c in certificates
        ],
        now,
        t("certs.timeline"),
        t("certs.timeline_desc"),
        t("certs.today"),
    )
    return console.render(
        request,
        "status.html",
        session=session,
        health=service.health(),
        conf=service.globalconf_status(),
        certificates=certificates,
        timeline=timeline,
    )


@router.get("/console/keys")
def keys_page(request: Request) -> HTMLResponse:
    session, _ = page_session(request, Permission.VIEW_STATUS)
    return _keys_page(request, session)


def _keys_page(
    request: Request,
    session: Session,
    status: int = 200,
    notice: str | None = None,
    refused: str | None = None,
) -> HTMLResponse:
    keys = _service(request).keys
    return console_of(request).render(
        request,
        "keys.html",
        status=status,
        session=session,
        keys=[keys.state("signing"), keys.state("tls")],
        notice=notice,
        refused=refused,
    )


@router.post("/console/keys/{kind}/{step}")
async def rotate_key(request: Request, kind: str, step: str) -> Response:
    """One step of a key rotation (the API's), CSRF-checked."""
    console, session, principal, form = await posted_form(request, Permission.ROTATE_KEYS)
    if kind not in ("signing", "tls") or step not in ("start", "install", "activate", "abandon"):
        raise NotFound(f"no key step {kind}/{step}")
    keys = _service(request).keys
    which: Literal["signing", "tls"] = "signing" if kind == "signing" else "tls"
    t = Translator(console.locale(request))
    try:
        if step == "start":
            keys.start(principal, which)
        elif step == "install":
            upload = models.CertificateUpload.model_validate(
                {"certificate_pem": str(form.get("certificate_pem") or "").strip()}
            )
            keys.install(principal, which, upload.certificate_pem)
        elif step == "activate":
            keys.activate(principal, which)
        else:
            keys.abandon(principal, which)
    except SpeanError as exc:
        return _keys_page(request, session, http_status(exc), refused=exc.message)
    except ValidationError as exc:
        return _keys_page(request, session, 422, refused=_first_error(exc))
    return _keys_page(request, session, notice=t(f"keys.done_{step}", kind=t(f"keys.{kind}")))


@router.get("/console/services")
def services_page(request: Request) -> HTMLResponse:
    session, _ = page_session(request, Permission.VIEW_STATUS)
    return _services_page(request, session)


def _services_page(
    request: Request,
    session: Session,
    status: int = 200,
    notice: str | None = None,
    refused: str | None = None,
) -> HTMLResponse:
    service = _service(request)
    return console_of(request).render(
        request,
        "services.html",
        status=status,
        session=session,
        services=service.services(),
        clients=service.clients(),
        etag=service.services_etag(),
        notice=notice,
        refused=refused,
    )


@router.post("/console/services/{action}")
async def change_method_state(request: Request, action: str) -> Response:
    """Disable a method (with a notice) or enable it: the API's change, CSRF-checked."""
    console, session, principal, form = await posted_form(request, Permission.EDIT_SERVICES)
    if action not in ("disable", "enable"):
        raise NotFound(f"no service action {action!r}: disable or enable")
    t = Translator(console.locale(request))
    try:
        change = models.MethodStateChange.model_validate(
            {
                "subsystem": form.get("subsystem"),
                "method": form.get("method"),
                "notice": str(form.get("notice") or "").strip(),
            }
        )
        result = _service(request).set_method_state(
            principal, change, enabled=action == "enable", if_match=str(form.get("etag") or "")
        )
    except SpeanError as exc:
        return _services_page(request, session, http_status(exc), refused=exc.message)
    except ValidationError as exc:
        return _services_page(request, session, 422, refused=_first_error(exc))
    done = f"services.{action}d_change" if result.changed else "services.unchanged"
    return _services_page(request, session, notice=t(done, method=change.method))


def _access_context(request: Request, principal: Principal) -> dict[str, Any]:
    service = _service(request)
    return {
        "access": service.access(),
        "services": service.services(),
        "may_edit": principal.may(Permission.EDIT_ACCESS),
    }


@router.get("/console/access")
def access_page(request: Request) -> HTMLResponse:
    session, principal = page_session(request, Permission.VIEW_ACCESS)
    return console_of(request).render(
        request,
        "access.html",
        session=session,
        notice=None,
        refused=None,
        **_access_context(request, principal),
    )


@router.post("/console/access/{action}")
async def change_access(request: Request, action: str) -> Response:
    console, session, principal, form = await posted_form(request, Permission.EDIT_ACCESS)
    t = Translator(console.locale(request))
    notice = refused = None
    status = 200
    try:
        if action not in ("grant", "revoke"):
            raise NotFound(f"no access action {action!r}: grant or revoke")
        # The grant form names service and method in one choice ("service|method").
        target = str(form.get("target", ""))
        service_id, _, method = (
            target.partition("|")
            if target
            else (str(form.get("service", "")), "", str(form.get("method", "")))
        )
        change = models.AccessChangeRequest.model_validate(
            {
                "client": str(form.get("client", "")).strip(),
                "service": service_id,
                "methods": [method],
            }
        )
        service = _service(request)
        apply = service.grant if action == "grant" else service.revoke
        result = apply(principal, change, str(form.get("etag", "")) or None)
        method = change.methods[0]
        done = "access.granted" if action == "grant" else "access.revoked"
        notice = (
            t(done, method=method, client=change.client)
            if result.changed
            else t("access.unchanged")
        )
    except SpeanError as exc:
        refused, status = exc.message, http_status(exc)
    except ValidationError as exc:  # the form's fields, named as the API names them
        refused, status = _first_error(exc), 422
    context = _access_context(request, principal)
    template = "_access_rules.html" if request.headers.get("hx-request") else "access.html"
    return console.render(
        request, template, status=status, session=session, notice=notice, refused=refused, **context
    )


@router.get("/console/traffic")
def traffic_page(
    request: Request,
    window: Literal["1h", "6h", "24h", "7d", "30d"] = "24h",
    side: Literal["provider", "consumer"] = "provider",
) -> HTMLResponse:
    session, _ = page_session(request, Permission.VIEW_TRAFFIC)
    console = console_of(request)
    t = Translator(console.locale(request))
    traffic = _service(request).audit.traffic(window, side)
    charts = []
    for series in traffic.series:
        labels = [
            p.bucket_start[11:16] if traffic.bucket_seconds < 86400 else p.bucket_start[5:10]
            for p in series.points
        ]
        calls = [p.calls for p in series.points]
        errors = [p.errors for p in series.points]
        desc = t(
            "traffic.chart_desc",
            calls=sum(calls),
            errors=sum(errors),
            since=traffic.since[:16],
            until=traffic.until[:16],
        )
        charts.append(
            (
                series.service,
                bar_chart(calls, errors, labels, t("traffic.chart", service=series.service), desc),
            )
        )
    return console.render(
        request,
        "traffic.html",
        session=session,
        traffic=traffic,
        charts=charts,
        windows=["1h", "6h", "24h", "7d", "30d"],
    )


@router.get("/console/audit")
def audit_page(
    request: Request,
    exchange_id: Annotated[str | None, Query(max_length=64)] = None,
    client: Annotated[str | None, Query(max_length=300)] = None,
    service_id: Annotated[str | None, Query(alias="service", max_length=300)] = None,
    status: Annotated[str | None, Query(pattern=r"^[A-Z_]{0,40}$")] = None,
    before_ns: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> HTMLResponse:
    session, _ = page_session(request, Permission.VIEW_AUDIT)
    filters = Filters(
        exchange_id=exchange_id or None,
        client=client or None,
        service=service_id or None,
        status=status or None,
    )
    found = _service(request).audit.records(filters, 50, before_ns)
    return console_of(request).render(
        request, "audit.html", session=session, found=found, filters=filters
    )


@router.get("/console/audit/proof")
def audit_proof(
    request: Request,
    origin: Annotated[str, Query(min_length=1, max_length=255)],
    index: Annotated[int, Query(ge=0, le=2**63 - 1)],
) -> Response:
    """The inclusion proof as a file to keep (the API's answer, as an attachment)."""
    page_session(request, Permission.VIEW_AUDIT)
    proof = _service(request).audit.proof(origin, index)
    name = f"proof-{origin.replace('/', '_').replace('#', '_')}-{index}.json"
    return Response(
        proof.model_dump_json(indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def home_of(principal: Principal) -> str:
    """Where a login lands: a data subject on their own exchanges, staff on the status."""
    if principal.may(Permission.VIEW_OWN_EXCHANGES):
        return "/console/transparency"
    return "/console/status"


@router.get("/console/transparency")
def transparency_page(request: Request) -> HTMLResponse:
    """A data subject's own exchanges (the look-up recorded); an auditor's look-up form."""
    session = console_of(request).session(request)
    principal = session.principal
    view = None
    if principal.may(Permission.VIEW_OWN_EXCHANGES):
        view = _service(request).subject_view(
            own_subject(principal), principal.name, OWN_VIEW_PURPOSE
        )
    else:
        console_of(request).require(session, Permission.LOOK_UP_SUBJECTS)
    return console_of(request).render(
        request, "transparency.html", session=session, view=view, asked=None, refused=None
    )


@router.post("/console/transparency")
async def transparency_lookup(request: Request) -> Response:
    """An auditor's look-up of one person, for a stated purpose (CSRF-checked, recorded)."""
    console, session, principal, form = await posted_form(request, Permission.LOOK_UP_SUBJECTS)
    asked = {"subject": str(form.get("subject") or ""), "purpose": str(form.get("purpose") or "")}
    try:
        lookup = models.SubjectLookup.model_validate(asked)
        view = _service(request).subject_view(lookup.subject, principal.name, lookup.purpose)
    except (ValidationError, SpeanError) as exc:
        reason = exc.message if isinstance(exc, SpeanError) else _first_error(exc)
        status = http_status(exc) if isinstance(exc, SpeanError) else 422
        return console.render(
            request,
            "transparency.html",
            status=status,
            session=session,
            view=None,
            asked=asked,
            refused=reason,
        )
    return console.render(
        request, "transparency.html", session=session, view=view, asked=asked, refused=None
    )


@router.get("/console/transparency/proof")
def transparency_proof(
    request: Request, origin: Annotated[str, Query(min_length=1, max_length=255)]
) -> Response:
    """One log's proof of the data subject's own exchanges, as a file (recorded)."""
    _, principal = page_session(request, Permission.VIEW_OWN_EXCHANGES)
    view = _service(request).subject_view(own_subject(principal), principal.name, OWN_VIEW_PURPOSE)
    return _proof_file(view, origin)


@router.post("/console/transparency/proof")
async def transparency_lookup_proof(request: Request) -> Response:
    """One log's proof of an auditor's look-up, as a file (CSRF-checked, recorded)."""
    _, _, principal, form = await posted_form(request, Permission.LOOK_UP_SUBJECTS)
    try:
        lookup = models.SubjectLookup.model_validate(
            {"subject": form.get("subject"), "purpose": form.get("purpose")}
        )
    except ValidationError as exc:
        raise InvalidArgument(_first_error(exc)) from None
    view = _service(request).subject_view(lookup.subject, principal.name, lookup.purpose)
    return _proof_file(view, str(form.get("origin") or ""))


def _proof_file(view: models.SubjectView, origin: str) -> Response:
    for log in view.logs:
        if log.origin == origin:
            name = f"subject-proof-{origin.replace('/', '_').replace('#', '_')}.json"
            return Response(
                log.proof,
                media_type="application/json",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
    raise NotFound(f"{origin!r} is not a log of this server with a signed checkpoint")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def install_console(app: FastAPI, console: Console) -> None:
    console.install(app, LOGIN)
    app.include_router(router)
