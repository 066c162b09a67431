"""Solicitações (Em Análise N / Respostas N / Rascunhos N) and the credential request
wizard, server-rendered.

Each step is one form: its POST builds the section the API's ``PATCH`` would receive
and hands it to ``service`` (same rules, same labels); saved, the browser is sent to
the next step (post/redirect/get, so a reload never re-sends); refused, the same step
comes back with what was typed and each field's message beside it. The draft lives in
the database, so a reload or a later visit resumes at the first section still missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from portal_api.api.deps import SessionDep
from portal_api.core import problems
from portal_api.solicitacoes import catalog, certificates, present, schemas, service
from portal_api.solicitacoes.models import CredentialRequest
from portal_api.web import solicitacoes_comum as comum
from portal_api.web.sessions import WebUser
from portal_api.web.solicitacoes_comum import Refusal, attempt, filled, form_text
from portal_api.web.solicitacoes_pagina import PAGES, PageUser, check_csrf, not_found_page, render

router = APIRouter(include_in_schema=False)

BASE = f"{PAGES}/solicitacoes"
RequestId = Annotated[int, Path(ge=1, le=2_147_483_647)]


@dataclass(frozen=True)
class Step:
    slug: str
    title: str
    required: bool  # a section the request cannot be sent without


STEPS: tuple[Step, ...] = (
    Step("origem", "Origem da solicitação", True),
    Step("certificado", "Certificado digital", True),
    Step("estabelecimento", "Estabelecimento cessionário", True),
    Step("vinculados", "Estabelecimentos filhos", False),
    Step("gestor", "Gestor responsável", True),
    Step("sistema", "Sistema solicitante", True),
    Step("integracoes", "Integrações", False),
    Step("picos", "Períodos de maior acesso", False),
    Step("portfolio", "Portfólio", True),
    Step("servicos", "Serviços", True),
    Step("resumo", "Resumo da solicitação", False),
    Step("termo", "Termo de uso", False),
)
BY_SLUG = {step.slug: step for step in STEPS}
SLUGS = tuple(BY_SLUG)


def step_url(request_id: int, slug: str) -> str:
    return f"{BASE}/{request_id}/passo/{slug}"


def next_slug(slug: str) -> str:
    return SLUGS[min(SLUGS.index(slug) + 1, len(SLUGS) - 1)]


def section_missing(session: Session, row: CredentialRequest, slug: str) -> bool:
    if slug == "origem":
        return not row.origem
    if slug == "certificado":
        return service.certificate_of(session, row.id) is None
    if slug == "estabelecimento":
        return not row.est_cnes
    if slug == "gestor":
        return not row.gestor_cpf
    if slug == "sistema":
        return not row.sistema
    if slug == "portfolio":
        return not row.api_code
    if slug == "servicos":
        return not service.operations_of(session, row.id)
    return False


def resume_slug(session: Session, row: CredentialRequest) -> str:
    """Where a visit to a draft continues: the first required section still missing, or
    the summary when every one is there."""
    for step in STEPS:
        if step.required and section_missing(session, row, step.slug):
            return step.slug
    return "resumo"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def own_draft(session: Session, request_id: int, user: WebUser) -> CredentialRequest | None:
    """The user's own draft (None: not theirs, not a draft, or not there — the page
    then answers "não encontrado" or shows the request instead)."""
    row = session.get(CredentialRequest, request_id)
    if row is None or row.requester_user_id != user.id:
        return None
    return row


# -- Solicitações ----------------------------------------------------------------------------------

TABS = {"em_analise": "Em Análise", "respostas": "Respostas", "rascunhos": "Rascunhos"}


@router.get(BASE)
def list_requests(
    request: Request,
    user: PageUser,
    session: SessionDep,
    aba: Annotated[str, Query()] = "em_analise",
    pagina: Annotated[int, Query(ge=1, le=100_000)] = 1,
):
    tab = aba if aba in TABS else "em_analise"
    size = request.app.state.solicitacoes.settings.page_size_default
    counts = service.request_counts(session, user.id)
    rows = service.requests_page(session, user.id, tab, offset=(pagina - 1) * size, limit=size)
    items = [present.request_item(row, requester, number) for row, requester, number in rows]
    return render(
        request,
        "solicitacoes/lista.html",
        user=user,
        aba=tab,
        abas=TABS,
        contagens=counts,
        itens=items,
        pagina=pagina,
        paginas=max(1, -(-counts[tab] // size)),
        base=BASE,
        pages=PAGES,
    )


@router.get(BASE + "/nova")
def new_request_page(request: Request, user: PageUser, api: Annotated[str | None, Query(max_length=40)] = None):
    """Início's "Solicitar Acesso para Homologação" of an API: a button that starts the draft
    (a GET never creates anything)."""
    chosen = catalog.BY_CODE.get(api or "")
    return render(request, "solicitacoes/nova.html", api=chosen, base=BASE, pages=PAGES)


@router.post(BASE)
async def new_request(request: Request, user: PageUser, session: SessionDep):
    """ "Solicitar Acesso para Homologação": a new draft, then its first step."""
    await check_csrf(request)
    row, refusal = attempt(lambda: service.create(session, user.id, schemas.SolicitacaoIn(), request.app.state.solicitacoes))
    if refusal:
        session.rollback()
        counts = service.request_counts(session, user.id)
        return render(
            request,
            "solicitacoes/lista.html",
            status_code=409,
            user=user,
            aba="rascunhos",
            abas=TABS,
            contagens=counts,
            itens=[
                present.request_item(r, u, n)
                for r, u, n in service.requests_page(session, user.id, "rascunhos", offset=0, limit=20)
            ],
            pagina=1,
            paginas=1,
            base=BASE,
            pages=PAGES,
            erros=refusal,
        )
    session.commit()
    return redirect(step_url(row.id, SLUGS[0]))


@router.get(BASE + "/{solicitacao_id}")
def show_request(request: Request, solicitacao_id: RequestId, user: PageUser, session: SessionDep):
    row = session.get(CredentialRequest, solicitacao_id)
    if row is not None and row.requester_user_id != user.id and row.status != "rascunho" and service.has_role(session, user.id):
        return redirect(f"{PAGES}/analise/solicitacoes/{row.id}")  # an analyst's link to someone's request
    if row is None or row.requester_user_id != user.id:
        return not_found_page(request, user)
    if row.status == "rascunho":
        return redirect(step_url(row.id, resume_slug(session, row)))
    summary = present.request(session, row, viewer_id=user.id, analyst=False)
    session.commit()
    return render(
        request,
        "solicitacoes/detalhe.html",
        user=user,
        s=summary,
        base=BASE,
        pages=PAGES,
        enviada=request.query_params.get("enviada") == "1",
        erros=None,
    )


# -- the wizard ------------------------------------------------------------------------------------


def stored_values(session: Session, row: CredentialRequest) -> dict[str, Any]:
    """The draft as form values, by the API's field paths."""
    values: dict[str, Any] = {"origem": row.origem}
    values.update(
        {
            "estabelecimento.cnes": row.est_cnes,
            "estabelecimento.telefone": row.est_telefone,
            "estabelecimento.email": row.est_email,
        }
    )
    values.update(
        {
            "gestor.nome": row.gestor_nome,
            "gestor.cns": row.gestor_cns,
            "gestor.cpf": row.gestor_cpf,
            "gestor.email": row.gestor_email,
        }
    )
    for key, value in (row.sistema or {}).items():
        if key == "aplicacao_web":
            value = "sim" if value else "nao"
        values[f"sistema.{key}"] = value
    values["api.codigo"] = row.api_code
    return values


