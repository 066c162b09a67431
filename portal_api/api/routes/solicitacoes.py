"""The credential request (solicitação): the catalogue and CNES lookups the form uses,
the draft and its sections, certificate, child establishments, submission with the
terms of use, evidence and the production request — and the analyst's decisions.

Who: a request is seen by its requester and by analysts (anyone else: 404, as if it
did not exist); only the requester edits and sends it; only an analyst — never on
their own request — approves or rejects (403 otherwise). An action from the wrong
state: 409 naming the current state and the action.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.convertors import StringConvertor, register_url_convertor

from pipelines import reference
from portal_api.api import present as portal_present
from portal_api.api.deps import CurrentPrincipal, SessionDep
from portal_api.api.routes.listing import PAGE_SIZE_MAX
from portal_api.core import problems, ranges
from portal_api.solicitacoes import catalog, certificates, present, schemas, service, workflow
from portal_api.solicitacoes.errors import LabeledRoute, field_problem

router = APIRouter(route_class=LabeledRoute)


class CnesConvertor(StringConvertor):
    """Path segments that are a CNES (7 digits): ``…/estabelecimentos/importacao`` is then
    never read as a CNES, and an unsupported method on it is a 405."""

    regex = "[0-9]{7}"


# Typed path segments (``{id:int}``, ``{cnes:cnes}``) keep the fixed paths beside them
# (``/solicitacoes/exportacao``, ``/solicitacoes/termos``) from matching as ids.
register_url_convertor("cnes", CnesConvertor())


def get_workflow(request: Request) -> service.WorkflowServices:
    return request.app.state.solicitacoes


WorkflowDep = Annotated[service.WorkflowServices, Depends(get_workflow)]


def is_analyst(principal: CurrentPrincipal, session: SessionDep) -> bool:
    return service.has_role(session, principal.user_id)


AnalystFlag = Annotated[bool, Depends(is_analyst)]


def owned_request(
    solicitacao_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
):
    """The request the caller may act on, looked up as a dependency: it runs before the
    body is validated, so another user's request answers 404 whatever the body (issue 11)."""
    return service.own_request(session, solicitacao_id, principal.user_id, analyst=analyst)


OwnedRequest = Annotated[Any, Depends(owned_request)]


def analysed_request(
    solicitacao_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
):
    """The request an analyst decides on, looked up before the body is validated."""
    return service.analysed_request(session, solicitacao_id, principal.user_id, analyst=analyst)


AnalysedRequest = Annotated[Any, Depends(analysed_request)]

if TYPE_CHECKING:
    UfCode = str  # a Literal of the UFs, known at run time only
else:
    UfCode = Literal.__getitem__(tuple(sorted(reference.ufs())))
RequestId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Número da solicitação.")]
EvidenceId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Número da evidência.")]
Page = Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1).")]
PageSize = Annotated[int | None, Query(ge=1, le=PAGE_SIZE_MAX, description="Itens por página (máximo 100).")]
Tab = Annotated[Literal["rascunhos", "em_analise", "respostas"], Query(description="A aba: rascunhos, em_analise ou respostas.")]

_403 = "Só o solicitante altera ou envia a solicitação; só um analista (e nunca na própria solicitação) a analisa."
_404 = "Solicitação inexistente ou de outro usuário (a quem não é analista, as duas respondem igual)."
_409 = "Ação impossível na situação atual da solicitação (a mensagem diz a situação e a ação), ou pendências."
_422 = "Campos recusados, cada um com o motivo e o nome do campo em português."


def _responses(*codes: int, **descriptions: str):
    text = {403: _403, 404: _404, 409: _409, 422: _422}
    text.update({int(k.removeprefix("c")): v for k, v in descriptions.items()})
    return problems.responses(*codes, descriptions=text)


def _summary(session, row, principal, analyst) -> schemas.SolicitacaoOut:
    return present.request(session, row, viewer_id=principal.user_id, analyst=analyst)


# -- catalogue and lookups -----------------------------------------------------------------------


