"""The request wizard, Solicitações, the analyst's pages and Permissões in a real browser
(Playwright driving Debian's Chromium) against ``vacina-d1 serve --dev-login`` on
loopback: the world of issue 6's tests (published files, a test ICP-Brasil-like chain as
the trust store, a small CNES table, an analyst), logged in through the development
issuer.

Every request of the browser comes through a trusted proxy (the test server trusts
127.0.0.1 and the browser sends ``X-Forwarded-For``), so the credential's IP range
registered in the form admits the downloads at the end of the walk.
"""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from portal_api.solicitacoes.models import CredentialRequest
from tests.portal import requests_world as rw
from tests.portal import world as w
from tests.web import solicitacoes_apoio as apoio

pytestmark = apoio.BROWSER_MARKS


def test_a_request_walks_every_section_is_approved_and_its_files_download(portal, browser, artefatos):
    """The whole walk: every section of the wizard (a .pfx, a child from a list, two
    integrations, a peak period from the modal, "Adicionar todos"), the summary with a
    jump back, the terms, sent; the analyst approves in homologação; evidence (a PNG)
    for produção, approved; the state file is then downloaded in Download CSV."""
    bruno = apoio.logged_in(browser, portal, w.BRUNO_CPF)
    page = bruno.new_page()
    page.goto(portal.url + "/portal/solicitacoes")
    apoio.check_page(page, artefatos, "solicitacoes-vazia")
    page.get_by_role("button", name="Solicitar Acesso para Homologação").click()
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/origem", page.url).group(1))

    # Origem
    apoio.check_page(page, artefatos, "passo-01-origem")
    page.get_by_label("Outros").check()
    apoio.continue_(page)
    # Certificado: Bruno's e-CPF as an A1 .pfx
    apoio.check_page(page, artefatos, "passo-02-certificado")
    pfx = artefatos.parent / "bruno.pfx"
    pfx.write_bytes(portal.pki.pfx(portal.pki.e_cpf(w.BRUNO_CPF, "BRUNO LIMA"), rw.PFX_PASSWORD))
    page.get_by_label("Certificado digital (.cer ou .pfx)").set_input_files(str(pfx))
    page.get_by_label("Senha do certificado (só para .pfx)").fill(rw.PFX_PASSWORD)
    page.get_by_role("button", name="Enviar e continuar").click()
    assert page.get_by_text(w.BRUNO_CPF).first.is_visible()  # the CPF read from the ICP-Brasil otherName
    apoio.continue_(page, "Continuar")
    # Estabelecimento cessionário: the CNPJ consulta finds the UBS
    apoio.check_page(page, artefatos, "passo-03-estabelecimento")
    page.get_by_label("CNPJ do estabelecimento").fill("46.177.400/0001-78")
    page.get_by_role("button", name="Consultar no CNES").click()
    assert page.get_by_role("cell", name=rw.SP_MAIN).is_visible()
    assert page.get_by_label("CNES do estabelecimento").input_value() == rw.SP_MAIN
    page.get_by_label("Telefone do estabelecimento").fill("(11) 3397-2001")
    apoio.continue_(page)
    # Estabelecimentos filhos: one imported from a list (and the refusals, line by line)
    apoio.check_page(page, artefatos, "passo-04-vinculados")
    listing = artefatos.parent / "vinculados.csv"
    listing.write_text("CNES;nome\n2077507;AMA SE\n9999999;nada\n", encoding="utf-8")
    page.get_by_label("Lista de CNES (CSV ou TXT)").set_input_files(str(listing))
    page.get_by_role("button", name="Importar lista").click()
    assert "1 incluído(s); 1 recusado(s)" in page.locator("#resultado-importacao").inner_text()
    assert "Linha 3 (9999999): não encontrado na tabela CNES" in page.locator("#resultado-importacao").inner_text()
    assert page.get_by_role("cell", name="2077507").is_visible()
    apoio.continue_(page, "Continuar")
    # Gestor responsável
    apoio.check_page(page, artefatos, "passo-05-gestor")
    page.get_by_label("Nome do gestor responsável").fill("Bruno Lima")
    page.get_by_label("CNS do gestor responsável").fill(rw.GESTOR_CNS)
    page.get_by_label("CPF do gestor responsável").fill("111.444.777-35")
    apoio.continue_(page)
    # A reload and a later visit resume where the user stopped: the next missing section.
    page.reload()
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}")
    assert page.url.endswith(f"/portal/solicitacoes/{request_id}/passo/sistema")
    # Sistema solicitante and its description
    apoio.check_page(page, artefatos, "passo-06-sistema")
    apoio.fill_system(page)
    apoio.continue_(page)
    # Integrações: two
    apoio.check_page(page, artefatos, "passo-07-integracoes")
    for name in ("e-SUS APS", "SI-PNI"):
        page.get_by_label("Integração", exact=True).fill(name)
        page.get_by_role("button", name="Adicionar integração").click()
    assert page.get_by_role("list", name="Integrações com outros sistemas").inner_text().count("Remover") == 2
    apoio.continue_(page, "Continuar")
    # Períodos de maior acesso: from the modal
    apoio.check_page(page, artefatos, "passo-08-picos")
    page.get_by_role("link", name="Adicionar período de maior acesso").click()
    dialog = page.get_by_role("dialog", name="Período de maior acesso")
    assert dialog.is_visible()
    apoio.check_page(page, artefatos, "passo-08-picos-modal")
    dialog.get_by_label("Período").select_option("manha")
    dialog.get_by_label("Início do pico").fill("08:00")
    dialog.get_by_label("Fim do pico").fill("10:30")
    dialog.get_by_role("button", name="Adicionar").click()
    assert page.get_by_role("cell", name="08:00").is_visible()
    apoio.continue_(page, "Continuar")
    # Portfólio and serviços: "Adicionar todos"
    apoio.check_page(page, artefatos, "passo-09-portfolio")
    page.get_by_label(re.compile("Vacinação D-1")).check()
    apoio.continue_(page, "Escolher serviços")
    apoio.check_page(page, artefatos, "passo-10-servicos")
    page.get_by_role("button", name="Adicionar todos").click()
    assert page.get_by_label("imunizacao-total-sp", exact=True).is_checked()
    assert page.get_by_label("imunizacao-total-sp-355030").is_checked()
    apoio.continue_(page)
    # Resumo: everything, and a jump back to a section
    apoio.check_page(page, artefatos, "passo-11-resumo")
    assert page.locator("#pendencias").count() == 0
    summary = page.locator(".resumo").inner_text()
    for expected in ("UBS SE", "2077507", "Bruno Lima", "Vacivida SP", "e-SUS APS, SI-PNI", "manhã: 08:00 a 10:30",
                     "200.130.5.0 a 200.130.5.255", w.BRUNO_CPF):
        assert expected in summary, expected
    page.get_by_role("link", name="Alterar: Gestor responsável").click()
    assert page.get_by_label("Nome do gestor responsável").input_value() == "Bruno Lima"
    page.get_by_role("link", name=re.compile("Resumo da solicitação")).click()
    apoio.continue_(page, "Continuar para o termo de uso")
    # Termo and confirm
    apoio.check_page(page, artefatos, "passo-12-termo")
    page.get_by_label("Li e aceito os termos de uso").check()
    apoio.continue_(page, "Confirmar e enviar para análise")
    assert "Solicitação enviada para análise" in page.locator("#mensagem-enviada").inner_text()
    apoio.check_page(page, artefatos, "solicitacao-enviada")
    page.goto(portal.url + "/portal/solicitacoes?aba=em_analise")
    assert page.get_by_role("row", name=re.compile(rf"^{request_id}\b.*em análise")).is_visible()
    assert re.search(r"Em Análise\s*1", page.get_by_role("navigation", name="Situação das solicitações").inner_text())

    # The analyst: the summary with the certificate's fields; approval with a reason.
    daniel = apoio.logged_in(browser, portal, rw.DANIEL_CPF)
    analyst = daniel.new_page()
    analyst.goto(portal.url + "/portal/analise")
    apoio.check_page(analyst, artefatos, "analise-lista")
    analyst.get_by_role("link", name=f"Analisar a solicitação {request_id}").click()
    certificate = analyst.locator(".dados-certificado").first.inner_text()
    assert "CPF do titular" in certificate and w.BRUNO_CPF in certificate and "AC Teste Intermediaria" in certificate
    apoio.check_page(analyst, artefatos, "analise-solicitacao")
    analyst.get_by_label("Observação").first.fill("Dados conferidos com o CNES.")
    analyst.get_by_role("button", name="Aprovar em homologação").click()
    assert analyst.locator("#situacao").inner_text() == "aprovada em homologação"

    # The requester: Respostas, and Gerenciar credenciais · Homologação.
    page.goto(portal.url + "/portal/solicitacoes?aba=respostas")
    row = page.get_by_role("row", name=re.compile(rf"^{request_id}\b"))
    assert "aprovada em homologação" in row.inner_text()
    number = re.search(r"\d+/\d{4}", row.inner_text()).group(0)
    page.goto(portal.url + "/portal/credenciais?aba=homologacao")
    assert page.get_by_text(number).first.is_visible()
    # Evidence for produção: a PNG, previewed, sent.
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}")
    png = artefatos.parent / "testes-homologacao.png"
    png.write_bytes(rw.minimal_png(40, 20))
    page.get_by_label("Evidência (PDF ou PNG)").set_input_files(str(png))
    page.get_by_role("button", name="Anexar evidência").click()
    preview = page.get_by_role("img", name="Prévia da evidência testes-homologacao.png")
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 40
    apoio.check_page(page, artefatos, "evidencias")
    page.get_by_role("button", name="Enviar para produção").click()
    assert page.locator("#situacao").inner_text() == "em análise para produção"

    # The analyst sees the preview and approves for produção.
    analyst.goto(f"{portal.url}/portal/analise/solicitacoes/{request_id}")
    assert analyst.get_by_role("img", name="Prévia da evidência testes-homologacao.png").evaluate("i => i.naturalWidth") == 40
    analyst.get_by_role("button", name="Aprovar para produção").click()
    assert analyst.locator("#situacao").inner_text() == "em produção"

    # Its operation's files are downloadable in Download CSV.
    sp_state = portal.world.file(w.SP_STATE, apoio.DAY)
    content = apoio.download_in_page(page, portal, w.SP_STATE, apoio.DAY)
    assert hashlib.sha256(content).hexdigest() == sp_state.sha256


