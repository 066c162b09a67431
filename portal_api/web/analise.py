"""The DATASUS analyst's pages: the requests to analyse, a request's summary with the
certificate's extracted fields and the evidence (PNG/PDF preview), the decisions
(approve in homologação, reject with a reason, approve/reject produção) and the
holder transfers.

Anyone who is not an analyst gets "não encontrado" on every one of these pages, as for
a page that does not exist. The decisions call the same ``service`` functions as the
API's analysis routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from portal_api.api.deps import SessionDep
from portal_api.core import problems
from portal_api.solicitacoes import present, schemas, service
from portal_api.solicitacoes.models import HolderTransfer
from portal_api.web.sessions import WebUser
from portal_api.web.solicitacoes import BASE as REQUESTS_BASE
from portal_api.web.solicitacoes_comum import attempt, filled, form_text
from portal_api.web.solicitacoes_pagina import PAGES, PageUser, check_csrf, not_found_page, render

router = APIRouter(include_in_schema=False)

BASE = f"{PAGES}/analise"
Id = Annotated[int, Path(ge=1, le=2_147_483_647)]
TABS = {"em_analise": "Em Análise", "respostas": "Respostas"}
DECISIONS = ("aprovar", "reprovar", "aprovar_producao", "reprovar_producao")


def is_analyst(session: Session, user: WebUser) -> bool:
    return service.has_role(session, user.id)


@router.get(BASE)
def requests_to_analyse(
    request: Request,
    user: PageUser,
    session: SessionDep,
    aba: Annotated[str, Query()] = "em_analise",
    pagina: Annotated[int, Query(ge=1, le=100_000)] = 1,
):
    if not is_analyst(session, user):
        return not_found_page(request, user)
    tab = aba if aba in TABS else "em_analise"
    size = request.app.state.solicitacoes.settings.page_size_default
    counts = service.request_counts(session, None)
    rows = service.requests_page(session, None, tab, offset=(pagina - 1) * size, limit=size)
    items = [present.request_item(row, requester, number) for row, requester, number in rows]
    _, pending = service.transfers_page(session, None, pending_only=True, offset=0, limit=1)
    return render(
        request,
        "analise/lista.html",
        user=user,
        aba=tab,
        abas=TABS,
        contagens=counts,
        itens=items,
        pagina=pagina,
        paginas=max(1, -(-counts[tab] // size)),
        base=BASE,
        pages=PAGES,
        titularidades=pending,
    )


def _summary_page(request, session, row, user, *, status_code=200, erros=None, valores=None):
    summary = present.request(session, row, viewer_id=user.id, analyst=True)
    own = row.requester_user_id == user.id
    return render(
        request,
        "analise/solicitacao.html",
        status_code=status_code,
        user=user,
        s=summary,
        base=REQUESTS_BASE,
        analise=BASE,
        pages=PAGES,
        propria=own,
        erros=erros,
        valores=valores or {},
        decisoes=DECISIONS,
    )


@router.get(BASE + "/solicitacoes/{solicitacao_id}")
def request_summary(request: Request, solicitacao_id: Id, user: PageUser, session: SessionDep):
    if not is_analyst(session, user):
        return not_found_page(request, user)
    try:
        row = service.visible_request(session, solicitacao_id, user.id, analyst=True)
    except problems.ProblemError:
        return not_found_page(request, user)
    page = _summary_page(request, session, row, user)
    session.commit()
    return page


@router.post(BASE + "/solicitacoes/{solicitacao_id}/{decisao}")
async def decide(request: Request, solicitacao_id: Id, decisao: str, user: PageUser, session: SessionDep):
    form = await check_csrf(request)
    if not is_analyst(session, user) or decisao not in DECISIONS:
        return not_found_page(request, user)
    try:
        row = service.visible_request(session, solicitacao_id, user.id, analyst=True)
    except problems.ProblemError:
        return not_found_page(request, user)
    text = form_text(form, "motivo" if decisao.startswith("reprovar") else "observacao")
    field = "motivo" if decisao.startswith("reprovar") else "observacao"

    def act():
        target = service.analysed_request(session, row.id, user.id, analyst=True)
        if decisao == "aprovar":
            chosen = [v for v in form.getlist("operacoes") if isinstance(v, str) and v]
            approval = schemas.AprovacaoIn.model_validate(filled({"observacao": text, "operacoes": chosen or None}))
            service.approve(session, target, user.id, approval)
        elif decisao == "aprovar_producao":
            decision = schemas.DecisaoIn.model_validate(filled({"observacao": text}))
            service.approve_production(session, target, user.id, decision.observacao)
        else:
            rejection = schemas.ReprovacaoIn.model_validate(filled({"motivo": text}))
            service.reject(session, target, user.id, rejection.motivo, production=decisao == "reprovar_producao")

    _, refusal = attempt(act)
    if refusal:
        session.rollback()
        # The reason's refusal goes beside the form of this decision.
        refusal.fields = {f"{decisao}.{path.split('.')[0]}": message for path, message in refusal.fields.items()}
        return _summary_page(
            request,
            session,
            row,
            user,
            status_code=422 if refusal.fields else 409,
            erros=refusal,
            valores={f"{decisao}.{field}": text},
        )
    session.commit()
    return RedirectResponse(f"{BASE}/solicitacoes/{row.id}?decidida={decisao}", status_code=303)


# -- holder transfers --------------------------------------------------------------------------------


@router.get(BASE + "/titularidade")
def transfers(request: Request, user: PageUser, session: SessionDep):
    if not is_analyst(session, user):
        return not_found_page(request, user)
    return _transfers_page(request, session, user)


def _transfers_page(request, session, user, *, status_code=200, erros=None, alvo=None, valores=None):
    rows, total = service.transfers_page(session, None, pending_only=True, offset=0, limit=100)
    items = [present.transfer(session, row, analyst=True) for row in rows]
    return render(
        request,
        "analise/titularidade.html",
        status_code=status_code,
        user=user,
        itens=items,
        total=total,
        base=BASE,
        pages=PAGES,
        erros=erros,
        alvo=alvo,
        valores=valores or {},
        decidido=request.query_params.get("decidido"),
    )


@router.post(BASE + "/titularidade/{pedido_id}/{decisao}")
async def decide_transfer(request: Request, pedido_id: Id, decisao: str, user: PageUser, session: SessionDep):
    form = await check_csrf(request)
    if not is_analyst(session, user) or decisao not in ("aprovar", "reprovar"):
        return not_found_page(request, user)
    row = session.get(HolderTransfer, pedido_id)
    if row is None:
        return not_found_page(request, user)
    approve = decisao == "aprovar"
    text = form_text(form, "observacao" if approve else "motivo")

    def act():
        if approve:
            approval = schemas.AprovacaoTitularidadeIn.model_validate(
                filled({"observacao": text, "manter_titular_anterior": bool(form.get("manter_titular_anterior"))})
            )
            service.decide_transfer(
                session, row, user.id, approve=True, reason=approval.observacao, keep_previous=approval.manter_titular_anterior
            )
        else:
            rejection = schemas.ReprovacaoIn.model_validate(filled({"motivo": text}))
            service.decide_transfer(session, row, user.id, approve=False, reason=rejection.motivo)

    _, refusal = attempt(act)
    if refusal:
        session.rollback()
        field = "observacao" if approve else "motivo"
        return _transfers_page(
            request,
            session,
            user,
            status_code=422 if refusal.fields else 409,
            erros=refusal,
            alvo=(pedido_id, decisao),
            valores={field: text},
        )
    session.commit()
    return RedirectResponse(f"{BASE}/titularidade?decidido={pedido_id}", status_code=303)
