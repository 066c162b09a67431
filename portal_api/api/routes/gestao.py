""" "Gerenciar credenciais" (the caller's credentials, or every one for an analyst, in the
tabs Homologação, Em análise para produção and Produção) and "Adquirir titularidade
de credencial" (a user asks to become a credential's holder; an analyst decides).

Transfer rules (issue 11): a claim answers 202 with the same body whether or not the
number is an active credential of someone else (no name, no id: numbers are
sequential, so anything else enumerates credentials and holders); claims are limited
per user and never block each other, so a stranger's claim cannot stop the real
holder's; an analyst — never on their own request — sees every pending claim with
what the number matched, and approves (only a matched one) or rejects with a reason. On approval the new holder gets the credential
and its permission, and the previous holder loses their permission unless the analyst
keeps it (``manter_titular_anterior``). The answer shows whether the person asking is
the responsible manager named in the request that issued the credential, the fact the
analyst most needs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from portal_api import guards
from portal_api.api import present as portal_present
from portal_api.api.deps import CurrentPrincipal, ServicesDep, SessionDep
from portal_api.api.routes.solicitacoes import AnalystFlag, Page, PageSize, WorkflowDep
from portal_api.core import problems
from portal_api.solicitacoes import present, schemas, service
from portal_api.solicitacoes.errors import LabeledRoute
from portal_api.solicitacoes.models import HolderTransfer

router = APIRouter(route_class=LabeledRoute)

CredentialTab = Annotated[
    Literal["homologacao", "em_analise_producao", "producao"],
    Query(description="A aba: homologacao, em_analise_producao ou producao."),
]
TransferId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Número do pedido de titularidade.")]


def _credentials(session, user_id, tab, page, page_size, default) -> schemas.CredencialPage:
    size = page_size or default
    counts = service.credential_counts(session, user_id)
    views = service.credentials_page(session, user_id, tab, offset=(page - 1) * size, limit=size)
    items = [present.credential(view) for view in views]
    return schemas.CredencialPage(
        aba=tab,
        contagens=schemas.ContagensCredenciais(**counts),
        items=items,
        **portal_present.paging(counts[tab], page, size, len(items)),
    )


@router.get(
    "/credenciais",
    response_model=schemas.CredencialPage,
    tags=["gerenciar credenciais"],
    summary="Gerenciar credenciais",
    description=(
        "As credenciais de que o usuário é titular ou tem acesso, numa aba — homologação, em análise para produção ou "
        "produção — com as contagens das três: número, id do solicitante, tipo de usuário (pelo certificado), "
        "operações e a situação de cada uma."
    ),
    responses=problems.responses(401, 422, 503),
)
def my_credentials(
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    aba: CredentialTab = "homologacao",
    page: Page = 1,
    page_size: PageSize = None,
) -> schemas.CredencialPage:
    return _credentials(session, principal.user_id, aba, page, page_size, ws.settings.page_size_default)


@router.get(
    "/analise/credenciais",
    response_model=schemas.CredencialPage,
    tags=["análise"],
    summary="Todas as credenciais (analista)",
    description='"Gerenciar credenciais" do analista: as credenciais de todos, por aba, com as contagens.',
    responses=problems.responses(401, 403, 422, 503, descriptions={403: "Exige o papel de analista."}),
)
def all_credentials(
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    aba: CredentialTab = "homologacao",
    page: Page = 1,
    page_size: PageSize = None,
) -> schemas.CredencialPage:
    if not analyst:
        raise service.analyst_required()
    return _credentials(session, None, aba, page, page_size, ws.settings.page_size_default)


# -- holder transfer ----------------------------------------------------------------------------------


def _transfers(session, user_id, pending_only, page, page_size, default) -> schemas.TitularidadePage:
    size = page_size or default
    rows, total = service.transfers_page(session, user_id, pending_only=pending_only, offset=(page - 1) * size, limit=size)
    items = [present.transfer(session, row, analyst=user_id is None) for row in rows]
    return schemas.TitularidadePage(items=items, **portal_present.paging(total, page, size, len(items)))


TRANSFER_RECEIVED = (
    "Pedido de titularidade recebido. Se o número for de uma credencial ativa, um analista do DATASUS o analisará; "
    "acompanhe a situação em GET /credenciais/titularidade."
)
CLAIM_WINDOW_SECONDS = 24 * 3600


@router.post(
    "/credenciais/titularidade",
    response_model=schemas.TitularidadeRecebida,
    status_code=202,
    tags=["gerenciar credenciais"],
    summary="Adquirir titularidade de credencial",
    description=(
        "Pede para se tornar o titular de uma credencial (pelo número), com justificativa. A resposta é a mesma "
        "exista ou não a credencial (sem nome, sem id): só o analista vê a quem o número pertence, e decide; "
        "aprovado, o titular anterior perde o acesso (a não ser que o analista o mantenha). Vários pedidos podem "
        "aguardar sobre a mesma credencial. Limitado por usuário (`VACINA_D1_HOLDER_CLAIMS_PER_DAY` por dia)."
    ),
    responses=problems.responses(
        400,
        401,
        413,
        422,
        429,
        503,
        descriptions={
            422: "Campos recusados, cada um com o nome do campo.",
            429: "Pedidos demais nas últimas 24 horas; o cabeçalho Retry-After diz quantos segundos esperar.",
        },
    ),
)
def ask_holdership(body: schemas.TitularidadeIn, principal: CurrentPrincipal, session: SessionDep, services: ServicesDep):
    bucket = (f"titularidade:usuario:{principal.user_id}",)
    limit = services.settings.holder_claims_per_day
    engine = services.database.engine
    retry = guards.retry_after(engine, bucket, limit=limit, window_seconds=CLAIM_WINDOW_SECONDS)
    if retry is not None:
        raise guards.too_many(f"Limite de {limit} pedidos de titularidade por dia atingido.", retry)
    service.request_transfer(session, principal.user_id, body.numero_credencial, body.justificativa)
    session.commit()
    session.close()
    guards.count(engine, bucket, keep_seconds=CLAIM_WINDOW_SECONDS)
    return JSONResponse(
        schemas.TitularidadeRecebida(mensagem=TRANSFER_RECEIVED).model_dump(),
        status_code=202,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/credenciais/titularidade",
    response_model=schemas.TitularidadePage,
    tags=["gerenciar credenciais"],
    summary="Meus pedidos de titularidade",
    description="Os pedidos de titularidade do usuário, do mais recente ao mais antigo.",
    responses=problems.responses(401, 422, 503),
)
def my_holdership_requests(
    principal: CurrentPrincipal, session: SessionDep, ws: WorkflowDep, page: Page = 1, page_size: PageSize = None
) -> schemas.TitularidadePage:
    return _transfers(session, principal.user_id, False, page, page_size, ws.settings.page_size_default)


@router.get(
    "/analise/titularidade",
    response_model=schemas.TitularidadePage,
    tags=["análise"],
    summary="Pedidos de titularidade pendentes (analista)",
    description="Os pedidos de titularidade à espera de decisão.",
    responses=problems.responses(401, 403, 422, 503, descriptions={403: "Exige o papel de analista."}),
)
def pending_holdership_requests(
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    page: Page = 1,
    page_size: PageSize = None,
) -> schemas.TitularidadePage:
    if not analyst:
        raise service.analyst_required()
    return _transfers(session, None, True, page, page_size, ws.settings.page_size_default)


def _transfer_for_analyst(session, transfer_id: int, analyst: bool) -> HolderTransfer:
    if not analyst:
        raise service.analyst_required()
    row = session.get(HolderTransfer, transfer_id)
    if row is None:
        raise problems.not_found("Pedido de titularidade não encontrado.")
    return row


_DECISION_RESPONSES = problems.responses(
    400,
    401,
    403,
    404,
    409,
    413,
    422,
    503,
    descriptions={
        403: "Exige o papel de analista, e nunca no próprio pedido.",
        404: "Pedido inexistente.",
        409: "O pedido já foi decidido (a mensagem diz a situação).",
        422: "Campos recusados, cada um com o nome do campo.",
    },
)


@router.post(
    "/analise/titularidade/{pedido_id:int}/aprovacao",
    response_model=schemas.TitularidadeOut,
    tags=["análise"],
    summary="Aprovar troca de titular",
    description="Analista: o solicitante passa a ser o titular da credencial e recebe acesso a ela.",
    responses=_DECISION_RESPONSES,
)
def approve_holdership(
    pedido_id: TransferId,
    body: schemas.AprovacaoTitularidadeIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.TitularidadeOut:
    row = _transfer_for_analyst(session, pedido_id, analyst)
    service.decide_transfer(
        session, row, principal.user_id, approve=True, reason=body.observacao, keep_previous=body.manter_titular_anterior
    )
    session.commit()
    return present.transfer(session, row, analyst=True)


@router.post(
    "/analise/titularidade/{pedido_id:int}/reprovacao",
    response_model=schemas.TitularidadeOut,
    tags=["análise"],
    summary="Reprovar troca de titular",
    description="Analista: reprova o pedido, com o motivo; nada muda na credencial.",
    responses=_DECISION_RESPONSES,
)
def reject_holdership(
    pedido_id: TransferId, body: schemas.ReprovacaoIn, principal: CurrentPrincipal, session: SessionDep, analyst: AnalystFlag
) -> schemas.TitularidadeOut:
    row = _transfer_for_analyst(session, pedido_id, analyst)
    service.decide_transfer(session, row, principal.user_id, approve=False, reason=body.motivo)
    session.commit()
    return present.transfer(session, row, analyst=True)
