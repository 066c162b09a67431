"""Every page at desktop and phone width: axe-core finds no serious or critical
violation, nothing overflows 360 px, the keyboard reaches the main actions, and a
screenshot of each is kept under var/screenshots/ (a test artefact)."""

from __future__ import annotations

import pytest

from tests.web.conftest import (
    DESKTOP,
    NOBODY_CPF,
    PHONE,
    RJ,
    RJ_CPF,
    SAO_PAULO_CPF,
    SP,
    SP_DAYS,
    assert_accessible,
    login,
    screenshot,
)


def _check(page, name: str, width: str) -> None:
    assert_accessible(page, f"{name} ({width})")
    if width == "celular":
        overflow = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""
        )
        assert overflow <= PHONE["width"], f"{name}: a página tem {overflow}px de largura em 360px: {wide}"
    screenshot(page, f"{name}-{width}")


@pytest.mark.parametrize("width", ["desktop", "celular"])
def test_every_page_is_accessible_and_fits(portal, new_page, width):
    viewport = DESKTOP if width == "desktop" else PHONE
    page = new_page(viewport)
    page.goto(portal.url + "/")
    assert page.get_by_role("heading", name="Catálogo de APIs").is_visible()
    assert page.locator(".portal-api-card").count() >= 5
    _check(page, "inicio-anonimo", width)
    page.goto(portal.url + "/entrar?proximo=/portal/credenciais")
    _check(page, "entrar", width)
    page.locator("#main").get_by_role("link", name="Entrar com gov.br").click()
    page.get_by_label("CPF").wait_for()
    _check(page, "emissor-desenvolvimento-cpf", width)
    page.get_by_label("CPF").fill("111.111.111-11")
    page.get_by_role("button", name="Continuar").click()
    assert page.get_by_role("alert").inner_text().strip().startswith("CPF inválido")
    page.get_by_label("CPF").fill(SAO_PAULO_CPF)
    page.get_by_role("button", name="Continuar").click()
    page.wait_for_url("**/portal/credenciais")

    assert page.get_by_role("link", name="Produção (1)").get_attribute("aria-current") == "page"
    card = page.locator(".portal-credential").first
    text = card.inner_text()
    for expected in (
        "Vigilância em Saúde — SMS São Paulo",
        "3406/2024",
        "CNES 2077485",
        "Marta Ribeiro",
        "Solicitações de operações",
        SP,
    ):
        assert expected in text, (expected, text)
    assert card.get_by_role("link", name="Download CSV").is_visible()
    _check(page, "credenciais-producao", width)
    page.get_by_role("link", name="Homologação (1)").click()
    assert "3407/2024" in page.locator(".portal-credential").first.inner_text()
    assert page.locator(".portal-credential").get_by_role("link", name="Download CSV").count() == 0
    _check(page, "credenciais-homologacao", width)
    page.get_by_role("link", name="Em análise para produção").click()
    assert page.get_by_text(
        "Você ainda não possui credenciais — para isso é necessário fazer uma solicitação de acesso"
    ).is_visible()
    _check(page, "credenciais-em-analise", width)

    page.goto(portal.url + "/portal/download-csv?operacao=" + SP + "&ano=2026&mes=10")
    assert page.locator(".portal-file-date").all_inner_texts()[-1].endswith("30/10/2026")
    _check(page, "download-csv", width)
    page.goto(portal.url + "/portal/download-csv?operacao=" + SP + "&ano=2026&mes=11&pagina=2")
    assert "11-12 de 12 itens" in page.locator(".portal-pagination").inner_text()
    assert "Página 2" in page.locator(".portal-pagination").inner_text()
    page.goto(portal.url + "/portal/download-csv?operacao=" + SP + "&ano=abcd")
    assert page.get_by_role("alert").inner_text().strip().startswith("Ano inválido")
    page.goto(portal.url + "/portal/download-csv?operacao=" + SP + "&ano=2019")
    assert page.get_by_text("Nenhum arquivo publicado em 2019").is_visible()
    assert page.locator(".tab-item.disabled").count() == 12
    page.goto(portal.url + "/portal/tokens")
    _check(page, "tokens", width)
    page.goto(portal.url + "/portal/nao-existe")
    _check(page, "nao-encontrado", width)


@pytest.mark.parametrize("width", ["desktop", "celular"])
def test_terms_modal_and_its_no_javascript_page(portal, new_page, width):
    page = new_page(DESKTOP if width == "desktop" else PHONE)
    login(page, portal, RJ_CPF, "/portal/download-csv")
    page.get_by_role("link", name="Baixar o arquivo de 21/11/2026").click()
    page.get_by_role("dialog", name="TERMO DE USO").wait_for()
    _check(page, "termo-de-uso", width)
    # Keyboard: Escape closes the modal and gives the focus back to the link.
    page.keyboard.press("Escape")
    assert not page.get_by_role("dialog").is_visible()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')").startswith("Baixar o arquivo de 21/11/2026")
    # Without JavaScript the link leads to the terms page.
    rj_file = portal.world.file(RJ, portal.world.files[RJ][-1].day)
    page.goto(portal.url + f"/portal/termos/{rj_file.id}")
    assert page.get_by_role("heading", name="TERMO DE USO").is_visible()
    _check(page, "termo-de-uso-pagina", width)


def test_keyboard_reaches_the_download(portal, new_page):
    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/download-csv?operacao=" + SP)
    # Skip link first, then the header; Tab until the first download link has the focus.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip().startswith("Ir para o conteúdo")
    for _ in range(40):
        page.keyboard.press("Tab")
        label = page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
        if label.startswith("Baixar o arquivo de"):
            break
    else:
        pytest.fail("o primeiro botão de download não é alcançado pelo teclado")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "foco sem indicação visível"


def test_someone_without_credentials(portal, new_page):
    page = new_page()
    login(page, portal, NOBODY_CPF, "/portal/credenciais")
    assert page.get_by_text("Você ainda não possui credenciais").is_visible()
    page.goto(portal.url + "/portal/download-csv")
    assert page.get_by_text("Você não possui credencial de produção").is_visible()
    assert page.locator(".portal-file").count() == 0
    sp_file = portal.world.file(SP, SP_DAYS[0])
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert page.goto(portal.url + f"/portal/arquivos/{sp_file.id}/conteudo?csrf_token={token}").status == 404


def test_download_without_javascript_goes_through_the_terms_page(portal, new_page):
    import hashlib

    page = new_page(java_script_enabled=False)
    login(page, portal, SAO_PAULO_CPF, f"/portal/download-csv?operacao={SP}&ano=2026&mes=10")
    published = portal.world.file(SP, SP_DAYS[-1])  # 2026-10-31
    page.get_by_role("link", name="Baixar o arquivo de 31/10/2026").click()
    page.wait_for_url(f"**/portal/termos/{published.id}")
    assert page.get_by_role("heading", name="TERMO DE USO").is_visible()
    page.get_by_text("Li e aceito os termos de uso").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Confirmar").click()
    assert hashlib.sha256(open(info.value.path(), "rb").read()).hexdigest() == published.sha256