SISTEMA_FIELDS = (
    "nome",
    "versao",
    "linguagem",
    "arquitetura",
    "banco_dados",
    "banco_dados_versao",
    "resumo",
    "aplicacao_web",
    "ip_inicio",
    "ip_fim",
    "tipo_equipe",
    "atendimentos_registrados",
    "data_atendimentos",
    "atendimentos_dia_minimo",
    "atendimentos_dia_maximo",
    "acessos_pico",
    "data_inicio",
    "data_fim",
)


def _step_context(
    session: Session, row: CredentialRequest, slug: str, user: WebUser, ws: service.WorkflowServices, request: Request
) -> dict[str, Any]:
    summary = present.request(session, row, viewer_id=user.id, analyst=False)
    context: dict[str, Any] = dict(
        user=user,
        s=summary,
        row=row,
        passo=BY_SLUG[slug],
        passos=STEPS,
        base=BASE,
        pages=PAGES,
        faltando={step.slug for step in STEPS if section_missing(session, row, step.slug)},
        anterior=SLUGS[SLUGS.index(slug) - 1] if SLUGS.index(slug) else None,
        proximo=next_slug(slug),
        valores=stored_values(session, row),
        erros=Refusal(),
        rotulos=schemas.BODY_LABELS,
    )
    if slug == "portfolio":
        context["apis"] = catalog.APIS
        context["valores"]["api.codigo"] = request.query_params.get("api") or row.api_code
    if slug == "servicos":
        code = request.query_params.get("api") or row.api_code
        context.update(_services_context(session, row, code))
    if slug == "termo":
        context["termos"] = service.current_request_terms(session)
    if slug == "picos":
        context["modal"] = request.query_params.get("novo") == "1"
    return context


