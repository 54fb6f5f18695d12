"""The consoles' shared ground: sessions, CSRF, languages, templates and static files.

A console is server-rendered HTML (Jinja2, autoescaped) with htmx for
in-place updates; every page works without scripts too (forms post and
redirect). Guarantees:

- Deny by default, as the API: every page but the login page needs a
  session, and each request re-checks the credential behind it: an API key
  is checked against the key store again (a revoked key ends its sessions
  at once), a certificate session needs the same verified certificate on
  the connection. The session keeps the key in this process's memory only;
  the browser holds a random session id (cookie ``spean_session``:
  HttpOnly, SameSite=Strict, Secure on TLS, path /console).
- Every state change is a POST carrying the session's CSRF token (a hidden
  form field, or the ``X-CSRF-Token`` header htmx sends), compared in
  constant time; a missing or wrong token is refused (403) and logged.
- Sessions end after 30 minutes idle or 8 hours in all, and on logout; one
  made by the identity provider's login also when its ID token expires.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import jinja2
import structlog
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from spean.gateway.errors import PermissionDenied, SpeanError, Unauthenticated
from spean.gateway.web import oidc_login
from spean.gateway.web.auth import Authenticator
from spean.gateway.web.i18n import LANGUAGE_NAMES, LOCALES, Translator, negotiate
from spean.gateway.web.oidc_login import OidcLogin
from spean.gateway.web.problems import http_status, log_refusal
from spean.gateway.web.roles import Permission, Principal, require

log = structlog.get_logger("spean.web")

SESSION_COOKIE = "spean_session"
LANG_COOKIE = "spean_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HTMX = "vendor/htmx-2.0.11.min.js"
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
WEB = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    principal: Principal
    api_key: str | None
    created: float
    seen: float
    expires_at: float | None = None
    """For an identity provider's login: its ID token's expiry (seconds since the epoch)."""


class LoginRequired(Unauthenticated):
    """No session, or its credential no longer holds: back to the login page."""


class CsrfRefused(PermissionDenied):
    """A state change without this session's CSRF token."""


class Forbidden(PermissionDenied):
    """The session's role may not see this page or do this (a page, not a problem)."""


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(
        self, principal: Principal, api_key: str | None, expires_at: float | None = None
    ) -> Session:
        now = time.monotonic()
        session = Session(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            principal,
            api_key,
            now,
            now,
            expires_at,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.seen)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            expired = session.expires_at is not None and time.time() >= session.expires_at
            if now - session.seen > IDLE_SECONDS or now - session.created > MAX_SECONDS or expired:
                del self._sessions[session_id]
                return None
            session = self._sessions[session_id] = replace(session, seen=now)
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


