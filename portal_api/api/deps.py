"""Dependencies of the routes: the database session, who is calling, and what they
may see.

Authentication sits behind ``IdentityProvider``: the app asks each configured
provider in turn to recognise the bearer credential. Today there is one, for the
opaque tokens ``POST /token`` issues; a gov.br OpenID Connect provider (validating
its ID/access tokens and mapping the CPF claim to a ``User``) is one more class in
``app.state.services.identity_providers``, and no route changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, AsyncIterator, Callable, NoReturn, Protocol

from fastapi import Depends, Request, Security
from fastapi.security import OAuth2
from sqlalchemy.orm import Session

from portal_api import crud, guards
from portal_api.core import problems
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database
from portal_api.core.ip_ranges import client_address
from portal_api.refresh import DagsterClient
from serving.catalog import FileRecord
from serving.storage import Storage

log = logging.getLogger("portal_api")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, however they authenticated."""

    user_id: int
    name: str
    cpf: str
    email: str
    method: str  # "token" today; "oidc" with gov.br


class IdentityProvider(Protocol):
    name: str

    def authenticate(self, session: Session, bearer: str) -> Principal | None:
        """The caller behind this bearer credential, or None when this provider does
        not recognise it (the next provider is asked)."""


class AccessTokenProvider:
    """The opaque bearer tokens of ``POST /token`` (stored as keyed hashes)."""

    name = "token"

    def __init__(self, key: bytes):
        self.key = key

    def authenticate(self, session: Session, bearer: str) -> Principal | None:
        found = crud.user_of_access_token(session, self.key, bearer)
        if found is None:
            return None
        user, _ = found
        return Principal(user.id, user.name, user.cpf, user.email, self.name)


@dataclass
class Services:
    settings: PortalSettings
    database: Database
    storage: Storage
    token_key: bytes
    dagster: DagsterClient
    identity_providers: list[IdentityProvider] = field(default_factory=list)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[Session]:
    # An async generator on purpose: FastAPI runs the exit of a sync generator dependency
    # through one process-wide single-thread limiter, so under load closing sessions queued
    # behind each other, each still holding its pooled connection (issue 11). Closing here
    # is a rollback at most, done on the event loop.
    session = services.database.session()
    try:
        yield session
    finally:
        session.close()


def release(session: Session) -> None:
    """Give the session's connection back to the pool between steps of a request (the
    session takes one again when next used): a request then never holds two at once —
    its session's and the catalog's — which under load exhausted the pool (issue 11)."""
    if not session.new and not session.dirty and not session.deleted:
        session.commit()


# Closed as soon as the route returns, before the answer is sent (scope="function"): a
# slow client reading a listing no longer keeps a pooled connection (issue 11).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# Documents the flow in OpenAPI (Swagger's "Authorize"); the header is parsed below.
oauth2_scheme = OAuth2(
    flows={"clientCredentials": {"tokenUrl": "/token", "scopes": {}}},
    scheme_name="token",
    description="Troque o token pessoal por um token de acesso em `POST /token` e envie-o como `Authorization: Bearer`.",
    auto_error=False,
)


def get_principal(
    services: ServicesDep, session: SessionDep, authorization: Annotated[str | None, Security(oauth2_scheme)] = None
) -> Principal:
    if not authorization:
        raise problems.ProblemError(
            401,
            "Envie um token de acesso no cabeçalho Authorization: Bearer (obtido em POST /token).",
            headers={"WWW-Authenticate": 'Bearer realm="vacina-d1"'},
        )
    scheme, _, bearer = authorization.partition(" ")
    bearer = bearer.strip()
    if scheme.lower() != "bearer" or not bearer or len(bearer) > 4096:
        raise problems.unauthorized("O cabeçalho Authorization precisa ser `Bearer <token>`.", error="invalid_request")
    try:
        for provider in services.identity_providers:
            principal = provider.authenticate(session, bearer)
            if principal is not None:
                return principal
    finally:
        release(session)
    raise problems.unauthorized("Token de acesso inválido, expirado ou revogado.")


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def caller_of(request: Request) -> Principal | None:
    """The caller of a request refused before its handler ran (no route, bad parameters or
    body), or None: lets those refusals answer 401 first to anyone without a valid token."""
    services = get_services(request)
    with services.database.session() as session:
        try:
            return get_principal(services, session, request.headers.get("authorization"))
        except problems.ProblemError:
            return None