def _services_context(session: Session, row: CredentialRequest, code: str | None) -> dict[str, Any]:
    api = catalog.BY_CODE.get(code or "")
    if api is None:
        return {"api": None, "operacoes": [], "escolhidas": set()}
    chosen = set(service.operations_of(session, row.id)) if row.api_code == api.code else set()
    return {"api": api, "operacoes": list(catalog.operations(api, row.est_uf)), "escolhidas": chosen}


@router.get(BASE + "/{solicitacao_id}/passo/{passo}")
def show_step(request: Request, solicitacao_id: RequestId, passo: str, user: PageUser, session: SessionDep):
    row = own_draft(session, solicitacao_id, user)
    if row is None or passo not in BY_SLUG:
        return not_found_page(request, user)
    if row.status != "rascunho":
        return redirect(f"{BASE}/{row.id}")
    context = _step_context(session, row, passo, user, request.app.state.solicitacoes, request)
    session.commit()  # the request's default terms may have just been written
    return render(request, f"solicitacoes/passo_{passo}.html", **context)


@router.post(BASE + "/{solicitacao_id}/passo/{passo}")
async def save_step(request: Request, solicitacao_id: RequestId, passo: str, user: PageUser, session: SessionDep):
    form = await check_csrf(request)
    row = own_draft(session, solicitacao_id, user)
    if row is None or passo not in BY_SLUG:
        return not_found_page(request, user)
    if row.status != "rascunho":
        return redirect(f"{BASE}/{row.id}")
    ws = request.app.state.solicitacoes
    save = SAVERS[passo]
    outcome = await save(session, row, form, ws)
    if isinstance(outcome, str):  # saved: where to go next
        session.commit()
        return redirect(outcome)
    session.rollback()
    session.refresh(row)
    context = _step_context(session, row, passo, user, ws, request)
    context.update(outcome.context)
    context["valores"].update(outcome.values)
    context["erros"] = outcome.refusal
    status = 200 if not outcome.refusal else (409 if outcome.refusal.general and not outcome.refusal.fields else 422)
    if outcome.commit:
        session.commit()
    return render(request, f"solicitacoes/passo_{passo}.html", status_code=status, **context)