class Console:
    """One console: its templates, its sessions and its navigation."""

    def __init__(
        self,
        authenticator: Authenticator,
        templates: Sequence[Path],
        navigation: Sequence[tuple[str, str, Permission]],
        title_key: str,
        secure_cookies: bool,
        oidc_login: OidcLogin | None = None,
        home: Callable[[Principal], str] = lambda _: "/console/status",
        login_hint_key: str = "login.api_key_hint",
    ) -> None:
        self.authenticator = authenticator
        self.login_hint_key = login_hint_key  # names the command that issues API keys
        self.oidc_login = oidc_login
        self.home = home
        self.sessions = Sessions()
        self.navigation = list(navigation)
        self.title_key = title_key
        self.secure_cookies = secure_cookies
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*templates, WEB / "templates"]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    # ------------------------------------------------------------ pages

    def locale(self, request: Request) -> str:
        wanted = request.query_params.get("lang")
        if wanted in LOCALES:
            return str(wanted)
        return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        session: Session | None = None,
        **context: Any,
    ) -> HTMLResponse:
        locale = self.locale(request)
        # After a POST the language links point at the page the form came from.
        path = context.pop("path", request.url.path)
        page = self.env.get_template(template).render(
            t=Translator(locale),
            locale=locale,
            languages=LANGUAGE_NAMES,
            session=session,
            navigation=self.navigation,
            title_key=self.title_key,
            htmx=HTMX,
            path=path,
            csrf_field=CSRF_FIELD,
            oidc_login=self.oidc_login is not None,
            login_hint_key=self.login_hint_key,
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        if request.query_params.get("lang") in LOCALES:
            response.set_cookie(
                LANG_COOKIE,
                locale,
                max_age=365 * 86400,
                samesite="strict",
                secure=self.secure_cookies,
                path="/console",
            )
        response.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
            " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        return response

    # ------------------------------------------------------------ sessions

    def start_session(
        self,
        principal: Principal,
        api_key: str | None,
        to: str,
        expires_at: float | None = None,
        request: Request | None = None,
    ) -> Response:
        """A new session, then `to`: by a redirect, or, after a cross-site arrival (the
        identity provider's redirect, `request` given), by a page of this origin."""
        session = self.sessions.create(principal, api_key, expires_at)
        log.info(
            "console.login",
            principal=principal.name,
            role=principal.role.value,
            method=principal.method,
        )
        response: Response
        if request is None:
            response = RedirectResponse(to, status_code=303)
        else:
            # A SameSite=Strict cookie set here would not go with a redirect that is
            # still part of the provider's cross-site navigation; a page of ours goes on.
            response = self.render(request, "continue.html", to=to)
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/console",
            max_age=MAX_SECONDS,
        )
        return response

    def end_session(self, request: Request, to: str) -> Response:
        self.sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(to, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    def session(self, request: Request) -> Session:
        """This request's session, its credential checked again; else `LoginRequired`."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise LoginRequired("no session: log in")
        if session.expires_at is not None:
            # An identity provider's login: nothing to check again here, and the sessions
            # end it when its ID token expires.
            return session
        try:
            if session.api_key is not None:
                current = self.authenticator.api_keys.authenticate(session.api_key)
            else:
                current = self.authenticator.authenticate(request)
        except SpeanError as exc:
            self.sessions.drop(session.id)
            raise LoginRequired(exc.message) from exc
        if current != session.principal:
            self.sessions.drop(session.id)
            raise LoginRequired("the credential of this session changed: log in again")
        return session

    def require(self, session: Session, permission: Permission) -> Principal:
        """The session's principal if it holds `permission`; else `Forbidden` (a page)."""
        try:
            return require(session.principal, permission)
        except PermissionDenied as exc:
            raise Forbidden(exc.message) from exc

    def check_csrf(self, request: Request, session: Session, form: Mapping[str, Any]) -> None:
        offered = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
        if not hmac.compare_digest(offered.encode(), session.csrf.encode()):
            raise CsrfRefused("the CSRF token of the form is missing or wrong")

    # ------------------------------------------------------------ wiring

    def install(self, app: FastAPI, login_path: str) -> None:
        """Static files, the login and logout routes every console shares, and the console's
        answers to refusals (a page, not JSON)."""
        app.state.console = self
        app.mount("/console/static", StaticFiles(directory=WEB / "static"), name="static")
        app.include_router(_login_routes)

        def login_required(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, LoginRequired)
            log_refusal(request, 401, exc.message)
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": login_path})
            return RedirectResponse(login_path, status_code=303)

        def csrf_refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, CsrfRefused)
            log_refusal(request, 403, exc.message)
            t = Translator(self.locale(request))
            return self.render(
                request, "error.html", status=http_status(exc), message=t("error.csrf")
            )

        def forbidden(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Forbidden)
            log_refusal(request, 403, exc.message)
            t = Translator(self.locale(request))
            return self.render(
                request, "error.html", status=403, message=t("error.forbidden", reason=exc.message)
            )

        if self.oidc_login is not None:
            self._install_oidc(app, self.oidc_login)
        app.add_exception_handler(LoginRequired, login_required)
        app.add_exception_handler(CsrfRefused, csrf_refused)
        app.add_exception_handler(Forbidden, forbidden)

    def _install_oidc(self, app: FastAPI, login: OidcLogin) -> None:
        """The two routes of a browser login through the identity provider."""

        def refused(request: Request, status: int, reason: str) -> Response:
            log_refusal(request, status, reason)
            response = self.render(request, "login.html", status=status, refused=reason)
            response.delete_cookie(oidc_login.COOKIE, path=oidc_login.COOKIE_PATH)
            return response

        @app.get(oidc_login.COOKIE_PATH, include_in_schema=False)
        def start(request: Request) -> Response:
            callback = str(request.url.replace(path=oidc_login.CALLBACK_PATH, query=""))
            pending_id, url = login.begin(callback)
            response = RedirectResponse(url, status_code=303)
            response.set_cookie(
                oidc_login.COOKIE,
                pending_id,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookies,
                path=oidc_login.COOKIE_PATH,
                max_age=oidc_login.PENDING_SECONDS,
            )
            return response

        @app.get(oidc_login.CALLBACK_PATH, include_in_schema=False)
        def callback(request: Request) -> Response:
            params = request.query_params
            error = params.get("error")
            if error is not None:
                detail = params.get("error_description") or error
                return refused(request, 401, f"the identity provider refused: {detail[:200]}")
            try:
                done = login.finish(
                    request.cookies.get(oidc_login.COOKIE), params.get("code"), params.get("state")
                )
            except SpeanError as exc:
                return refused(request, http_status(exc), exc.message)
            response = self.start_session(
                done.principal,
                None,
                self.home(done.principal),
                expires_at=done.expires_at,
                request=request,
            )
            response.delete_cookie(oidc_login.COOKIE, path=oidc_login.COOKIE_PATH)
            return response


