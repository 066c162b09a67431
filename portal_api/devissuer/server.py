"""A development OpenID provider, built on Authlib's authorization server.

Real protocol, development identity: discovery document, JWKS, ID tokens signed with
RS256 by a key made when the process starts, authorization code flow with PKCE
(S256 required), ``state`` and ``nonce``, RP-initiated logout. Like gov.br's first
step it asks only for the CPF, and any person the portal knows can log in that way
(no password: it exists for ``make run`` and the tests and is served only by
``vacina-d1 serve --dev-login``).

Authorization codes live in memory for 5 minutes (one process, as the dev server is).
The issuer keeps its own login in a signed cookie (path ``/dev-issuer``), so that a
second login skips the CPF form — as gov.br's single sign-on does — until the portal's
"Sair com segurança" ends it through the end-session endpoint.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, InvalidRequestError, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant as _AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, TimestampSigner
from joserfc.jwk import KeySet, RSAKey

from portal_api.core import security
from portal_api.core.db import Database
from portal_api.models import User

PREFIX = "/dev-issuer"
COOKIE = "vd1_dev_issuer"
CODE_SECONDS = 300
LOGIN_SECONDS = 8 * 3600
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    scope: str = "openid email profile govbr_confiabilidades"

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(self.client_secret.encode(), (client_secret or "").encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "client_secret_basic" if endpoint == "token" else True

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: int
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return ["passwd"]

    def is_expired(self):
        return self.auth_time + CODE_SECONDS < time.time()


class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, str]):
        self._values = values

    @property
    def data(self):
        return self._values

    @property
    def datalist(self):
        return {k: [v] for k, v in self._values.items()}


class StrictCodeChallenge(CodeChallenge):
    """PKCE for every client, confidential ones too, and only S256 (Authlib's default
    asks it of public clients only)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        return super().validate_code_challenge(grant, redirect_uri)


class StarletteOAuth2Request(OAuth2Request):
    """Authlib's request from a Starlette request whose form was already read."""

    def __init__(self, request: Request, form: dict[str, str] | None = None):
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = form or {}
        self.payload = _Payload({**self._args, **self._form})

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return self._form


class DevIssuer:
    def __init__(self, database: Database, *, public_url: str, client_id: str, client_secret: str, signing_key: bytes):
        self.database = database
        self.issuer = public_url.rstrip("/") + PREFIX
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}, private=True)
        self.client = Client(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=[public_url.rstrip("/") + "/auth/retorno"],
            post_logout_redirect_uris=[public_url.rstrip("/") + "/"],
        )
        self.codes: dict[str, AuthorizationCode] = {}
        self.lock = threading.Lock()
        self.signer = TimestampSigner(signing_key, salt="vacina-d1.dev-issuer")
        self.server = self._server()

    # -- Authlib wiring -----------------------------------------------------------------

    def _server(self) -> AuthorizationServer:
        issuer = self

        class Server(AuthorizationServer):
            def query_client(self, client_id):
                return issuer.client if client_id == issuer.client.client_id else None

            def save_token(self, token, request):
                pass  # access tokens are not used against any resource here (no userinfo)

            def create_oauth2_request(self, request):
                return request

            def create_json_request(self, request):
                return request

            def handle_response(self, status, body, headers):
                headers = dict(headers)
                if isinstance(body, dict):
                    return JSONResponse(body, status_code=status, headers={**headers, "Cache-Control": "no-store"})
                return Response(body or b"", status_code=status, headers=headers)

            def send_signal(self, name, *args, **kwargs):
                pass

        class CodeGrant(_AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code, request):
                payload = request.payload.data
                with issuer.lock:
                    issuer._expire_codes()
                    issuer.codes[code] = AuthorizationCode(
                        code=code,
                        client_id=request.client.client_id,
                        redirect_uri=payload.get("redirect_uri", ""),
                        scope=request.scope or payload.get("scope", ""),
                        user_id=request.user.id,
                        nonce=payload.get("nonce"),
                        code_challenge=payload.get("code_challenge"),
                        code_challenge_method=payload.get("code_challenge_method"),
                    )

            def query_authorization_code(self, code, client):
                with issuer.lock:
                    found = issuer.codes.get(code)
                if found is not None and found.client_id == client.client_id and not found.is_expired():
                    return found
                return None

            def delete_authorization_code(self, authorization_code):
                with issuer.lock:
                    issuer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return issuer._user(authorization_code.user_id)

        class OpenIDCode(_OpenIDCode):
            def exists_nonce(self, nonce, request):
                with issuer.lock:
                    return any(c.nonce == nonce for c in issuer.codes.values())

            def resolve_client_private_key(self, client):
                return issuer.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": issuer.key.kid}

            def get_client_claims(self, client):
                return issuer.id_token_claims(client)

            def generate_user_info(self, user, scope):
                # gov.br's Login Único: the CPF is the subject.
                info = UserInfo(sub=user.cpf)
                if "profile" in scope.split():
                    info["name"] = user.name
                if "email" in scope.split():
                    info["email"] = user.email
                    info["email_verified"] = True
                return info

        class EndSession(_EndSessionEndpoint):
            def get_server_jwks(self):
                return KeySet([issuer.key])

            def end_session(self, end_session_request):
                pass  # the cookie is dropped by the route, on the response

        server = Server()
        server.register_token_generator("default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(32)))
        server.register_grant(CodeGrant, [StrictCodeChallenge(required=True), OpenIDCode(require_nonce=True)])
        server.register_endpoint(EndSession)
        return server

    def id_token_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": [client.get_client_id()], "iat": now, "exp": now + 600}

    def _expire_codes(self) -> None:
        for code in [c for c, v in self.codes.items() if v.is_expired()]:
            del self.codes[code]

    def _user(self, user_id: int) -> User | None:
        with self.database.session() as session:
            user = session.get(User, user_id)
            if user is not None:
                session.expunge(user)
            return user if user is not None and user.is_active else None

    def _user_by_cpf(self, cpf: str) -> User | None:
        with self.database.session() as session:
            user = session.scalar(sa.select(User).where(User.cpf == cpf, User.is_active.is_(True)))
            if user is not None:
                session.expunge(user)
            return user

    # -- the issuer's own login (cookie) -----------------------------------------------------

    def logged_in(self, request: Request) -> User | None:
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            user_id = int(self.signer.unsign(value, max_age=LOGIN_SECONDS).decode())
        except (BadSignature, ValueError):
            return None
        return self._user(user_id)

    def remember(self, response: Response, user: User) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.sign(str(user.id)).decode(),
            max_age=LOGIN_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=self.issuer.startswith("https://"),
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "end_session_endpoint": self.issuer + "/logout",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": self.client.scope.split(),
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "name", "email", "email_verified", "amr", "nonce", "iss", "aud", "exp", "iat"],
        }


