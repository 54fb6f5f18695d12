"""The catalogue's public web pages: search, a member, a service, served beside the JSON API.

Server-rendered HTML (Jinja2, autoescaped) over the same `CatalogueService`
as the JSON API, so a page never shows what the API would not. No login:
the catalogue is public. Pages:

    GET /                       search: text, ministry, topic and data class, paged
    GET /members/{member}       a member, its subsystems and their services
    GET /services/{service}     one service: metadata, protobuf documentation, snippets

Guarantees:

- Every page works without scripts. htmx (the consoles' vendored copy)
  only replaces the results in place as one types; the copy buttons are a
  static script (`static/copy.js`) and the snippets stay selectable text.
  The content security policy allows no inline script or style.
- English and Khmer: ``?lang=`` (which the language switch sets and a
  cookie keeps), else Accept-Language, else English. Every string is in
  the web locale catalogues; a provider's text missing in Khmer is shown in
  English and marked ``lang="en"``.
- Errors are pages in the reader's language, never a trace: an unknown
  member or service is 404, a query the catalogue refuses (too long, an
  unknown data class, a page that is not a number) 400 naming what is
  wrong, no verified configuration (or an expired one) 503; a bug is
  logged with its trace and answered 500 with nothing of it.
- Answers are gzip-compressed when the browser accepts it; the static files
  may be cached for a day, the pages are revalidated (a new configuration
  changes them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spean.gateway.catalogue.model import Catalogue, ServiceEntry, SubsystemEntry
from spean.gateway.catalogue.search import MAX_QUERY_LENGTH, SearchQuery
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.catalogue_metadata import DATA_CLASSES, Text
from spean.gateway.errors import InvalidArgument, NotFound, SpeanError
from spean.gateway.web.app import SECURITY_HEADERS
from spean.gateway.web.console import HTMX, LANG_COOKIE
from spean.gateway.web.i18n import DEFAULT, LANGUAGE_NAMES, LOCALES, Translator, negotiate

log = structlog.get_logger("spean.catalogue")

HERE = Path(__file__).parent
WEB = HERE.parent / "web"
STATIC = "/static"
PAGE_SIZE = 20
# Above this many members (or topics) the filter is a text field, not a list: a list of a
# thousand ministries would outweigh the page it filters.
MAX_CHOICES = 60
MAX_PAGE = 10_000
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# Static files change only with a new release; their URLs do not carry a version, so a day.
STATIC_CACHE = b"public, max-age=86400"
PAGE_CACHE = b"no-cache"

router = APIRouter(include_in_schema=False)
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def service_url(service_id: str) -> str:
    return "/services/" + quote(service_id, safe="/:")


def member_url(member_id: str) -> str:
    return "/members/" + quote(member_id, safe="/")


def api_url(kind: str, identifier: str) -> str:
    return f"/api/v1/catalogue/{kind}/" + quote(identifier, safe="/:")


def paragraphs(comment: str) -> list[str]:
    """A .proto comment's paragraphs (blank-line separated), each line break a space."""
    return [" ".join(p.split()) for p in comment.split("\n\n") if p.strip()]


_env.filters["paragraphs"] = paragraphs
_env.filters["service_url"] = service_url
_env.filters["member_url"] = member_url
_env.globals["api_url"] = api_url
_env.globals["STATIC"] = STATIC
_env.globals["HTMX"] = HTMX
_env.globals["DATA_CLASSES"] = DATA_CLASSES