@dataclass
class Again:
    """The step shown again: refused (with what was typed), or with a result to show
    (a CNES consulta, an imported list) — ``commit`` when something was saved."""

    refusal: Refusal
    values: dict[str, Any]
    context: dict[str, Any]
    commit: bool = False


def _update(session: Session, row: CredentialRequest, ws, data: dict[str, Any], after: str, values: dict[str, Any]):
    def action():
        service.update(session, row, schemas.SolicitacaoIn.model_validate(data), ws)

    _, refusal = attempt(action)
    if refusal:
        return Again(refusal, values, {})
    return step_url(row.id, after)


async def save_origem(session, row, form, ws):
    origin = form_text(form, "origem")
    if origin is None:
        refusal = Refusal()
        comum.required(refusal, "origem")
        return Again(refusal, {"origem": None}, {})
    return _update(session, row, ws, {"origem": origin}, "certificado", {"origem": origin})


async def save_certificado(session, row, form, ws):
    upload = form.get("arquivo")
    password = form.get("senha") or None
    has_file = upload is not None and not isinstance(upload, str) and upload.filename
    if not has_file:
        if service.certificate_of(session, row.id) is not None:
            return step_url(row.id, "estabelecimento")
        refusal = Refusal()
        refusal.add("arquivo", "Certificado digital: escolha o arquivo .cer ou .pfx")
        return Again(refusal, {}, {})
    data = await upload.read(certificates.MAX_UPLOAD_BYTES + 1)
    _, refusal = attempt(lambda: service.set_certificate(session, row, data, password, ws))
    if refusal:
        return Again(comum.renamed(refusal, "arquivo", "Certificado digital"), {}, {})
    return step_url(row.id, "certificado") + "?enviado=1"


async def save_estabelecimento(session, row, form, ws):
    action = form_text(form, "acao") or "salvar"
    values = {
        "estabelecimento.cnes": form_text(form, "estabelecimento.cnes"),
        "estabelecimento.cnpj": form_text(form, "estabelecimento.cnpj"),
        "estabelecimento.telefone": form_text(form, "estabelecimento.telefone"),
        "estabelecimento.email": form_text(form, "estabelecimento.email"),
    }
    if action.startswith("escolher:"):  # one of the consulta's results
        values.update({"estabelecimento.cnes": action.removeprefix("escolher:"), "estabelecimento.cnpj": None})
        action = "consultar"
    section = filled({key.removeprefix("estabelecimento."): value for key, value in values.items()})
    if action == "consultar":
        refusal = Refusal()
        found = []
        try:
            chosen = (
                schemas.SolicitacaoIn.model_validate({"estabelecimento": section}).estabelecimento or schemas.EstabelecimentoIn()
            )
            found = service.lookup(ws, cnes=chosen.cnes, cnpj=chosen.cnpj)
            if not found:
                refusal.add(
                    "estabelecimento.cnes" if chosen.cnes else "estabelecimento.cnpj",
                    schemas.label("body", "estabelecimento.cnes" if chosen.cnes else "estabelecimento.cnpj")
                    + ": não encontrado na tabela CNES",
                )
        except ValidationError as exc:
            refusal = comum.refusal_of(exc)
        results = [
            dict(
                cnes=e.cnes,
                cnpj=e.cnpj or e.cnpj_mantenedora,
                razao_social=e.razao_social,
                fantasia=e.fantasia,
                municipio=service.municipio_name(e.ibge6),
                uf=e.uf,
                telefone=e.telefone,
                email=e.email,
            )
            for e in found
        ]
        if len(found) == 1 and not refusal:
            values["estabelecimento.cnes"], values["estabelecimento.cnpj"] = found[0].cnes, None
        return Again(refusal, values, {"consulta": results, "consultado": True})
    return _update(session, row, ws, {"estabelecimento": section}, "vinculados", values)