def _form_token(issuer: DevIssuer, request: Request) -> str:
    return issuer.signer.sign(b"cpf-form").decode()


def router(issuer: DevIssuer) -> APIRouter:
    r = APIRouter(prefix=PREFIX, include_in_schema=False)

    @r.get("/.well-known/openid-configuration")
    def discovery():
        return JSONResponse(issuer.metadata())

    @r.get("/jwks")
    def jwks():
        return JSONResponse(KeySet([issuer.key]).as_dict(private=False))

    def _page(request: Request, params: dict[str, str], error: str | None = None, status: int = 200, cpf: str = ""):
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {"params": params, "error": error, "cpf": cpf, "form_token": _form_token(issuer, request)},
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )

    def _error_page(request: Request, error: OAuth2Error):
        return TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {"error": error.error, "description": error.description or ""},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )

    @r.get("/authorize")
    def authorize(request: Request):
        oauth_request = StarletteOAuth2Request(request)
        try:
            grant = issuer.server.get_consent_grant(oauth_request, end_user=None)
        except OAuth2Error as error:
            return _error_page(request, error)
        user = issuer.logged_in(request)
        if user is not None and request.query_params.get("prompt") != "login":
            return issuer.server.create_authorization_response(oauth_request, grant_user=user, grant=grant)
        return _page(request, dict(request.query_params))

    @r.post("/authorize")
    async def authorize_post(request: Request):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        cpf_text = form.pop("cpf", "")
        token = form.pop("form_token", "")
        params = {k: v for k, v in form.items()}
        try:
            issuer.signer.unsign(token, max_age=3600)
        except BadSignature:
            return _page(request, params, "O formulário expirou; tente de novo.", 400)
        # Authlib validates what came in the query string of the original request.
        request.scope["query_string"] = urlencode(params).encode()
        oauth_request = StarletteOAuth2Request(Request(request.scope))
        try:
            grant = issuer.server.get_consent_grant(oauth_request, end_user=None)
        except OAuth2Error as error:
            return _error_page(request, error)
        try:
            cpf = security.normalize_cpf(cpf_text)
        except ValueError:
            return _page(request, params, "CPF inválido: confira os 11 dígitos.", 422, cpf_text)
        user = issuer._user_by_cpf(cpf)
        if user is None:
            return _page(request, params, "Não há conta com este CPF neste ambiente de desenvolvimento.", 422, cpf_text)
        response = issuer.server.create_authorization_response(oauth_request, grant_user=user, grant=grant)
        issuer.remember(response, user)
        return response

    @r.post("/token")
    async def token(request: Request):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return issuer.server.create_token_response(StarletteOAuth2Request(request, form))

    @r.api_route("/logout", methods=["GET", "POST"])
    async def logout(request: Request):
        form = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            validated = issuer.server.validate_endpoint_request("end_session", StarletteOAuth2Request(request, form))
        except OAuth2Error as error:
            return _error_page(request, error)
        response = issuer.server.create_endpoint_response("end_session", validated)
        if response is None:
            response = TEMPLATES.TemplateResponse(request, "logged_out.html", {}, headers={"Cache-Control": "no-store"})
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return r