def test_each_empty_or_wrong_field_shows_its_message_beside_it_and_nothing_is_saved(portal, browser, artefatos):
    eduarda = apoio.logged_in(browser, portal, rw.EDUARDA_CPF)
    page = eduarda.new_page()
    page.goto(portal.url + "/portal/solicitacoes")
    page.get_by_role("button", name="Solicitar Acesso para Homologação").click()
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/", page.url).group(1))
    step = f"{portal.url}/portal/solicitacoes/{request_id}/passo"

    apoio.continue_(page)  # origem left empty
    apoio.expect_field_errors(page, {"origem-outros": "Origem da solicitação: campo obrigatório"})
    apoio.check_page(page, artefatos, "erro-origem")

    page.goto(step + "/certificado")
    page.get_by_role("button", name="Enviar e continuar").click()
    apoio.expect_field_errors(page, {"arquivo": "Certificado digital: escolha o arquivo .cer ou .pfx"})
    wrong = artefatos.parent / "nao-e-certificado.pfx"
    wrong.write_bytes(b"isto nao e um certificado")
    page.get_by_label("Certificado digital (.cer ou .pfx)").set_input_files(str(wrong))
    page.get_by_role("button", name="Enviar e continuar").click()
    assert page.locator('[aria-invalid="true"]').count() >= 1
    assert re.search(r"(Arquivo|Senha do certificado): ", page.locator("[role=alert].feedback").first.inner_text())

    page.goto(step + "/estabelecimento")
    page.get_by_label("CNPJ do estabelecimento").fill("46.177.400/0001-00")
    apoio.continue_(page)
    apoio.expect_field_errors(page, {"estabelecimento-cnpj": "CNPJ do estabelecimento: dígito verificador inválido"})
    page.get_by_label("CNPJ do estabelecimento").fill("")
    page.get_by_label("CNES do estabelecimento").fill("9999999")
    apoio.continue_(page)
    apoio.expect_field_errors(page, {"estabelecimento-cnes": "CNES do estabelecimento: não encontrado na tabela CNES"})
    assert page.get_by_label("CNES do estabelecimento").input_value() == "9999999"  # what was typed stays

    page.goto(step + "/gestor")
    page.get_by_label("CPF do gestor responsável").fill("111.444.777-00")
    page.get_by_label("E-mail do gestor responsável").fill("sem-arroba")
    apoio.continue_(page)
    apoio.expect_field_errors(page, {
        "gestor-nome": "Nome do gestor responsável: campo obrigatório",
        "gestor-cns": "CNS do gestor responsável: campo obrigatório",
        "gestor-cpf": "CPF do gestor responsável: dígito verificador inválido",
        "gestor-email": "E-mail do gestor responsável: 'sem-arroba' não é um endereço de e-mail",
    })
    apoio.check_page(page, artefatos, "erro-gestor")

    page.goto(step + "/sistema")
    apoio.fill_system(page, ip_inicio="10.0.0.1", data_fim="2026-01-01", atendimentos_dia_maximo="10")
    apoio.continue_(page)
    errors = apoio.field_errors(page)
    assert errors["sistema-ip-inicio"].startswith("IP inicial da faixa: ")
    assert errors["sistema-data-fim"] == "Data de fim: o fim (01/01/2026) é anterior ao início (01/12/2026)"
    assert errors["sistema-atendimentos-dia-maximo"] == "Atendimentos por dia (máximo): o máximo (10) é menor que o mínimo (800)"
    apoio.check_page(page, artefatos, "erro-sistema")

    page.goto(step + "/termo")
    apoio.continue_(page, "Confirmar e enviar para análise")
    apoio.expect_field_errors(page, {"aceito": "Li e aceito os termos de uso: campo obrigatório"})
    page.get_by_label("Li e aceito os termos de uso").check()
    apoio.continue_(page, "Confirmar e enviar para análise")
    assert "A solicitação está incompleta" in page.locator("#mensagem-erro").inner_text()

    # Nothing was saved, and nothing was sent.
    with portal.world.database.session() as session:
        row = session.get(CredentialRequest, request_id)
        assert (row.status, row.origem, row.est_cnes, row.gestor_cpf, row.sistema) == ("rascunho", None, None, None, None)