async def save_vinculados(session, row, form, ws):
    action = form_text(form, "acao") or "continuar"
    if action == "continuar":
        return step_url(row.id, "gestor")
    if action.startswith("remover:"):
        code = action.removeprefix("remover:")
        _, refusal = attempt(lambda: service.remove_child(session, row, code))
        return Again(refusal, {}, {}, commit=not refusal) if refusal else step_url(row.id, "vinculados")
    if action == "adicionar":
        typed = form_text(form, "cnes")
        values = {"cnes": typed}

        def add():
            body = schemas.EstabelecimentoVinculadoIn.model_validate(filled({"cnes": typed}))
            service.add_child(session, row, body.cnes, ws)

        _, refusal = attempt(add)
        if refusal.general and not refusal.fields:  # "já está entre os vinculados", no principal yet
            refusal.fields["cnes"], refusal.general = refusal.general, None
        return Again(refusal, values, {}) if refusal else step_url(row.id, "vinculados")
    if action == "importar":
        upload = form.get("arquivo")
        if upload is None or isinstance(upload, str) or not upload.filename:
            refusal = Refusal()
            refusal.add("arquivo", "Lista de estabelecimentos: escolha o arquivo CSV ou TXT")
            return Again(refusal, {}, {})
        content = await upload.read(service.MAX_IMPORT_LINES * 100)
        result, refusal = attempt(lambda: service.import_children(session, row, content, ws))
        if refusal:
            if refusal.general and not refusal.fields:
                refusal.fields["arquivo"], refusal.general = refusal.general, None
            return Again(comum.renamed(refusal, "arquivo", "Lista de estabelecimentos"), {}, {})
        session.commit()
        session.refresh(row)
        return Again(Refusal(), {}, {"importacao": result}, commit=True)
    return step_url(row.id, "vinculados")


async def save_gestor(session, row, form, ws):
    values = {f"gestor.{name}": form_text(form, f"gestor.{name}") for name in ("nome", "cns", "cpf", "email")}
    section = filled({key.removeprefix("gestor."): value for key, value in values.items()})
    return _update(session, row, ws, {"gestor": section}, "sistema", values)


def _sistema_from_form(form) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {f"sistema.{name}": form_text(form, f"sistema.{name}") for name in SISTEMA_FIELDS}
    section = filled({key.removeprefix("sistema."): value for key, value in values.items()})
    if "aplicacao_web" in section:
        section["aplicacao_web"] = {"sim": True, "nao": False}.get(section["aplicacao_web"], section["aplicacao_web"])
    return values, section


async def save_sistema(session, row, form, ws):
    values, section = _sistema_from_form(form)
    stored = row.sistema or {}
    section["integracoes"] = stored.get("integracoes", [])
    section["picos"] = stored.get("picos", [])
    return _update(session, row, ws, {"sistema": section}, "integracoes", values)


def _needs_sistema(row) -> Again | None:
    if row.sistema:
        return None
    refusal = Refusal(
        general="Preencha antes a seção Sistema solicitante: integrações e períodos de maior acesso fazem parte dela."
    )
    return Again(refusal, {}, {})


async def save_integracoes(session, row, form, ws):
    action = form_text(form, "acao") or "continuar"
    if action == "continuar":
        return step_url(row.id, "picos")
    missing = _needs_sistema(row)
    if missing:
        return missing
    current = list(row.sistema.get("integracoes", []))
    if action.startswith("remover:"):
        index = int(action.removeprefix("remover:")) if action.removeprefix("remover:").isdigit() else -1
        if 0 <= index < len(current):
            del current[index]
        return _update(session, row, ws, {"sistema": {**row.sistema, "integracoes": current}}, "integracoes", {})
    name = form_text(form, "integracao")
    if name is None:
        refusal = Refusal()
        refusal.add("integracao", "Integração: campo obrigatório")
        return Again(refusal, {}, {})
    outcome = _update(
        session, row, ws, {"sistema": {**row.sistema, "integracoes": [*current, name]}}, "integracoes", {"integracao": name}
    )
    # The list's refusal ("item 3: ... está repetida") belongs to the new name's field.
    if isinstance(outcome, Again) and outcome.refusal.fields:
        outcome.refusal.fields = {"integracao": list(outcome.refusal.fields.values())[-1]}
    return outcome


