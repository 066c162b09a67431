"""Mounting the pages on the API's app: static files, session cookie, login, the
development issuer (only with ``dev_login``), security headers and HTML error pages
for the page paths (the API keeps its problem documents)."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from pathlib import Path
from typing import Awaitable, Callable, cast
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from portal_api.core import problems
from portal_api.core.config import PortalSettings
from portal_api.web import auth, pages, render
from portal_api.web.sessions import COOKIE, SessionStore, session_key
from portal_api.web.settings import WebSettings

log = logging.getLogger("portal_api.web")

STATIC_DIR = Path(__file__).parent / "static"
# Paths that are pages (HTML errors, CSP). Everything else is the API's.
PAGE_PREFIXES = ("/portal", "/entrar", "/auth/", "/sair", "/dev-issuer", "/static", "/favicon.ico")


def is_page_path(path: str) -> bool:
    return path == "/" or path.startswith(PAGE_PREFIXES)


def _loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(issuer_origin: str | None) -> str:
    # form-action covers redirects after a submit: "Sair com segurança" goes on to the issuer.
    form_action = " ".join(filter(None, ["'self'", issuer_origin]))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    """CSP and friends on the pages only (``/docs`` and the API keep their own)."""

    def __init__(self, app, csp: str):
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
        ]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in names]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, settings: PortalSettings, *, dev_login: bool = False, web: WebSettings | None = None) -> None:
    web = web or WebSettings()
    # Bound to every interface: the browser on this machine still reaches it on loopback.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    public_url = (web.public_url or f"http://{host}:{settings.port}").rstrip("/")
    services = app.state.services
    store = SessionStore(services.database, web)
    app.state.web_sessions = store
    app.state.web_settings = web
    app.state.web_public_url = public_url

    discovery_url, client_secret = (
        web.oidc_discovery_url,
        web.oidc_client_secret.get_secret_value() if web.oidc_client_secret else "",
    )
    if dev_login:
        from portal_api import devissuer

        client_secret = secrets.token_urlsafe(32)
        issuer = devissuer.DevIssuer(
            services.database,
            public_url=public_url,
            client_id=web.oidc_client_id,
            client_secret=client_secret,
            signing_key=session_key(web, settings.home).encode(),
        )
        app.state.dev_issuer = issuer
        app.include_router(devissuer.router(issuer))
        discovery_url = issuer.issuer + "/.well-known/openid-configuration"
    app.state.web_login = (
        auth.Login(
            discovery_url=discovery_url,
            client_id=web.oidc_client_id,
            client_secret=client_secret,
            scopes=web.oidc_scopes,
            public_url=public_url,
            store=store,
        )
        if discovery_url
        else None
    )
    if not discovery_url:
        log.warning("login gov.br não configurado (VACINA_D1_OIDC_DISCOVERY_URL); as páginas só mostram o Início")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth.router())
    app.include_router(pages.router())
    # The request wizard, the analyst's pages and Permissões (issue 10).
    from portal_api.web import solicitacoes_pagina

    solicitacoes_pagina.install(app)

    secure = web.cookie_secure if web.cookie_secure is not None else not _loopback_http(public_url)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(web, settings.home),
        session_cookie=COOKIE,
        max_age=int(web.session_hours * 3600),
        same_site="lax",
        https_only=secure,
    )
    app.add_middleware(SecurityHeaders, csp=content_security_policy(_origin(discovery_url)))
    _html_errors(app)


def _html_errors(app: FastAPI) -> None:
    """Page paths answer errors with the error page; API paths keep the problem documents."""
    # The API's handlers (core.problems) are coroutine functions; Starlette's type also allows plain ones.
    ApiHandler = Callable[[Request, Exception], Awaitable[Response]]
    api_problem = cast(ApiHandler, app.exception_handlers[problems.ProblemError])
    api_http = cast(ApiHandler, app.exception_handlers[StarletteHTTPException])
    api_validation = cast(ApiHandler, app.exception_handlers[RequestValidationError])

    @app.exception_handler(problems.ProblemError)
    async def on_problem(request: Request, exc: problems.ProblemError):
        if is_page_path(request.url.path):
            return render.error_page(request, exc.status, exc.detail, exc.headers)
        return await api_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        if is_page_path(request.url.path):
            return render.error_page(request, exc.status_code)
        return await api_http(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        if is_page_path(request.url.path):
            # A page's bad query or path value (an id that is not a number): nothing to show.
            return render.error_page(request, 404)
        return await api_validation(request, exc)

    @app.exception_handler(auth.LoginRequired)
    async def on_login_required(request: Request, exc: auth.LoginRequired):
        return auth.login_redirect(exc)