def test_a_rejected_request_shows_the_reason_and_analyst_pages_are_not_found_to_others(portal, browser, artefatos):
    request_id = apoio.sent_request(portal, w.BRUNO_CPF)
    daniel = apoio.logged_in(browser, portal, rw.DANIEL_CPF)
    analyst = daniel.new_page()
    analyst.goto(f"{portal.url}/portal/analise/solicitacoes/{request_id}")
    analyst.get_by_role("button", name="Reprovar", exact=True).click()
    apoio.expect_field_errors(analyst, {"reprovar-motivo": "Motivo da reprovação: campo obrigatório"})
    analyst.get_by_label("Motivo da reprovação").fill("A faixa de IP não pertence ao estabelecimento.")
    analyst.get_by_role("button", name="Reprovar", exact=True).click()
    assert analyst.locator("#situacao").inner_text() == "reprovada"

    bruno = apoio.logged_in(browser, portal, w.BRUNO_CPF)
    page = bruno.new_page()
    page.goto(portal.url + "/portal/solicitacoes?aba=respostas")
    page.get_by_role("link", name=f"Ver a solicitação {request_id}").click()
    assert "Motivo: A faixa de IP não pertence ao estabelecimento." in page.locator("#motivo-reprovacao").inner_text()
    apoio.check_page(page, artefatos, "solicitacao-reprovada")

    # Not an analyst: every analyst page is "não encontrado", like a page that does not exist.
    for path in ("/portal/analise", f"/portal/analise/solicitacoes/{request_id}", "/portal/analise/titularidade"):
        response = page.goto(portal.url + path)
        assert response.status == 404 and "não encontrad" in page.content().lower(), path
    assert page.request.post(f"{portal.url}/portal/analise/solicitacoes/{request_id}/aprovar",
                             form={"csrf_token": apoio.csrf_of(page)}).status == 404


