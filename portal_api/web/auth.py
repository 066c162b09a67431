"""Login with gov.br (OpenID Connect, authorization code + PKCE + state + nonce) through
Authlib's Starlette client, and the user of a page.

* ``GET /entrar`` — the page with "Entrar com GOV.BR"; ``GET /entrar/govbr`` starts the
  flow (Authlib makes ``state``, ``nonce`` and the S256 PKCE pair and keeps them in
  the session).
* ``GET /auth/retorno`` — the issuer's redirect: Authlib checks ``state``, exchanges
  the code (client authenticated with HTTP Basic, as gov.br asks) and verifies the ID
  token (signature against the issuer's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``).
  The ``sub`` is the CPF: the user is found by it, or created, so the person of the
  pages is the person behind their API tokens.
* ``POST /sair`` — "Sair com segurança": ends our session row, clears the cookie and
  sends the browser to the issuer's ``end_session_endpoint`` (RP-initiated logout)
  with ``id_token_hint`` and ``post_logout_redirect_uri``.

Pages take the user from ``CurrentWebUser`` (redirects to the login when there is none)
or ``OptionalWebUser``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Annotated
from urllib.parse import quote

import authlib.deprecate  # noqa: F401 - it installs an "always" filter; ours (below) must come after
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from portal_api import crud
from portal_api.core import security
from portal_api.models import User
from portal_api.web import csrf
from portal_api.web.sessions import SessionStore, WebUser

# Authlib 1.9 suggests the "httpx2" fork; the project stays on httpx (pinned, used everywhere).
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
from authlib.integrations.base_client import OAuthError  # noqa: E402
from authlib.integrations.starlette_client import OAuth  # noqa: E402

log = logging.getLogger("portal_api.web")

CLIENT = "govbr"


class LoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """Only a path of this site (no scheme, no host, no ``//``) to go back to after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 500:
        return "/"
    return value


class Login:
    def __init__(
        self, *, discovery_url: str, client_id: str, client_secret: str, scopes: str, public_url: str, store: SessionStore
    ):
        self.public_url = public_url.rstrip("/")
        self.store = store
        self.oauth = OAuth()
        self.oauth.register(
            CLIENT,
            server_metadata_url=discovery_url,
            client_id=client_id,
            client_secret=client_secret,
            client_kwargs={"scope": scopes, "code_challenge_method": "S256", "token_endpoint_auth_method": "client_secret_basic"},
        )

    @property
    def client(self):
        return self.oauth.create_client(CLIENT)

    @property
    def redirect_uri(self) -> str:
        return self.public_url + "/auth/retorno"


def get_login(request: Request) -> Login:
    return request.app.state.web_login


def optional_user(request: Request) -> WebUser | None:
    if not hasattr(request.state, "web_user"):  # once per request
        store: SessionStore = request.app.state.web_sessions
        request.state.web_user = store.lookup(request.session.get("sid"))
    return request.state.web_user


def require_user(request: Request) -> WebUser:
    user = optional_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "/")
    return user


OptionalWebUser = Annotated[WebUser | None, Depends(optional_user)]
CurrentWebUser = Annotated[WebUser, Depends(require_user)]


def _user_from_claims(request: Request, claims: dict) -> User:
    """Find the user by CPF (``sub``) or create them from the ID token's name and e-mail."""
    cpf = security.normalize_cpf(str(claims.get("sub", "")))
    database = request.app.state.services.database
    with database.session() as session, session.begin():
        user = session.scalar(sa.select(User).where(User.cpf == cpf))
        if user is None:
            name = (str(claims.get("name") or "").strip() or f"Usuário {security.mask_cpf(cpf)}")[:200]
            email = str(claims.get("email") or "").strip() or f"{cpf}@sem-email.invalid"
            user = crud.create_user(session, cpf=cpf, name=name, email=email)
        session.expunge(user)
        return user


# Failed logins per address, counted in the database like POST /token's (every worker sees them).
LOGIN_WINDOW_SECONDS = 60


def _address(request: Request) -> str:
    from portal_api.core.ip_ranges import client_address

    return client_address(request, request.app.state.services.settings).text or "desconhecido"