def locale_of(request: Request) -> str:
    wanted = request.query_params.get("lang")
    if wanted in LOCALES:
        return str(wanted)
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def is_page(request: Request) -> bool:
    """Whether `request` asked for a page (answered in HTML), not the JSON API."""
    return not request.url.path.startswith("/api/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    locale = locale_of(request)

    def text(value: Text | None) -> str:
        return value.in_language(locale) if value is not None else ""

    def text_lang(value: Text | None) -> str:
        return "km" if locale == "km" and value is not None and value.km else DEFAULT

    def switch(code: str) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        return request.url.path + "?" + urlencode({**query, "lang": code})

    body = _env.get_template(template).render(
        t=Translator(locale),
        locale=locale,
        languages=LANGUAGE_NAMES,
        switch=switch,
        text=text,
        text_lang=text_lang,
        **context,
    )
    response = HTMLResponse(body, status_code=status)
    response.headers["content-security-policy"] = CSP
    response.headers["content-language"] = locale
    response.headers["vary"] = "Accept-Language, Cookie, HX-Request"
    if request.query_params.get("lang") in LOCALES:
        response.set_cookie(
            LANG_COOKIE,
            locale,
            max_age=365 * 86400,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """The page of a refused request: its status, in the reader's language, with what is wrong."""
    # Another refusal (405, 413) reads as a refused query; anything else as our fault.
    kind = status if status in (400, 404, 503) else 400 if 400 <= status < 500 else 500
    if kind == 500:
        detail = ""  # a bug's message is for the log, not the reader
    return render(request, "error.html", status=status, kind=kind, detail=detail)


def _service(request: Request) -> CatalogueService:
    service: CatalogueService = request.app.state.catalogue
    return service


def _parameter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _page_number(request: Request) -> int:
    raw = _parameter(request, "page") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidArgument(f"page must be a number from 1 to {MAX_PAGE}, got {raw!r}")
    return int(raw)


def _query(request: Request, catalogue: Catalogue) -> tuple[SearchQuery, int]:
    text = request.query_params.get("q", "")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgument(f"the search text is longer than {MAX_QUERY_LENGTH} characters")
    member = _parameter(request, "member")
    if member is not None and catalogue.member(member) is None:
        raise InvalidArgument(f"member {member!r} is not in the catalogue")
    page = _page_number(request)
    query = SearchQuery(
        text.strip(),
        member,
        _parameter(request, "topic"),
        _parameter(request, "data_class"),
        PAGE_SIZE,
        (page - 1) * PAGE_SIZE,
    )
    return query, page


@router.get("/")
def home(request: Request) -> HTMLResponse:
    service = _service(request)
    catalogue = service.current()
    query, page = _query(request, catalogue)
    results = service.search(query)
    pages = max(1, -(-results.total // PAGE_SIZE))

    def page_link(number: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return "/?" + urlencode({**params, "page": str(number)})

    context: dict[str, Any] = {
        "catalogue": catalogue,
        "query": query,
        "results": results,
        "page": page,
        "pages": pages,
        "first": query.offset + 1,
        "last": query.offset + len(results.services),
        "page_link": page_link,
        "member_choices": catalogue.members if len(catalogue.members) <= MAX_CHOICES else None,
        "topic_choices": catalogue.topics if len(catalogue.topics) <= MAX_CHOICES else None,
    }
    # htmx asks for the results only, as the reader types; but for the whole page when it
    # restores a page of its history it no longer holds.
    headers = request.headers
    fragment = headers.get("hx-request") == "true" and "hx-history-restore-request" not in headers
    return render(request, "_results.html" if fragment else "home.html", **context)


@router.get("/members/{member_id:path}")
def member_page(request: Request, member_id: str) -> HTMLResponse:
    catalogue = _service(request).current()
    member = catalogue.member(member_id)
    if member is None:
        raise NotFound(f"member {member_id!r} is not in the catalogue")
    subsystems: list[tuple[SubsystemEntry, list[ServiceEntry]]] = []
    for subsystem_id in member.subsystems:
        subsystem = catalogue.subsystem(subsystem_id)
        if subsystem is None:
            continue
        found = (catalogue.service(s) for s in subsystem.services)
        subsystems.append((subsystem, [s for s in found if s is not None]))
    return render(request, "member.html", catalogue=catalogue, member=member, subsystems=subsystems)


@router.get("/services/{service_id:path}")
def service_page(request: Request, service_id: str) -> HTMLResponse:
    catalogue = _service(request).current()
    entry = catalogue.service(service_id)
    if entry is None:
        raise NotFound(f"service {service_id!r} is not in the catalogue")
    subsystem = catalogue.subsystem(entry.subsystem)
    example = (
        json.dumps(entry.doc.example_request, indent=2, ensure_ascii=False) if entry.doc else ""
    )
    return render(
        request,
        "service.html",
        catalogue=catalogue,
        service=entry,
        subsystem=subsystem,
        example=example,
        # Open-data datasets of this service go here (gateway/opendata); none by default.
        datasets=[],
    )


class _Headers:
    """ASGI middleware: the web ground's security headers, and caching fit for a public site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cache = STATIC_CACHE if path.startswith(STATIC + "/") else PAGE_CACHE
        api = path.startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in SECURITY_HEADERS if h[0] != b"cache-control"]
                if not api:
                    headers.append((b"cache-control", cache))
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, with_headers)


DOWNLOADS = "/api/v1/catalogue/datasets/"


class _Compressed:
    """gzip for pages and JSON; never for dataset files, which are served as stored: their
    Content-Length, ETag (their SHA-256) and byte ranges are the file's, and a Parquet or
    a large CSV is not worth compressing again on every download."""

    def __init__(self, app: ASGIApp) -> None:
        self._plain = app
        self._gzip = GZipMiddleware(app, minimum_size=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(DOWNLOADS) and "." in path.rsplit("/", 1)[-1]:
            await self._plain(scope, receive, send)
            return
        await self._gzip(scope, receive, send)


def install(app: FastAPI, service: CatalogueService) -> None:
    """The pages, their static files and their error pages on the catalogue's `app`."""
    app.state.catalogue = service
    app.include_router(router)
    app.mount(f"{STATIC}/catalogue", StaticFiles(directory=HERE / "static"), name="catalogue")
    app.mount(f"{STATIC}/web", StaticFiles(directory=WEB / "static"), name="web")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if is_page(request):
            return error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    def bug(request: Request, exc: Exception) -> Response:
        log.exception("catalogue.internal_error", method=request.method, path=request.url.path)
        if is_page(request):
            return error_page(request, 500, "")
        return JSONResponse(
            {"error": "internal error; see the catalogue's log", "status": "INTERNAL"},
            status_code=500,
        )

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)
    app.add_middleware(_Headers)
    app.add_middleware(_Compressed)


def page_error(request: Request, status: int, exc: SpeanError) -> HTMLResponse:
    """A `SpeanError` raised under a page, as its page (the API answers it in JSON)."""
    return error_page(request, status, exc.message)


__all__ = ["install", "is_page", "page_error", "service_url"]