async def save_picos(session, row, form, ws):
    action = form_text(form, "acao") or "continuar"
    if action == "continuar":
        return step_url(row.id, "portfolio")
    missing = _needs_sistema(row)
    if missing:
        return missing
    current = list(row.sistema.get("picos", []))
    if action.startswith("remover:"):
        period = action.removeprefix("remover:")
        current = [p for p in current if p.get("periodo") != period]
        return _update(session, row, ws, {"sistema": {**row.sistema, "picos": current}}, "picos", {})
    new = {name: form_text(form, f"pico.{name}") for name in ("periodo", "inicio", "fim")}
    position = len(current)
    outcome = _update(
        session,
        row,
        ws,
        {"sistema": {**row.sistema, "picos": [*current, filled(new)]}},
        "picos",
        {f"pico.{k}": v for k, v in new.items()},
    )
    if isinstance(outcome, Again):  # messages of sistema.picos.N.x go beside the modal's field x
        fields = {}
        for path, message in outcome.refusal.fields.items():
            name = path.removeprefix(f"sistema.picos.{position}.")
            fields[f"pico.{name}" if name in new else "pico.periodo"] = message
        outcome.refusal.fields = fields
        outcome.context["modal"] = True
    return outcome


async def save_portfolio(session, row, form, ws):
    code = form_text(form, "api.codigo")
    if code not in catalog.BY_CODE:
        refusal = Refusal()
        comum.required(refusal, "api.codigo")
        return Again(refusal, {"api.codigo": None}, {})
    return step_url(row.id, "servicos") + f"?api={code}"


async def save_servicos(session, row, form, ws):
    code = form_text(form, "api.codigo")
    api = catalog.BY_CODE.get(code or "")
    if api is None:
        return step_url(row.id, "portfolio")
    chosen = [value for value in form.getlist("api.operacoes") if isinstance(value, str) and value]
    everything = form_text(form, "acao") == "adicionar_todos"
    data = {"api": {"codigo": api.code, "versao": api.version, "operacoes": chosen, "adicionar_todas": everything}}
    outcome = _update(session, row, ws, data, "servicos" if everything else "resumo", {})
    if isinstance(outcome, str) and everything:
        return outcome + f"?api={api.code}"
    if isinstance(outcome, Again):
        outcome.context.update({"api": api, "operacoes": list(catalog.operations(api, row.est_uf)), "escolhidas": set(chosen)})
        fields = {}
        for path, message in outcome.refusal.fields.items():
            # The API names its flag; the page has the button.
            fields["api.operacoes" if path.startswith("api.") else path] = message.replace(
                "use adicionar_todas", "use Adicionar todos"
            )
        outcome.refusal.fields = fields
    return outcome


async def save_resumo(session, row, form, ws):
    return step_url(row.id, "termo")


async def save_termo(session, row, form, ws):
    data = filled({"versao_termos": form_text(form, "versao_termos"), "aceito": True if form.get("aceito") else None})

    def send():
        service.submit(session, row, row.requester_user_id, schemas.EnvioIn.model_validate(data))

    _, refusal = attempt(send)
    if refusal:
        return Again(refusal, {}, {})
    return f"{BASE}/{row.id}?enviada=1"


SAVERS = {
    "origem": save_origem,
    "certificado": save_certificado,
    "estabelecimento": save_estabelecimento,
    "vinculados": save_vinculados,
    "gestor": save_gestor,
    "sistema": save_sistema,
    "integracoes": save_integracoes,
    "picos": save_picos,
    "portfolio": save_portfolio,
    "servicos": save_servicos,
    "resumo": save_resumo,
    "termo": save_termo,
}
assert set(SAVERS) == set(SLUGS)


