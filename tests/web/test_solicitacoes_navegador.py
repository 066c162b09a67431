"""The request wizard, Solicitações, the analyst's pages and Permissões in a real browser
(Playwright driving Debian's Chromium) against ``vacina-d1 serve --dev-login`` on
loopback, with issue 9's demo people logged in through the development issuer, plus
what the workflow needs: a test ICP-Brasil-like chain as the trust store (as issue 6's
tests make it), the small CNES table of those tests, and 127.0.0.1 as a trusted proxy
(the browser sends ``X-Forwarded-For`` with an address inside the range the form
registers, so the new credential's downloads at the end of the walk are admitted).

Joana (no credential) asks; Daniela (DATASUS analyst) decides; Marta (São Paulo) is the
person who is not an analyst; Rafael (RJ) claims Marta's credential.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal_api.solicitacoes.models import CredentialRequest
from portal_api.web.solicitacoes import SLUGS
from tests.portal import requests_world as rw
from tests.portal.pki import Pki
from tests.web.conftest import (
    ANALYST_CPF,
    DESKTOP,
    NOBODY_CPF,
    PHONE,
    RJ_CPF,
    SAO_PAULO_CPF,
    SP,
    assert_accessible,
    build_world,
    login,
    screenshot,
    start_portal,
)

JOANA, DANIELA, MARTA, RAFAEL = NOBODY_CPF, ANALYST_CPF, SAO_PAULO_CPF, RJ_CPF
INSIDE = {"X-Forwarded-For": rw.INSIDE}  # the client's address, forwarded by the trusted proxy (127.0.0.1)
DAY = dt.date(2026, 11, 21)


@dataclass
class WorkflowPortal:
    url: str
    world: object
    server: object
    tmp: Path
    pki: Pki


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("solicitacoes")
    pki = Pki()
    trust = pki.write_trust_store(tmp / "acs")
    world = build_world(tmp, trust_store=trust, cnes_table=rw.CNES_TABLE, trusted_proxies=["127.0.0.1/32"])
    server = start_portal(
        tmp,
        world,
        {
            "VACINA_D1_TRUST_STORE": str(trust),
            "VACINA_D1_CNES_TABLE": str(rw.CNES_TABLE),
            "VACINA_D1_TRUSTED_PROXIES": "127.0.0.1/32",
        },
    )
    try:
        yield WorkflowPortal(server.url, world, server, tmp, pki)
    finally:
        server.stop()
        world.database.dispose()


@pytest.fixture
def person(new_page, portal):
    """``person(cpf)``: a logged-in page of that person (own cookies), behind the trusted proxy."""

    def make(cpf: str):
        page = new_page()
        page.set_extra_http_headers(INSIDE)
        login(page, portal, cpf)
        return page

    return make


# -- helpers ----------------------------------------------------------------------------------------


def check_page(page, name: str, widths=("desktop", "celular")) -> None:
    """axe-core (no serious/critical violation) and a full-page screenshot at each width."""
    for width in widths:
        page.set_viewport_size(DESKTOP if width == "desktop" else PHONE)
        assert_accessible(page, f"{name} ({width})")
        screenshot(page, f"solicitacao-{name}-{width}")
    page.set_viewport_size(DESKTOP)


def submit(control) -> None:
    """Click a button or link that loads a new page, and wait for it."""
    with control.page.expect_navigation():
        control.click()


def continue_(page, label: str = "Salvar e continuar") -> None:
    submit(page.get_by_role("button", name=label, exact=True))


def field_errors(page) -> dict[str, str]:
    """Each message beside a field: the message's id (``erro-<field>``) → its text; and
    every field with a message is marked invalid and points at it."""
    found = {}
    for node in page.locator(".feedback.danger[role=alert]").all():
        ident = node.get_attribute("id").removeprefix("erro-")
        found[ident] = node.inner_text().strip()
        described = page.locator(f'[aria-describedby~="erro-{ident}"]')
        assert described.count() >= 1, ident
        assert described.first.get_attribute("aria-invalid") == "true" or described.first.evaluate("e => e.tagName") == "FIELDSET"
    return found


def expect_field_errors(page, expected: dict[str, str]) -> None:
    assert field_errors(page) == expected


def fill_system(page, **changes) -> None:
    data = rw.sistema(**changes)
    for key, value in data.items():
        if key in ("integracoes", "picos", "aplicacao_web", "tipo_equipe"):
            continue
        page.locator(f'[name="sistema.{key}"]').fill(str(value))
    tick(page.locator("#sistema-aplicacao-web-sim"))
    tick(page.locator(f"#sistema-tipo-equipe-{data['tipo_equipe']}"))


def tick(control) -> None:
    """Check a radio or checkbox as a person does: by clicking its label (the gov.br
    Design System draws the box on the label)."""
    ident = control.get_attribute("id")
    control.page.locator(f'label[for="{ident}"]').click()
    assert control.is_checked(), ident


def csrf_of(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def sent_request(portal, cpf: str) -> int:
    """A complete request sent for analysis, made through the workflow service (the
    rejection test needs one, not the walk)."""
    from portal_api import crud
    from portal_api.solicitacoes import schemas, service
    from portal_api.solicitacoes.service import WorkflowServices

    ws = WorkflowServices(portal.world.settings)
    with portal.world.database.session() as session, session.begin():
        user = crud.user_by_cpf(session, cpf)
        form = rw.form(gestor={"nome": "Joana Pereira", "cns": rw.GESTOR_CNS, "cpf": cpf})
        row = service.create(session, user.id, schemas.SolicitacaoIn.model_validate(form), ws)
        issued = portal.pki.e_cpf(cpf, "JOANA PEREIRA")
        service.set_certificate(session, row, portal.pki.pfx(issued, rw.PFX_PASSWORD), rw.PFX_PASSWORD, ws)
        version = service.current_request_terms(session).version
        service.submit(session, row, user.id, schemas.EnvioIn(versao_termos=version, aceito=True))
        return row.id


def download_in_page(page, portal, operation: str, day: dt.date) -> bytes:
    """Download CSV (issue 9's page): the day's file, through the TERMO DE USO modal."""
    page.goto(f"{portal.url}/portal/download-csv?operacao={operation}&ano={day.year}&mes={day.month}")
    link = page.get_by_role("link", name=f"Baixar o arquivo de {day:%d/%m/%Y}")
    link.click()
    modal = page.get_by_role("dialog", name="TERMO DE USO")
    modal.wait_for()
    tick(modal.get_by_label("Li e aceito os termos de uso"))
    with page.expect_download() as info:
        modal.get_by_role("button", name="Confirmar").click()
    return Path(info.value.path()).read_bytes()


def test_a_request_walks_every_section_is_approved_and_its_files_download(portal, person, tmp_path):
    """The whole walk: every section of the wizard (a .pfx, a child from a list, two
    integrations, a peak period from the modal, "Adicionar todos"), the summary with a
    jump back, the terms, sent; the analyst approves in homologação; evidence (a PNG)
    for produção, approved; the state file is then downloaded in Download CSV."""
    page = person(JOANA)
    page.goto(portal.url + "/portal/solicitacoes")
    check_page(page, "solicitacoes-vazia")
    submit(page.get_by_role("button", name="Solicitar Acesso para Homologação"))
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/origem", page.url).group(1))

    # Origem
    check_page(page, "passo-01-origem")
    tick(page.get_by_label("Outros"))
    continue_(page)
    # Certificado: Bruno's e-CPF as an A1 .pfx
    check_page(page, "passo-02-certificado")
    pfx = tmp_path / "joana.pfx"
    pfx.write_bytes(portal.pki.pfx(portal.pki.e_cpf(JOANA, "JOANA PEREIRA"), rw.PFX_PASSWORD))
    page.get_by_label("Certificado digital (.cer ou .pfx)").set_input_files(str(pfx))
    page.get_by_label("Senha do certificado (só para .pfx)").fill(rw.PFX_PASSWORD)
    submit(page.get_by_role("button", name="Enviar e continuar"))
    assert page.get_by_text(JOANA).first.is_visible()  # the CPF read from the ICP-Brasil otherName
    continue_(page, "Continuar")
    # Estabelecimento cessionário: the CNPJ consulta finds the UBS
    check_page(page, "passo-03-estabelecimento")
    page.get_by_label("CNPJ do estabelecimento").fill("46.177.400/0001-78")
    submit(page.get_by_role("button", name="Consultar no CNES"))
    assert page.get_by_role("cell", name=rw.SP_MAIN, exact=True).is_visible()
    assert page.get_by_label("CNES do estabelecimento").input_value() == rw.SP_MAIN
    page.get_by_label("Telefone do estabelecimento").fill("(11) 3397-2001")
    continue_(page)
    # Estabelecimentos filhos: one by one, and one imported from a list (with the refusals, line by line)
    check_page(page, "passo-04-vinculados")
    page.get_by_label("CNES do estabelecimento vinculado").fill("2077493")  # one by one
    submit(page.get_by_role("button", name="Incluir", exact=True))
    assert page.get_by_role("cell", name="2077493", exact=True).is_visible()
    listing = tmp_path / "vinculados.csv"
    listing.write_text("CNES;nome\n2077507;AMA SE\n9999999;nada\n", encoding="utf-8")
    page.get_by_label("Lista de CNES (CSV ou TXT)").set_input_files(str(listing))
    submit(page.get_by_role("button", name="Importar lista"))
    assert "1 incluído(s); 1 recusado(s)" in page.locator("#resultado-importacao").inner_text()
    assert "Linha 3 (9999999): não encontrado na tabela CNES" in page.locator("#resultado-importacao").inner_text()
    assert page.get_by_role("cell", name="2077507", exact=True).is_visible()
    continue_(page, "Continuar")
    # Gestor responsável
    check_page(page, "passo-05-gestor")
    page.get_by_label("Nome do gestor responsável").fill("Joana Pereira")
    page.get_by_label("CNS do gestor responsável").fill(rw.GESTOR_CNS)
    page.get_by_label("CPF do gestor responsável").fill("987.654.004-10")
    continue_(page)
    # A reload and a later visit resume where the user stopped: the next missing section.
    page.reload()
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}")
    assert page.url.endswith(f"/portal/solicitacoes/{request_id}/passo/sistema")
    # Sistema solicitante and its description
    check_page(page, "passo-06-sistema")
    fill_system(page)
    continue_(page)
    # Integrações: two
    check_page(page, "passo-07-integracoes")
    for name in ("e-SUS APS", "SI-PNI"):
        page.get_by_role("textbox", name="Integração").fill(name)
        submit(page.get_by_role("button", name="Adicionar integração"))
    assert page.get_by_role("list", name="Integrações com outros sistemas").inner_text().count("Remover") == 2
    continue_(page, "Continuar")
    # Períodos de maior acesso: from the modal
    check_page(page, "passo-08-picos")
    submit(page.get_by_role("link", name="Adicionar período de maior acesso"))
    dialog = page.get_by_role("dialog", name="Período de maior acesso")
    assert dialog.is_visible()
    check_page(page, "passo-08-picos-modal")
    dialog.get_by_label("Período").select_option("manha")
    dialog.get_by_label("Início do pico").fill("08:00")
    dialog.get_by_label("Fim do pico").fill("10:30")
    submit(dialog.get_by_role("button", name="Adicionar"))
    assert page.get_by_role("cell", name="08:00", exact=True).is_visible()
    continue_(page, "Continuar")
    # Portfólio and serviços: "Adicionar todos"
    check_page(page, "passo-09-portfolio")
    tick(page.get_by_label(re.compile("Vacinação D-1")))
    continue_(page, "Escolher serviços")
    check_page(page, "passo-10-servicos")
    submit(page.get_by_role("button", name="Adicionar todos"))
    assert page.get_by_label("imunizacao-total-sp", exact=True).is_checked()
    assert page.get_by_label("imunizacao-total-sp-355030").is_checked()
    continue_(page)
    # Resumo: everything, and a jump back to a section
    check_page(page, "passo-11-resumo")
    assert page.locator("#pendencias").count() == 0
    summary = page.locator(".resumo").inner_text()
    for expected in (
        "UBS SE",
        "2077493",
        "2077507",
        "Joana Pereira",
        "Vacivida SP",
        "e-SUS APS, SI-PNI",
        "manhã: 08:00 a 10:30",
        "200.130.5.0 a 200.130.5.255",
        JOANA,
    ):
        assert expected in summary, expected
    submit(page.get_by_role("link", name="Alterar: Gestor responsável"))
    assert page.get_by_label("Nome do gestor responsável").input_value() == "Joana Pereira"
    submit(page.get_by_role("link", name=re.compile("Resumo da solicitação")))
    continue_(page, "Continuar para o termo de uso")
    # Termo and confirm
    check_page(page, "passo-12-termo")
    tick(page.get_by_label("Li e aceito os termos de uso"))
    continue_(page, "Confirmar e enviar para análise")
    assert "Solicitação enviada para análise" in page.locator("#mensagem-enviada").inner_text()
    check_page(page, "solicitacao-enviada")
    page.goto(portal.url + "/portal/solicitacoes?aba=em_analise")
    assert page.get_by_role("row", name=re.compile(rf"^{request_id}\b.*em análise")).is_visible()
    assert re.search(r"Em Análise\s*1", page.get_by_role("navigation", name="Situação das solicitações").inner_text())

    # The analyst: the summary with the certificate's fields; approval with a reason.
    analyst = person(DANIELA)
    analyst.goto(portal.url + "/portal/analise")
    check_page(analyst, "analise-lista")
    submit(analyst.get_by_role("link", name=f"Analisar a solicitação {request_id}"))
    certificate = analyst.locator(".dados-certificado").first.inner_text()
    assert "CPF do titular" in certificate and JOANA in certificate and "AC Teste Intermediaria" in certificate
    check_page(analyst, "analise-solicitacao")
    analyst.get_by_label("Observação").first.fill("Dados conferidos com o CNES.")
    submit(analyst.get_by_role("button", name="Aprovar em homologação"))
    assert analyst.locator("#situacao").inner_text() == "aprovada em homologação"

    # The requester: Respostas, and Gerenciar credenciais · Homologação.
    page.goto(portal.url + "/portal/solicitacoes?aba=respostas")
    row = page.get_by_role("row", name=re.compile(rf"^{request_id}\b"))
    assert "aprovada em homologação" in row.inner_text()
    number = row.get_by_role("cell").nth(6).inner_text().strip()
    assert re.fullmatch(r"\d+/\d{4}", number), number
    page.goto(portal.url + "/portal/credenciais?aba=homologacao")
    assert page.get_by_text(number).first.is_visible()
    # Evidence for produção: a PNG, previewed, sent.
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}")
    png = tmp_path / "testes-homologacao.png"
    png.write_bytes(rw.minimal_png(40, 20))
    page.get_by_label("Evidência (PDF ou PNG)").set_input_files(str(png))
    submit(page.get_by_role("button", name="Anexar evidência"))
    preview = page.get_by_role("img", name="Prévia da evidência testes-homologacao.png")
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 40
    check_page(page, "evidencias")
    submit(page.get_by_role("button", name="Enviar para produção"))
    assert page.locator("#situacao").inner_text() == "em análise para produção"

    # The analyst sees the preview and approves for produção.
    analyst.goto(f"{portal.url}/portal/analise/solicitacoes/{request_id}")
    assert analyst.get_by_role("img", name="Prévia da evidência testes-homologacao.png").evaluate("i => i.naturalWidth") == 40
    submit(analyst.get_by_role("button", name="Aprovar para produção"))
    assert analyst.locator("#situacao").inner_text() == "em produção"

    # Its operation's files are downloadable in Download CSV.
    published = portal.world.file(SP, DAY)
    content = download_in_page(page, portal, SP, DAY)
    assert hashlib.sha256(content).hexdigest() == published.sha256


def test_each_empty_or_wrong_field_shows_its_message_beside_it_and_nothing_is_saved(portal, person, tmp_path):
    page = person(RAFAEL)
    page.goto(portal.url + "/portal/solicitacoes")
    submit(page.get_by_role("button", name="Solicitar Acesso para Homologação"))
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/", page.url).group(1))
    step = f"{portal.url}/portal/solicitacoes/{request_id}/passo"

    continue_(page)  # origem left empty
    expect_field_errors(page, {"origem": "Origem da solicitação: campo obrigatório"})
    check_page(page, "erro-origem")

    page.goto(step + "/certificado")
    submit(page.get_by_role("button", name="Enviar e continuar"))
    expect_field_errors(page, {"arquivo": "Certificado digital: escolha o arquivo .cer ou .pfx"})
    wrong = tmp_path / "nao-e-certificado.pfx"
    wrong.write_bytes(b"isto nao e um certificado")
    page.get_by_label("Certificado digital (.cer ou .pfx)").set_input_files(str(wrong))
    submit(page.get_by_role("button", name="Enviar e continuar"))
    assert page.locator('[aria-invalid="true"]').count() >= 1
    assert re.search(r"^(Certificado digital|Senha do certificado): ", page.locator("[role=alert].feedback").first.inner_text())

    page.goto(step + "/estabelecimento")
    page.get_by_label("CNPJ do estabelecimento").fill("46.177.400/0001-00")
    continue_(page)
    expect_field_errors(page, {"estabelecimento-cnpj": "CNPJ do estabelecimento: dígito verificador inválido"})
    page.get_by_label("CNPJ do estabelecimento").fill("")
    page.get_by_label("CNES do estabelecimento").fill("9999999")
    continue_(page)
    expect_field_errors(page, {"estabelecimento-cnes": "CNES do estabelecimento: não encontrado na tabela CNES"})
    assert page.get_by_label("CNES do estabelecimento").input_value() == "9999999"  # what was typed stays

    page.goto(step + "/gestor")
    page.get_by_label("CPF do gestor responsável").fill("111.444.777-00")
    page.get_by_label("E-mail do gestor responsável").fill("sem-arroba")
    continue_(page)
    expect_field_errors(
        page,
        {
            "gestor-nome": "Nome do gestor responsável: campo obrigatório",
            "gestor-cns": "CNS do gestor responsável: campo obrigatório",
            "gestor-cpf": "CPF do gestor responsável: dígito verificador inválido",
            "gestor-email": "E-mail do gestor responsável: 'sem-arroba' não é um endereço de e-mail",
        },
    )
    check_page(page, "erro-gestor")

    page.goto(step + "/sistema")
    fill_system(page, ip_inicio="10.0.0.1", data_fim="2026-01-01", atendimentos_dia_maximo="10")
    continue_(page)
    errors = field_errors(page)
    assert errors["sistema-ip-inicio"].startswith("IP inicial da faixa: ")
    assert errors["sistema-data-fim"] == "Data de fim: o fim (01/01/2026) é anterior ao início (01/12/2026)"
    assert errors["sistema-atendimentos-dia-maximo"] == "Atendimentos por dia (máximo): o máximo (10) é menor que o mínimo (800)"
    check_page(page, "erro-sistema")

    page.goto(step + "/termo")
    continue_(page, "Confirmar e enviar para análise")
    expect_field_errors(page, {"aceito": "Li e aceito os termos de uso: campo obrigatório"})
    tick(page.get_by_label("Li e aceito os termos de uso"))
    continue_(page, "Confirmar e enviar para análise")
    assert "A solicitação está incompleta" in page.locator("#mensagem-erro").inner_text()

    # A forged post (no CSRF token) is refused too, and changes nothing.
    forged = page.request.post(step + "/origem", form={"origem": "outros"}, max_redirects=0)
    assert forged.status == 403

    # Nothing was saved, and nothing was sent.
    with portal.world.database.session() as session:
        row = session.get(CredentialRequest, request_id)
        assert (row.status, row.origem, row.est_cnes, row.gestor_cpf, row.sistema) == ("rascunho", None, None, None, None)


def test_a_rejected_request_shows_the_reason_and_analyst_pages_are_not_found_to_others(portal, person, tmp_path):
    request_id = sent_request(portal, JOANA)
    analyst = person(DANIELA)
    analyst.goto(f"{portal.url}/portal/analise/solicitacoes/{request_id}")
    submit(analyst.get_by_role("button", name="Reprovar", exact=True))
    expect_field_errors(analyst, {"reprovar-motivo": "Motivo da reprovação: campo obrigatório"})
    analyst.get_by_label("Motivo da reprovação").fill("A faixa de IP não pertence ao estabelecimento.")
    submit(analyst.get_by_role("button", name="Reprovar", exact=True))
    assert analyst.locator("#situacao").inner_text() == "reprovada"

    page = person(JOANA)
    page.goto(portal.url + "/portal/solicitacoes?aba=respostas")
    submit(page.get_by_role("link", name=f"Ver a solicitação {request_id}"))
    assert "Motivo: A faixa de IP não pertence ao estabelecimento." in page.locator("#motivo-reprovacao").inner_text()
    check_page(page, "solicitacao-reprovada")

    # Not an analyst: every analyst page is "não encontrado", like a page that does not exist.
    page = person(MARTA)
    for path in ("/portal/analise", f"/portal/analise/solicitacoes/{request_id}", "/portal/analise/titularidade"):
        response = page.goto(portal.url + path)
        assert response.status == 404 and "não encontrad" in page.content().lower(), path
    assert (
        page.request.post(
            f"{portal.url}/portal/analise/solicitacoes/{request_id}/aprovar", form={"csrf_token": csrf_of(page)}
        ).status
        == 404
    )


def test_holder_transfer_is_registered_alike_and_decided_by_an_analyst(portal, person, tmp_path):
    page = person(RAFAEL)
    page.goto(portal.url + "/portal/permissoes")
    check_page(page, "permissoes")
    form = page.locator("#titularidade")
    form.get_by_label("Número da credencial").fill("3406")
    submit(form.get_by_role("button", name="Solicitar titularidade"))
    expect_field_errors(
        page, {"numero-credencial": "Número da credencial: formato inválido", "justificativa": "Justificativa: campo obrigatório"}
    )
    answers = []
    for number in ("3406/2024", "9999/2020"):  # a credential, and a number that is none: the same answer
        page.get_by_label("Número da credencial").fill(number)
        page.get_by_label("Justificativa").fill("O titular anterior deixou a secretaria.")
        submit(page.get_by_role("button", name="Solicitar titularidade"))
        answers.append(page.locator("#mensagem-titularidade").inner_text())
        assert "Marta" not in page.content()
    assert answers[0] == answers[1] == "Solicitação registrada. Um analista do DATASUS vai analisá-la."

    analyst = person(DANIELA)
    analyst.goto(portal.url + "/portal/analise/titularidade")
    check_page(analyst, "analise-titularidade")
    card = analyst.get_by_role("article").filter(has_text="credencial 3406/2024")
    assert "Rafael Costa" in card.inner_text() and "Marta Ribeiro" in card.inner_text()
    submit(card.get_by_role("button", name="Aprovar troca de titular"))
    assert "Decisão registrada" in analyst.locator("#mensagem-decisao").inner_text()

    page.goto(portal.url + "/portal/permissoes")
    card = page.get_by_role("article").filter(has_text="Credencial nº 3406/2024")
    assert re.search(r"Rafael Costa \(você\)\s+\S+\s+Titular", card.inner_text())


def test_no_serious_or_critical_accessibility_violation_on_wizard_steps_at_phone_width(portal, person, tmp_path):
    """Every step also at 360 px (the walk above checks them at desktop width)."""
    page = person(MARTA)
    page.goto(portal.url + "/portal/solicitacoes")
    submit(page.get_by_role("button", name="Solicitar Acesso para Homologação"))
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/", page.url).group(1))
    for slug in SLUGS:
        page.goto(f"{portal.url}/portal/solicitacoes/{request_id}/passo/{slug}")
        check_page(page, f"celular-passo-{slug}", widths=("celular",))
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}/passo/picos?novo=1")
    check_page(page, "celular-passo-picos-modal", widths=("celular",))
    with portal.world.database.session() as session:
        assert session.scalar(sa.select(CredentialRequest.status).where(CredentialRequest.id == request_id)) == "rascunho"