@router.get(
    "/catalogo/apis",
    response_model=list[schemas.ApiOut],
    tags=["catálogo"],
    summary="APIs do catálogo",
    description="As APIs que se pode solicitar, com versão, data da versão e operações de serviço.",
    responses=problems.responses(401, 503),
)
def list_apis(principal: CurrentPrincipal) -> list[schemas.ApiOut]:
    return [
        schemas.ApiOut(
            codigo=a.code,
            nome=a.name,
            versao=a.version,
            data=a.date,
            descricao=a.description,
            por_territorio=a.by_territory,
            operacoes=list(a.operations),
        )
        for a in catalog.APIS
    ]


@router.get(
    "/catalogo/apis/{codigo}/operacoes",
    response_model=schemas.OperacoesOut,
    tags=["catálogo"],
    summary="Operações de uma API",
    description=(
        "As operações concretas de uma API, para escolher uma a uma (ou todas). Na API D-1 (`vacinacao-d1-csv`) "
        "são as da UF pedida: `imunizacao-total-<uf>` e uma `imunizacao-total-<uf>-<ibge6>` por município."
    ),
    responses=problems.responses(401, 404, 422, 503, descriptions={404: "Não há API com esse código no catálogo."}),
)
def list_operations(
    principal: CurrentPrincipal,
    codigo: Annotated[str, Path(max_length=64, description="Código da API (`GET /catalogo/apis`).")],
    uf: Annotated[UfCode | None, Query(description="UF em maiúsculas (obrigatória na API D-1).")] = None,
) -> schemas.OperacoesOut:
    if codigo not in catalog.CODES:
        raise problems.not_found(f"Não há API com o código {codigo[:64]!r} no catálogo (veja GET /catalogo/apis).")
    api = catalog.get(codigo)
    if api.by_territory:
        if not uf:
            raise field_problem(
                [{"location": "query", "field": "uf", "message": "informe a UF (a API D-1 tem operações por UF)"}]
            )
        return schemas.OperacoesOut(codigo=codigo, uf=uf, operacoes=list(catalog.d1_operations(uf)))
    return schemas.OperacoesOut(codigo=codigo, uf=None, operacoes=list(api.operations))


@router.get(
    "/estabelecimentos",
    response_model=list[schemas.EstabelecimentoOut],
    tags=["catálogo"],
    summary="Buscar estabelecimento no CNES",
    description="Busca na tabela CNES pelo CNES (um) ou pelo CNPJ do estabelecimento ou da mantenedora (até 50).",
    responses=problems.responses(401, 422, 503),
)
def find_establishments(
    principal: CurrentPrincipal,
    ws: WorkflowDep,
    cnes: Annotated[str | None, Query(pattern=r"^\d{7}$", description="CNES (7 dígitos).")] = None,
    cnpj: Annotated[str | None, Query(pattern=r"^\d{14}$", description="CNPJ (14 dígitos).")] = None,
) -> list[schemas.EstabelecimentoOut]:
    if bool(cnes) == bool(cnpj):
        raise field_problem([{"location": "query", "field": "cnes", "message": "informe o CNES ou o CNPJ (um dos dois)"}])
    return [
        schemas.EstabelecimentoOut(
            cnes=e.cnes,
            cnpj=e.cnpj,
            cnpj_mantenedora=e.cnpj_mantenedora,
            razao_social=e.razao_social,
            fantasia=e.fantasia,
            ibge6=e.ibge6,
            municipio=service.municipio_name(e.ibge6),
            uf=e.uf,
            telefone=e.telefone,
            email=e.email,
        )
        for e in service.lookup(ws, cnes=cnes, cnpj=cnpj)
    ]


@router.get(
    "/solicitacoes/termos",
    response_model=schemas.TermosSolicitacaoOut,
    tags=["solicitações"],
    summary="Termos de uso da solicitação",
    description="A versão vigente dos termos de uso que se aceita ao enviar a solicitação.",
    responses=problems.responses(401, 503),
)
def request_terms(principal: CurrentPrincipal, session: SessionDep) -> schemas.TermosSolicitacaoOut:
    terms = service.current_request_terms(session)
    session.commit()
    return schemas.TermosSolicitacaoOut(
        versao=terms.version,
        texto=terms.text,
        texto_sha256=terms.text_sha256,
        publicado_em=portal_present.local_time(terms.published_at),
    )


# -- listing and export -------------------------------------------------------------------------