# -- homologação → produção: evidence ----------------------------------------------------------------


@router.post(BASE + "/{solicitacao_id}/evidencias/envio")
async def upload_evidence(request: Request, solicitacao_id: RequestId, user: PageUser, session: SessionDep):
    form = await check_csrf(request)
    row = session.get(CredentialRequest, solicitacao_id)
    if row is None or row.requester_user_id != user.id:
        return not_found_page(request, user)
    ws = request.app.state.solicitacoes
    upload = form.get("arquivo")
    refusal = Refusal()
    if upload is None or isinstance(upload, str) or not upload.filename:
        refusal.add("arquivo", "Evidência: escolha um arquivo PDF ou PNG")
    else:
        data = await upload.read(ws.settings.evidence_max_bytes + 1)
        _, refusal = attempt(lambda: service.add_evidence(session, row, upload.filename, data, ws))
        if refusal.general and not refusal.fields:
            refusal.fields["arquivo"], refusal.general = refusal.general, None
        comum.renamed(refusal, "arquivo", "Evidência")
    if not refusal:
        session.commit()
        return redirect(f"{BASE}/{row.id}#evidencias")
    return _refused_on_detail(request, session, row, user, refusal, status_code=422)


def _refused_on_detail(request: Request, session, row: CredentialRequest, user, refusal, status_code: int = 409):
    """The request's page again with the service's refusal beside what it concerns."""
    session.rollback()
    summary = present.request(session, row, viewer_id=user.id, analyst=False)
    return render(
        request,
        "solicitacoes/detalhe.html",
        status_code=status_code,
        user=user,
        s=summary,
        base=BASE,
        pages=PAGES,
        enviada=False,
        erros=refusal,
    )


@router.post(BASE + "/{solicitacao_id}/evidencias/{evidencia_id}/remocao")
async def remove_evidence(
    request: Request, solicitacao_id: RequestId, evidencia_id: RequestId, user: PageUser, session: SessionDep
):
    await check_csrf(request)
    row = session.get(CredentialRequest, solicitacao_id)
    if row is None or row.requester_user_id != user.id:
        return not_found_page(request, user)
    _, refusal = attempt(lambda: service.remove_evidence(session, row, evidencia_id))
    if refusal:
        return _refused_on_detail(request, session, row, user, refusal)
    session.commit()
    return redirect(f"{BASE}/{row.id}#evidencias")


@router.post(BASE + "/{solicitacao_id}/envio-producao")
async def submit_production(request: Request, solicitacao_id: RequestId, user: PageUser, session: SessionDep):
    await check_csrf(request)
    row = session.get(CredentialRequest, solicitacao_id)
    if row is None or row.requester_user_id != user.id:
        return not_found_page(request, user)
    _, refusal = attempt(lambda: service.submit_production(session, row, user.id))
    if refusal:
        return _refused_on_detail(request, session, row, user, refusal)
    session.commit()
    return redirect(f"{BASE}/{row.id}")


@router.get(BASE + "/{solicitacao_id}/evidencias/{evidencia_id}")
def evidence_content(request: Request, solicitacao_id: RequestId, evidencia_id: RequestId, user: PageUser, session: SessionDep):
    """The evidence file, inline (the preview on the request's page and the analyst's)."""
    analyst = service.has_role(session, user.id)
    try:
        row = service.visible_request(session, solicitacao_id, user.id, analyst=analyst)
        found = service.visible_evidence(session, row, evidencia_id)
    except problems.ProblemError:
        return not_found_page(request, user)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f'inline; filename="evidencia-{found.id}{".pdf" if found.media_type.endswith("pdf") else ".png"}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            # Shown inside the request's page (the PDF in a frame): framed by this site only.
            "X-Frame-Options": "SAMEORIGIN",
            "Content-Security-Policy": "frame-ancestors 'self'",
        },
    )
