"""Permissões: who may act on each of the user's credentials (the holder and everyone
with an active permission), and "Adquirir titularidade de credencial" — a request an
analyst decides.

The transfer form answers "Solicitação registrada" whether or not the number is a
credential, already has a pending claim or is the user's own: the page never tells a
stranger who holds a credential, or whether it exists (issue 11 makes the API answer
alike). Only a malformed number or an empty justification is refused, beside its field.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from portal_api.api.deps import SessionDep
from portal_api.core import problems
from portal_api.models import Credential, Permission, User
from portal_api.solicitacoes import schemas, service
from portal_api.web.solicitacoes_comum import Refusal, filled, form_text, refusal_of
from portal_api.web.solicitacoes_pagina import PAGES, PageUser, check_csrf, render

router = APIRouter(include_in_schema=False)

BASE = f"{PAGES}/permissoes"


def masked_cpf(cpf: str) -> str:
    return f"***.{cpf[3:6]}.{cpf[6:9]}-**" if len(cpf) == 11 else "***"


def credentials_with_people(session: Session, user: User) -> list[dict]:
    """The user's credentials (held, or with an active permission), each with the people
    who may act on it."""
    permitted = sa.select(Permission.credential_id).where(Permission.user_id == user.id, Permission.revoked_at.is_(None))
    credentials = session.scalars(
        sa.select(Credential)
        .where(sa.or_(Credential.holder_user_id == user.id, Credential.id.in_(permitted)))
        .order_by(Credential.id)
    ).all()
    result = []
    for credential in credentials:
        people = session.execute(
            sa.select(User, Permission.granted_at)
            .join(Permission, Permission.user_id == User.id)
            .where(Permission.credential_id == credential.id, Permission.revoked_at.is_(None))
            .order_by(User.name)
        ).all()
        rows = [
            dict(
                nome=person.name,
                cpf=masked_cpf(person.cpf),
                titular=person.id == credential.holder_user_id,
                voce=person.id == user.id,
                desde=granted,
            )
            for person, granted in people
        ]
        if not any(r["titular"] for r in rows):
            holder = session.get_one(User, credential.holder_user_id)
            rows.insert(
                0, dict(nome=holder.name, cpf=masked_cpf(holder.cpf), titular=True, voce=holder.id == user.id, desde=None)
            )
        result.append(dict(credencial=credential, pessoas=rows, titular=credential.holder_user_id == user.id))
    return result


def _page(request, session, user, *, status_code=200, erros=None, valores=None, registrada=False):
    return render(
        request,
        "permissoes/permissoes.html",
        status_code=status_code,
        user=user,
        pages=PAGES,
        base=BASE,
        credenciais=credentials_with_people(session, user),
        erros=erros,
        valores=valores or {},
        registrada=registrada,
        rotulos=schemas.BODY_LABELS,
    )


@router.get(BASE)
def permissions(request: Request, user: PageUser, session: SessionDep):
    return _page(request, session, user, registrada=request.query_params.get("titularidade") == "registrada")


@router.post(BASE + "/titularidade")
async def ask_holdership(request: Request, user: PageUser, session: SessionDep):
    form = await check_csrf(request)
    values = {"numero_credencial": form_text(form, "numero_credencial"), "justificativa": form_text(form, "justificativa")}
    try:
        body = schemas.TitularidadeIn.model_validate(filled(values))
    except ValueError as exc:
        return _page(request, session, user, status_code=422, erros=refusal_of(exc), valores=values)
    try:
        service.request_transfer(session, user.id, body.numero_credencial, body.justificativa)
        session.commit()
    except problems.ProblemError as exc:
        session.rollback()
        if exc.status not in (404, 409):
            return _page(request, session, user, status_code=exc.status, erros=Refusal(general=exc.detail), valores=values)
    return RedirectResponse(f"{BASE}?titularidade=registrada#titularidade", status_code=303)