def _login_limited(request: Request):
    """The 429 page once an address has failed the login too often in the window, else None."""
    from portal_api import guards
    from portal_api.web.render import error_page

    services = request.app.state.services
    limit = services.settings.token_attempts_per_minute
    retry = guards.retry_after(
        services.database.engine, (f"login:endereco:{_address(request)}",), limit=limit, window_seconds=LOGIN_WINDOW_SECONDS
    )
    if retry is None:
        return None
    log.warning("login recusado por excesso de falhas do endereço %s", _address(request))
    return error_page(
        request,
        429,
        f"Tentativas de login demais deste endereço. Tente de novo em {retry} segundos.",
        headers={"Retry-After": str(retry)},
    )


def _count_login_failure(request: Request) -> None:
    from portal_api import guards

    engine = request.app.state.services.database.engine
    guards.count(engine, (f"login:endereco:{_address(request)}",), keep_seconds=LOGIN_WINDOW_SECONDS)


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/entrar/govbr")
    async def login_start(request: Request, proximo: str | None = None):
        refused = _login_limited(request)
        if refused is not None:
            return refused
        login = get_login(request)
        request.session["next"] = safe_next(proximo)
        try:
            return await login.client.authorize_redirect(request, login.redirect_uri)
        except Exception:  # noqa: BLE001 - the issuer unreachable: a page, not a traceback
            log.exception("emissor OpenID indisponível")
            from portal_api.web.render import error_page

            return error_page(request, 503, "O login gov.br está indisponível no momento. Tente novamente em instantes.")

    @r.get("/auth/retorno")
    async def login_callback(request: Request):
        from portal_api.web.render import error_page

        refused = _login_limited(request)
        if refused is not None:
            return refused
        login = get_login(request)
        try:
            token = await login.client.authorize_access_token(request)
        except OAuthError as exc:
            log.warning("login recusado (%s): %s %s", _address(request), exc.error, exc.description)
            _count_login_failure(request)
            return error_page(request, 400, "Não foi possível concluir o login com gov.br. Tente entrar de novo.")
        except Exception:  # noqa: BLE001 - a bad or unverifiable ID token, an unreachable issuer
            log.exception("login com gov.br falhou (%s)", _address(request))
            _count_login_failure(request)
            return error_page(request, 400, "Não foi possível concluir o login com gov.br. Tente entrar de novo.")
        claims = token.get("userinfo")
        if not claims:
            _count_login_failure(request)
            return error_page(request, 400, "O emissor não devolveu um ID token verificável; o login foi recusado.")
        try:
            user = _user_from_claims(request, dict(claims))
        except ValueError as exc:
            log.warning("login recusado (%s): %s", _address(request), exc)
            _count_login_failure(request)
            return error_page(request, 400, "O CPF informado pelo gov.br é inválido; o login foi recusado.")
        next_path = safe_next(request.session.get("next"))
        # A new session: nothing of the anonymous one survives (no fixation).
        old_sid = request.session.get("sid")
        if old_sid:
            login.store.end(old_sid)
        request.session.clear()
        request.session["sid"] = login.store.start(user.id, token.get("id_token"))
        csrf.rotate(request)
        return RedirectResponse(next_path, status_code=303)

    @r.post("/sair")
    async def logout(request: Request, _: csrf.CsrfChecked):
        login = get_login(request)
        id_token = login.store.end(request.session.get("sid"))
        request.session.clear()
        try:
            metadata = await login.client.load_server_metadata()
        except Exception:  # noqa: BLE001 - our session is over anyway
            metadata = {}
        end_session = metadata.get("end_session_endpoint")
        if end_session:
            params = (
                f"post_logout_redirect_uri={quote(login.public_url + '/', safe='')}&client_id={quote(login.client.client_id)}"
            )
            if id_token:
                params += f"&id_token_hint={quote(id_token)}"
            return RedirectResponse(f"{end_session}?{params}", status_code=303)
        return RedirectResponse("/?saiu=1", status_code=303)

    return r


def login_redirect(exc: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/entrar?proximo={quote(exc.next_path, safe='')}", status_code=303)