@dataclass(frozen=True)
class RequestScope(crud.Scope):
    """The scope of one request: also who asked, from where, so a call made with a
    credential from outside its IP range can be refused and logged."""

    refuse: Callable[[str], NoReturn] | None = None


def get_scope(principal: CurrentPrincipal, session: SessionDep, services: ServicesDep, request: Request) -> RequestScope:
    address = client_address(request, services.settings)
    scope = crud.scope_of(
        session, principal.user_id, environment=services.settings.served_environment, client_address=address.address
    )
    release(session)

    def refuse(operation: str) -> NoReturn:
        credential_id = scope.blocked[operation]
        # Refusals are rate-limited too (per user, in the database so every worker counts them).
        bucket = (f"faixa-ip:usuario:{principal.user_id}",)
        limit = services.settings.token_attempts_per_minute
        retry = guards.retry_after(services.database.engine, bucket, limit=limit, window_seconds=60)
        if retry is not None:
            log.warning(
                "recusas por faixa de IP demais: usuário %s, endereço %s", principal.user_id, address.text or "desconhecido"
            )
            raise guards.too_many(f"Acessos recusados demais fora da faixa de IP (limite de {limit} por minuto).", retry)
        guards.count(services.database.engine, bucket, keep_seconds=60)
        log.warning(
            "acesso recusado fora da faixa de IP: usuário %s, credencial %s, endereço %s (par %s), %s %s",
            principal.user_id,
            credential_id,
            address.text or "desconhecido",
            address.peer,
            request.method,
            request.url.path,
        )
        try:
            from portal_api.solicitacoes.service import record_refusal

            record_refusal(
                services.database.engine,
                credential_id=credential_id,
                user_id=principal.user_id,
                client_address=address.text,
                peer=address.peer,
                method=request.method,
                path=request.url.path,
            )
        except Exception:  # noqa: BLE001 - the refusal stands even if its record cannot be written
            log.exception("recusa por faixa de IP não registrada")
        raise problems.ProblemError(
            403,
            f"Acesso recusado: o endereço {address.text or 'desconhecido'} está fora da faixa de IP registrada para a "
            "credencial desta operação. A tentativa foi registrada.",
            slug="fora-da-faixa-de-ip",
            title="Fora da faixa de IP da credencial",
        )

    return RequestScope(scope.operations, scope.blocked, refuse)


ScopeDep = Annotated[crud.Scope, Depends(get_scope)]

NOT_IN_SCOPE = "Operação ou arquivo não encontrado no escopo das suas credenciais."


def _refuse_if_blocked(operation: str, scope: crud.Scope) -> None:
    refuse = getattr(scope, "refuse", None)
    if operation in scope.blocked and operation not in scope and refuse is not None:
        refuse(operation)


def operation_in_scope(operation: str, scope: crud.Scope) -> str:
    """404 — never 403 — for an operation the caller's credentials do not grant; 403
    (logged) for one they grant only from another IP range."""
    if operation not in scope:
        _refuse_if_blocked(operation, scope)
        raise problems.not_found(NOT_IN_SCOPE)
    return operation


def file_in_scope(services: Services, file_id: int, scope: crud.Scope) -> FileRecord:
    """404 for a file that does not exist and for one outside the caller's scope alike
    (403, logged, for one whose credential refuses the caller's IP address)."""
    record = services.database.catalog.file(file_id)
    if record is not None and record.operation not in scope:
        _refuse_if_blocked(record.operation, scope)
    if record is None or record.operation not in scope:
        raise problems.not_found(NOT_IN_SCOPE)
    return record
