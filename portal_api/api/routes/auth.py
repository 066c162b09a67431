"""``POST /token``: a personal token in, a short-lived bearer token out (OAuth 2.0
client credentials, like the portal's ``/token POST`` service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import JSONResponse

from portal_api import crud, schemas
from portal_api.api.deps import ServicesDep, SessionDep
from portal_api.core import problems

router = APIRouter(tags=["autenticação"])


@router.post(
    "/token",
    response_model=schemas.TokenOut,
    summary="Obter um token de acesso",
    description=(
        "Troca o token pessoal (emitido por `vacina-d1 admin issue-token`, exibido uma única vez) por um token "
        "de acesso de curta duração. Campos de formulário OAuth 2.0: `grant_type=client_credentials`, "
        "`client_id` = CPF do usuário, `client_secret` = token pessoal. Revogar o token pessoal invalida "
        "na hora todos os tokens de acesso obtidos com ele."
    ),
    responses=problems.responses(
        400, 401, 413, 422, 503,
        descriptions={
            400: "`grant_type` diferente de `client_credentials` (erro OAuth `unsupported_grant_type`), ou corpo ilegível.",
            401: "CPF e token pessoal não conferem, ou o token está expirado ou revogado (erro OAuth `invalid_client`).",
        },
    ),
)
def issue_access_token(
    services: ServicesDep,
    session: SessionDep,
    grant_type: Annotated[str, Form(max_length=64, description="Sempre `client_credentials`.")],
    client_id: Annotated[str, Form(max_length=32, description="CPF do usuário (com ou sem pontuação).")],
    client_secret: Annotated[str, Form(max_length=256, description="O token pessoal.")],
):
    if grant_type != "client_credentials":
        raise problems.ProblemError(
            400, "grant_type precisa ser client_credentials.", slug="grant-type-nao-suportado",
            extra={"error": "unsupported_grant_type"},
        )
    issued = crud.exchange_personal_token(
        session, services.token_key, client_id=client_id, client_secret=client_secret,
        seconds=services.settings.access_token_seconds,
    )
    if issued is None:
        session.rollback()
        raise problems.ProblemError(
            401, "CPF ou token pessoal inválido, expirado ou revogado.", slug="cliente-invalido",
            headers={"WWW-Authenticate": 'Bearer error="invalid_client"'}, extra={"error": "invalid_client"},
        )
    access, plain = issued
    expires_in = int((crud.aware(access.expires_at) - crud.utcnow()).total_seconds())
    session.commit()
    body = schemas.TokenOut(access_token=plain, expires_in=max(0, expires_in))
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