def requests_listing(
    session, user_id: int | None, tab: str, page: int, page_size: int | None, default: int
) -> schemas.SolicitacaoPage:
    size = page_size or default
    counts = service.request_counts(session, user_id)
    rows = service.requests_page(session, user_id, tab, offset=(page - 1) * size, limit=size)
    items = [present.request_item(row, user, number) for row, user, number in rows]
    return schemas.SolicitacaoPage(
        aba=tab,
        contagens=schemas.Contagens(**counts),
        items=items,
        **portal_present.paging(counts[tab], page, size, len(items)),
    )


@router.get(
    "/solicitacoes",
    response_model=schemas.SolicitacaoPage,
    tags=["solicitações"],
    summary="Minhas solicitações",
    description=(
        'A tela "Solicitações": as do usuário numa aba — rascunhos, em análise (inclui em análise para produção) '
        "ou respostas (aprovadas em homologação, em produção, reprovadas) — com as contagens das três abas, "
        "paginadas como as outras listagens."
    ),
    responses=problems.responses(401, 422, 503),
)
def my_requests(
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    aba: Tab = "em_analise",
    page: Page = 1,
    page_size: PageSize = None,
) -> schemas.SolicitacaoPage:
    return requests_listing(session, principal.user_id, aba, page, page_size, ws.settings.page_size_default)


CSV_COLUMNS = (
    "id",
    "situacao",
    "criada_em",
    "enviada_em",
    "origem",
    "api",
    "versao_api",
    "operacoes",
    "cnes",
    "estabelecimento",
    "uf",
    "estabelecimentos_vinculados",
    "sistema",
    "credencial",
)


@router.get(
    "/solicitacoes/exportacao",
    tags=["solicitações"],
    summary="Download CSV das minhas solicitações",
    description=f"Todas as solicitações do usuário num CSV (UTF-8, vírgula), uma por linha: {', '.join(CSV_COLUMNS)}.",
    response_class=Response,
    responses={
        200: {
            "description": "O CSV.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {"description": "attachment; filename=solicitacoes.csv", "schema": {"type": "string"}}
            },
        },
        **problems.responses(401, 503),
    },
)
def export_requests(principal: CurrentPrincipal, session: SessionDep) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row, number in service.all_requests_of(session, principal.user_id):
        children = len(service.children_of(session, row.id))
        writer.writerow(
            [
                row.id,
                workflow.REQUEST.label(row.status),
                portal_present.local_time(row.created_at).strftime("%d/%m/%Y %H:%M:%S"),
                portal_present.local_time(row.submitted_at).strftime("%d/%m/%Y %H:%M:%S") if row.submitted_at else "",
                schemas.ORIGINS.get(row.origem or "", ""),
                row.api_code or "",
                row.api_version or "",
                " ".join(service.operations_of(session, row.id)),
                row.est_cnes or "",
                row.est_fantasia or row.est_razao_social or "",
                row.est_uf or "",
                children,
                (row.sistema or {}).get("nome", ""),
                number or "",
            ]
        )
    return Response(
        out.getvalue().encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": ranges.content_disposition("solicitacoes.csv"), "Cache-Control": "no-store"},
    )


# -- the draft -------------------------------------------------------------------------------------