def test_holder_transfer_is_registered_alike_and_decided_by_an_analyst(portal, browser, artefatos):
    eduarda = apoio.logged_in(browser, portal, rw.EDUARDA_CPF)
    page = eduarda.new_page()
    page.goto(portal.url + "/portal/permissoes")
    apoio.check_page(page, artefatos, "permissoes")
    form = page.locator("#titularidade")
    form.get_by_label("Número da credencial").fill("3805")
    form.get_by_role("button", name="Solicitar titularidade").click()
    apoio.expect_field_errors(page, {"numero-credencial": "Número da credencial: formato inválido",
                                     "justificativa": "Justificativa: campo obrigatório"})
    answers = []
    for number in ("3805/2024", "9999/2020"):  # a credential, and a number that is none: the same answer
        page.get_by_label("Número da credencial").fill(number)
        page.get_by_label("Justificativa").fill("O titular anterior deixou a secretaria.")
        page.get_by_role("button", name="Solicitar titularidade").click()
        answers.append(page.locator("#mensagem-titularidade").inner_text())
        assert "Bruno" not in page.content()
    assert answers[0] == answers[1] == "Solicitação registrada. Um analista do DATASUS vai analisá-la."

    daniel = apoio.logged_in(browser, portal, rw.DANIEL_CPF)
    analyst = daniel.new_page()
    analyst.goto(portal.url + "/portal/analise/titularidade")
    apoio.check_page(analyst, artefatos, "analise-titularidade")
    card = analyst.get_by_role("article").filter(has_text="credencial 3805/2024")
    assert "Eduarda Reis" in card.inner_text() and "Bruno Lima" in card.inner_text()
    card.get_by_role("button", name="Aprovar troca de titular").click()
    assert "Decisão registrada" in analyst.locator("#mensagem-decisao").inner_text()

    page.goto(portal.url + "/portal/permissoes")
    card = page.get_by_role("article").filter(has_text="Credencial nº 3805/2024")
    assert re.search(r"Eduarda Reis \(você\)\s+\S+\s+Titular", card.inner_text())


def test_no_serious_or_critical_accessibility_violation_on_wizard_steps_at_phone_width(portal, browser, artefatos):
    """Every step also at 360 px (the walk above checks them at desktop width)."""
    bruno = apoio.logged_in(browser, portal, w.BRUNO_CPF, phone=True)
    page = bruno.new_page()
    page.goto(portal.url + "/portal/solicitacoes")
    page.get_by_role("button", name="Solicitar Acesso para Homologação").click()
    request_id = int(re.search(r"/portal/solicitacoes/(\d+)/passo/", page.url).group(1))
    from portal_api.web.solicitacoes import SLUGS

    for slug in SLUGS:
        page.goto(f"{portal.url}/portal/solicitacoes/{request_id}/passo/{slug}")
        apoio.check_page(page, artefatos, f"celular-passo-{slug}", widths=("celular",))
    page.goto(f"{portal.url}/portal/solicitacoes/{request_id}/passo/picos?novo=1")
    apoio.check_page(page, artefatos, "celular-passo-picos-modal", widths=("celular",))
    with portal.world.database.session() as session:
        assert session.scalar(sa.select(CredentialRequest.status).where(CredentialRequest.id == request_id)) == "rascunho"
