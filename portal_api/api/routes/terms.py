"""Terms of use: versioned per operation, accepted before the first download and
again whenever a new version is published."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from portal_api import crud, schemas
from portal_api.api.deps import CurrentPrincipal, ScopeDep, SessionDep, operation_in_scope
from portal_api.api.present import local_time
from portal_api.api.routes.listing import OperationPath
from portal_api.core import problems

router = APIRouter(tags=["termos de uso"])


def _current(session, operation: str):
    terms = crud.current_terms(session, operation)
    if terms is None:
        raise problems.not_found("Ainda não há termos de uso publicados para esta operação.")
    return terms


@router.get(
    "/operations/{operation}/terms",
    response_model=schemas.TermsOut,
    summary="Termos de uso vigentes",
    description="O texto e a versão atual dos termos de uso da operação, e se o usuário já os aceitou.",
    responses=problems.responses(401, 404, 422, 503),
)
def current_terms(
    operation: OperationPath, principal: CurrentPrincipal, session: SessionDep, scope: ScopeDep
) -> schemas.TermsOut:
    operation_in_scope(operation, scope)
    terms = _current(session, operation)
    accepted = crud.acceptance(session, principal.user_id, terms)
    return schemas.TermsOut(
        operation=operation,
        version=terms.version,
        text=terms.text,
        text_sha256=terms.text_sha256,
        published_at=local_time(terms.published_at),
        accepted=accepted is not None,
        accepted_at=local_time(accepted.accepted_at) if accepted else None,
    )


@router.post(
    "/operations/{operation}/terms/acceptances",
    response_model=schemas.TermsAcceptanceOut,
    status_code=201,
    summary="Li e aceito os termos de uso",
    description=(
        "Registra que o usuário leu e aceitou a versão atual dos termos de uso da operação (usuário, versão, data "
        "e hora). Aceitar de novo a mesma versão devolve o aceite já registrado (200)."
    ),
    responses={
        200: {"description": "Esta versão já tinha sido aceita: o aceite registrado.", "model": schemas.TermsAcceptanceOut},
        **problems.responses(
            400, 401, 404, 409, 413, 422, 503, descriptions={409: "A versão enviada não é a atual: leia os termos vigentes."}
        ),
    },
)
def accept_terms(
    operation: OperationPath, body: schemas.TermsAcceptanceIn, principal: CurrentPrincipal, session: SessionDep, scope: ScopeDep
):
    operation_in_scope(operation, scope)
    terms = _current(session, operation)
    if body.version != terms.version:
        raise problems.ProblemError(
            409,
            f"A versão {body.version} não é a vigente; a versão atual dos termos é a {terms.version}.",
            slug="versao-dos-termos-desatualizada",
        )
    existing = crud.acceptance(session, principal.user_id, terms)
    if existing is None:
        try:
            created = crud.accept_terms(session, principal.user_id, terms)
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            existing = crud.acceptance(session, principal.user_id, terms)
            assert existing is not None  # the concurrent acceptance that made ours fail
        else:
            return schemas.TermsAcceptanceOut(
                operation=operation, version=terms.version, accepted_at=local_time(created.accepted_at)
            )
    body_out = schemas.TermsAcceptanceOut(
        operation=operation, version=terms.version, accepted_at=local_time(existing.accepted_at)
    )
    return JSONResponse(body_out.model_dump(mode="json"), status_code=200)