@router.post(
    "/solicitacoes",
    response_model=schemas.SolicitacaoOut,
    status_code=201,
    tags=["solicitações"],
    summary="Nova solicitação",
    description=(
        "Cria um rascunho, com as seções que vierem (origem, api, estabelecimento, gestor, sistema; as outras depois, "
        "com PATCH). Cada seção é validada inteira; cada campo recusado vem com o seu nome."
    ),
    responses={
        201: {
            "description": "O rascunho criado.",
            "links": {
                name: {
                    "operationId": name,
                    "parameters": {"solicitacao_id": "$response.body#/id"},
                    "description": "A solicitação criada.",
                }
                for name in (
                    "get_request",
                    "update_request",
                    "upload_certificate",
                    "add_establishment",
                    "import_establishments",
                    "submit_request",
                    "upload_evidence",
                    "submit_production",
                    "approve_request",
                    "reject_request",
                    "approve_production",
                    "reject_production",
                )
            },
        },
        **_responses(400, 401, 409, 413, 422, 503, c409="Limite de rascunhos por usuário atingido."),
    },
)
def create_request(
    body: schemas.SolicitacaoIn, principal: CurrentPrincipal, session: SessionDep, ws: WorkflowDep, analyst: AnalystFlag
) -> schemas.SolicitacaoOut:
    row = service.create(session, principal.user_id, body, ws)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.get(
    "/solicitacoes/{solicitacao_id:int}",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Resumo da solicitação",
    description=(
        "A solicitação inteira, como a tela de resumo a mostra: seções, estabelecimentos vinculados, certificado "
        "(só a parte pública), evidências, termos, credencial emitida, pendências, ações possíveis e histórico."
    ),
    responses=_responses(401, 404, 422, 503),
)
def get_request(
    solicitacao_id: RequestId, principal: CurrentPrincipal, session: SessionDep, analyst: AnalystFlag
) -> schemas.SolicitacaoOut:
    row = service.visible_request(session, solicitacao_id, principal.user_id, analyst=analyst)
    out = _summary(session, row, principal, analyst)
    session.commit()  # the default request terms may have just been published
    return out


@router.patch(
    "/solicitacoes/{solicitacao_id:int}",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Preencher seções do rascunho",
    description="Grava as seções enviadas (cada uma inteira); as ausentes ficam como estão. Só no rascunho.",
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def update_request(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    body: schemas.SolicitacaoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.update(session, row, body, ws)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.put(
    "/solicitacoes/{solicitacao_id:int}/certificado",
    response_model=schemas.CertificadoOut,
    tags=["solicitações"],
    summary="Enviar o certificado digital",
    description=(
        "Multipart: `arquivo` (.cer PEM ou DER, ou .pfx A1) e, no .pfx, `senha`. O formato é reconhecido pelo "
        "conteúdo. Verifica a cadeia até uma AC raiz confiável, a validade, o uso para autenticação de cliente e extrai "
        "CPF/CNPJ dos campos ICP-Brasil. Guarda só o certificado público: nunca a chave privada nem a senha. "
        "Substitui o anterior. Só no rascunho."
    ),
    responses=_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        503,
        c503="Banco de dados indisponível, ou repositório de ACs confiáveis não configurado.",
    ),
)
def upload_certificate(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    arquivo: Annotated[UploadFile, File(description="O certificado: .cer (PEM ou DER) ou .pfx.")],
    senha: Annotated[str | None, Form(max_length=256, description="A senha do .pfx (não é guardada).")] = None,
) -> schemas.CertificadoOut:
    data = arquivo.file.read(certificates.MAX_UPLOAD_BYTES + 1)
    service.set_certificate(session, row, data, senha, ws)
    session.commit()
    stored = _summary(session, row, principal, analyst).certificado
    assert stored is not None  # set_certificate stored it (or raised)
    return stored


@router.post(
    "/solicitacoes/{solicitacao_id:int}/estabelecimentos",
    response_model=schemas.VinculadoOut,
    status_code=201,
    tags=["solicitações"],
    summary="Vincular um estabelecimento",
    description="Vincula um estabelecimento da mesma UF do principal, pelo CNES. Só no rascunho.",
    responses=_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        503,
        c409="Não é rascunho, falta o estabelecimento principal, ou o CNES já está vinculado.",
    ),
)
def add_establishment(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    body: schemas.EstabelecimentoVinculadoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
) -> schemas.VinculadoOut:
    child = service.add_child(session, row, body.cnes, ws)
    session.commit()
    return schemas.VinculadoOut(
        cnes=child.cnes,
        razao_social=child.razao_social,
        fantasia=child.fantasia,
        ibge6=child.ibge6,
        municipio=service.municipio_name(child.ibge6),
        uf=child.uf,
        incluido_por=child.added_via,
    )