# -- what every console shares: finding it, a page's session, login and logout ----------

LOGIN = "/console/login"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def page_session(request: Request, permission: Permission) -> tuple[Session, Principal]:
    """The request's session and its principal, if it holds `permission` (else a page)."""
    console = console_of(request)
    session = console.session(request)
    return session, console.require(session, permission)


class Posted(NamedTuple):
    """A console form that passed the checks every change needs."""

    console: Console
    session: Session
    principal: Principal
    form: Mapping[str, Any]


async def posted_form(request: Request, permission: Permission) -> Posted:
    """A POSTed form: its session (else back to log in), its CSRF token (else 403) and
    the session's role holding `permission` (else a 403 page), in that order."""
    console = console_of(request)
    session = console.session(request)
    form = await request.form()
    console.check_csrf(request, session, form)
    return Posted(console, session, console.require(session, permission), form)


_login_routes = APIRouter(include_in_schema=False)


@_login_routes.get("/console")
@_login_routes.get("/console/")
def _home(request: Request) -> Response:
    console = console_of(request)
    session = console.sessions.get(request.cookies.get(SESSION_COOKIE))
    to = console.home(session.principal) if session is not None else LOGIN
    return RedirectResponse(to, status_code=303)


@_login_routes.get(LOGIN)
def _login_page(request: Request) -> HTMLResponse:
    return console_of(request).render(request, "login.html", refused=None)


@_login_routes.post(LOGIN)
def _login(request: Request, api_key: Annotated[str, Form(max_length=200)]) -> Response:
    console = console_of(request)
    try:
        principal = console.authenticator.api_keys.authenticate(api_key.strip())
    except SpeanError as exc:
        return console.render(request, "login.html", status=401, refused=exc.message)
    return console.start_session(principal, api_key.strip(), console.home(principal))


@_login_routes.post(f"{LOGIN}/certificate")
def _login_certificate(request: Request) -> Response:
    console = console_of(request)
    try:
        principal = console.authenticator.authenticate(request)
    except SpeanError as exc:
        return console.render(request, "login.html", status=401, refused=exc.message)
    return console.start_session(principal, None, console.home(principal))


@_login_routes.post("/console/logout")
async def _logout(request: Request) -> Response:
    console = console_of(request)
    session = console.session(request)
    console.check_csrf(request, session, await request.form())
    return console.end_session(request, LOGIN)
