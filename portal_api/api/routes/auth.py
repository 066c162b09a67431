"""``POST /token``: a personal token in, a short-lived bearer token out (OAuth 2.0
client credentials, like the portal's ``/token POST`` service)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from portal_api import crud, guards, schemas
from portal_api.api.deps import ServicesDep, SessionDep
from portal_api.core import problems
from portal_api.core.ip_ranges import client_address
from portal_api.core.security import mask_cpf

log = logging.getLogger("portal_api")
WINDOW_SECONDS = 60

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
        400,
        401,
        413,
        422,
        429,
        503,
        descriptions={
            429: "Tentativas demais deste CPF ou deste endereço no último minuto (`VACINA_D1_TOKEN_ATTEMPTS_PER_MINUTE` "
            "falhas); o cabeçalho Retry-After diz quantos segundos esperar.",
            400: "`grant_type` diferente de `client_credentials` (erro OAuth `unsupported_grant_type`), ou corpo ilegível.",
            401: "CPF e token pessoal não conferem, ou o token está expirado ou revogado (erro OAuth `invalid_client`).",
        },
    ),
)
def issue_access_token(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    grant_type: Annotated[str, Form(max_length=64, description="Sempre `client_credentials`.")],
    client_id: Annotated[str, Form(max_length=32, description="CPF do usuário (com ou sem pontuação).")],
    client_secret: Annotated[str, Form(max_length=256, description="O token pessoal.")],
):
    if grant_type != "client_credentials":
        raise problems.ProblemError(
            400,
            "grant_type precisa ser client_credentials.",
            slug="grant-type-nao-suportado",
            extra={"error": "unsupported_grant_type"},
        )
    # Failed attempts per client and per address, counted in the database (every worker sees them).
    address = client_address(request, services.settings).text or "desconhecido"
    client = "".join(ch for ch in client_id if ch.isdigit())[:11] or client_id[:32]
    buckets = (f"token:cliente:{client}", f"token:endereco:{address}")
    limit = services.settings.token_attempts_per_minute
    retry = guards.retry_after(services.database.engine, buckets, limit=limit, window_seconds=WINDOW_SECONDS)
    if retry is not None:
        log.warning("POST /token recusado por excesso de tentativas: cliente %s, endereço %s", mask_cpf(client), address)
        raise guards.too_many(f"Tentativas demais de obter token (limite de {limit} falhas por minuto).", retry)
    issued = crud.exchange_personal_token(
        session,
        services.token_key,
        client_id=client_id,
        client_secret=client_secret,
        seconds=services.settings.access_token_seconds,
    )
    if issued is None:
        session.rollback()
        session.close()
        guards.count(services.database.engine, buckets, keep_seconds=WINDOW_SECONDS)
        log.warning("POST /token: credenciais inválidas para o cliente %s do endereço %s", mask_cpf(client), address)
        raise problems.ProblemError(
            401,
            "CPF ou token pessoal inválido, expirado ou revogado.",
            slug="cliente-invalido",
            headers={"WWW-Authenticate": 'Bearer error="invalid_client"'},
            extra={"error": "invalid_client"},
        )
    access, plain = issued
    expires_in = int((crud.aware(access.expires_at) - crud.utcnow()).total_seconds())
    session.commit()
    body = schemas.TokenOut(access_token=plain, expires_in=max(0, expires_in))
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