@router.post(
    "/solicitacoes/{solicitacao_id:int}/estabelecimentos/importacao",
    response_model=schemas.ImportacaoOut,
    tags=["solicitações"],
    summary="Importar lista de estabelecimentos",
    description=(
        "Multipart: `arquivo`, um CSV ou TXT com um CNES por linha (o primeiro campo; `;` ou `,`; cabeçalho opcional). "
        "Inclui os válidos e diz, linha a linha, quais foram recusados e por quê (CNES inexistente, de outra UF, "
        "repetido, o principal). Só no rascunho."
    ),
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def import_establishments(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    arquivo: Annotated[UploadFile, File(description="CSV ou TXT com um CNES por linha.")],
) -> schemas.ImportacaoOut:
    result = service.import_children(session, row, arquivo.file.read(), ws)
    session.commit()
    total = len(service.children_of(session, row.id))
    return schemas.ImportacaoOut(
        incluidos=[
            schemas.VinculadoOut(
                cnes=c.cnes,
                razao_social=c.razao_social,
                fantasia=c.fantasia,
                ibge6=c.ibge6,
                municipio=service.municipio_name(c.ibge6),
                uf=c.uf,
                incluido_por=c.added_via,
            )
            for c in result.added
        ],
        recusados=[schemas.ImportacaoRecusaOut(linha=line, valor=value, motivo=why) for line, value, why in result.refused],
        total_vinculados=total,
    )


@router.delete(
    "/solicitacoes/{solicitacao_id:int}/estabelecimentos/{cnes:cnes}",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Desvincular um estabelecimento",
    description="Remove um estabelecimento vinculado e devolve a solicitação. Só no rascunho.",
    responses=_responses(401, 403, 404, 409, 422, 503, c404="Solicitação inexistente, ou o CNES não está vinculado a ela."),
)
def remove_establishment(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    cnes: Annotated[str, Path(pattern=r"^\d{7}$", description="CNES (7 dígitos).")],
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.remove_child(session, row, cnes)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/envio",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Aceitar os termos e enviar para análise",
    description=(
        "Depois do resumo: registra o aceite da versão vigente dos termos de uso da solicitação (usuário, versão, data "
        "e hora) e envia o rascunho para análise. 409 com as pendências se estiver incompleta, ou se a versão dos termos "
        "não for a vigente."
    ),
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def submit_request(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    body: schemas.EnvioIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.submit(session, row, principal.user_id, body)
    session.commit()
    return _summary(session, row, principal, analyst)


# -- homologação → produção ----------------------------------------------------------------------------


@router.post(
    "/solicitacoes/{solicitacao_id:int}/evidencias",
    response_model=schemas.EvidenciaOut,
    status_code=201,
    tags=["solicitações"],
    summary="Anexar evidência dos testes",
    description=(
        "Multipart: `arquivo`, PDF ou PNG reconhecido pelo conteúdo (assinatura e estrutura, não o nome nem o tipo "
        "declarado), de até 5 MB (`VACINA_D1_EVIDENCE_MAX_BYTES`). Em homologação ou depois de reprovada para produção."
    ),
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def upload_evidence(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    arquivo: Annotated[UploadFile, File(description="PDF ou PNG.")],
) -> schemas.EvidenciaOut:
    data = arquivo.file.read(ws.settings.evidence_max_bytes + 1)
    found = service.add_evidence(session, row, arquivo.filename, data, ws)
    session.commit()
    return schemas.EvidenciaOut(
        id=found.id,
        nome=found.file_name,
        tipo=found.media_type,
        tamanho=found.size,
        sha256=found.sha256,
        enviada_em=portal_present.local_time(found.uploaded_at),
        submetida_em=None,
    )


@router.get(
    "/solicitacoes/{solicitacao_id:int}/evidencias/{evidencia_id:int}/conteudo",
    tags=["solicitações"],
    summary="Baixar uma evidência",
    description="O arquivo da evidência, com o tipo reconhecido pelo conteúdo.",
    response_class=Response,
    responses={
        200: {
            "description": "O arquivo.",
            "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **_responses(401, 404, 422, 503, c404="Solicitação ou evidência inexistente, ou de outro usuário."),
    },
)
def download_evidence(
    solicitacao_id: RequestId, evidencia_id: EvidenceId, principal: CurrentPrincipal, session: SessionDep, analyst: AnalystFlag
) -> Response:
    row = service.visible_request(session, solicitacao_id, principal.user_id, analyst=analyst)
    found = service.visible_evidence(session, row, evidencia_id)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={
            "Content-Disposition": ranges.content_disposition(found.file_name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@router.delete(
    "/solicitacoes/{solicitacao_id:int}/evidencias/{evidencia_id:int}",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Remover uma evidência",
    description="Remove uma evidência ainda não enviada para análise e devolve a solicitação.",
    responses=_responses(401, 403, 404, 409, 422, 503),
)
def remove_evidence(
    solicitacao_id: RequestId,
    row: OwnedRequest,
    evidencia_id: EvidenceId,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.remove_evidence(session, row, evidencia_id)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/envio-producao",
    response_model=schemas.SolicitacaoOut,
    tags=["solicitações"],
    summary="Enviar para análise de produção",
    description=(
        "Da homologação (ou depois de reprovada para produção) para a análise de produção, com as evidências anexadas "
        "e ainda não enviadas. Sem evidência: 409."
    ),
    responses=_responses(401, 403, 404, 409, 422, 503),
)
def submit_production(
    solicitacao_id: RequestId, row: OwnedRequest, principal: CurrentPrincipal, session: SessionDep, analyst: AnalystFlag
) -> schemas.SolicitacaoOut:
    service.submit_production(session, row, principal.user_id)
    session.commit()
    return _summary(session, row, principal, analyst)


# -- analysis ---------------------------------------------------------------------------------------------


@router.get(
    "/analise/solicitacoes",
    response_model=schemas.SolicitacaoPage,
    tags=["análise"],
    summary="Solicitações de todos (analista)",
    description='A tela "Solicitações" do analista: as de todos os usuários, por aba, com as contagens.',
    responses=_responses(401, 403, 422, 503, c403="Exige o papel de analista."),
)
def all_requests(
    principal: CurrentPrincipal,
    session: SessionDep,
    ws: WorkflowDep,
    analyst: AnalystFlag,
    aba: Tab = "em_analise",
    page: Page = 1,
    page_size: PageSize = None,
) -> schemas.SolicitacaoPage:
    if not analyst:
        raise service.analyst_required()
    return requests_listing(session, None, aba, page, page_size, ws.settings.page_size_default)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/aprovacao",
    response_model=schemas.SolicitacaoOut,
    tags=["análise"],
    summary="Aprovar em homologação",
    description=(
        "Analista: aprova a solicitação em análise e emite a credencial (número `N/AAAA`, sequencial no ano), no "
        "ambiente de homologação, com as operações aprovadas (todas as pedidas, ou as listadas; as outras ficam "
        "reprovadas) e a faixa de IP registrada. O solicitante passa a ser o titular."
    ),
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def approve_request(
    solicitacao_id: RequestId,
    row: AnalysedRequest,
    body: schemas.AprovacaoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.approve(session, row, principal.user_id, body)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/reprovacao",
    response_model=schemas.SolicitacaoOut,
    tags=["análise"],
    summary="Reprovar na análise",
    description="Analista: reprova a solicitação em análise, com o motivo.",
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def reject_request(
    solicitacao_id: RequestId,
    row: AnalysedRequest,
    body: schemas.ReprovacaoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.reject(session, row, principal.user_id, body.motivo)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/aprovacao-producao",
    response_model=schemas.SolicitacaoOut,
    tags=["análise"],
    summary="Aprovar para produção",
    description="Analista: aprova a solicitação em análise para produção; a credencial passa ao ambiente de produção.",
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def approve_production(
    solicitacao_id: RequestId,
    row: AnalysedRequest,
    body: schemas.DecisaoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.approve_production(session, row, principal.user_id, body.observacao)
    session.commit()
    return _summary(session, row, principal, analyst)


@router.post(
    "/solicitacoes/{solicitacao_id:int}/reprovacao-producao",
    response_model=schemas.SolicitacaoOut,
    tags=["análise"],
    summary="Reprovar para produção",
    description=(
        "Analista: reprova o pedido de produção, com o motivo. A credencial continua em homologação; o solicitante pode "
        "anexar novas evidências e enviar de novo."
    ),
    responses=_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def reject_production(
    solicitacao_id: RequestId,
    row: AnalysedRequest,
    body: schemas.ReprovacaoIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    analyst: AnalystFlag,
) -> schemas.SolicitacaoOut:
    service.reject(session, row, principal.user_id, body.motivo, production=True)
    session.commit()
    return _summary(session, row, principal, analyst)
