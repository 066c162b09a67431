"""The walks of issue 9 in Chromium, against ``vacina-d1 serve --dev-login``."""

from __future__ import annotations

import hashlib
import re

from tests.web.conftest import RJ, RJ_CPF, SAO_PAULO_CPF, SP, SP_DAYS, assert_accessible, login, screenshot


def test_sao_paulo_manager_downloads_a_file_after_accepting_the_terms(portal, new_page):
    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/download-csv")
    assert page.url.endswith("/portal/download-csv")
    assert page.get_by_text("Marta", exact=True).is_visible()
    assert_accessible(page, "download-csv")
    # November 2026 opens (the newest month); October is a tab; other months disabled.
    page.get_by_label("Ano").fill("2026")
    page.get_by_role("button", name="Pesquisar").click()
    page.get_by_role("link", name="Novembro").click()
    assert page.locator(".tab-item.disabled").count() == 10
    dates = page.locator(".portal-file-date").all_inner_texts()
    assert dates[0].endswith("21/11/2026") and dates[1].endswith("20/11/2026"), dates
    assert "1-10 de 12 itens" in page.locator(".portal-pagination").inner_text()

    day = SP_DAYS[11]  # 2026-11-21
    published = portal.world.file(SP, day)
    link = page.get_by_role("link", name="Baixar o arquivo de 21/11/2026")
    link.click()
    modal = page.get_by_role("dialog", name="TERMO DE USO")
    modal.wait_for()
    assert "Termos de uso dos arquivos D-1" in modal.inner_text()
    assert_accessible(page, "termo de uso")
    modal.get_by_text("Li e aceito os termos de uso").click()  # the DS checkbox: its label is the box
    assert modal.get_by_label("Li e aceito os termos de uso").is_checked()
    with page.expect_download() as info:
        modal.get_by_role("button", name="Confirmar").click()
    download = info.value
    data = open(download.path(), "rb").read()
    assert hashlib.sha256(data).hexdigest() == published.sha256
    assert download.suggested_filename == f"{SP}_{day.isoformat()}.csv.gz"

    page.reload()
    entry = page.locator(f"#arquivo-{published.id} .portal-log tbody tr").first
    text = entry.inner_text()
    assert "Marta Ribeiro" in text and "***.030.001-**" in text, text
    assert re.search(r"\d{2}/\d{2}/\d{4} às \d{2}:\d{2}:\d{2}", text), text

    # A second download: no modal.
    with page.expect_download() as info:
        page.get_by_role("link", name="Baixar o arquivo de 21/11/2026").click()
    assert hashlib.sha256(open(info.value.path(), "rb").read()).hexdigest() == published.sha256
    assert not page.get_by_role("dialog").is_visible()
    screenshot(page, "download-csv-desktop")


def test_a_new_terms_version_shows_the_modal_again(portal, new_page):
    from portal_api import crud

    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/download-csv")
    link = page.get_by_role("link", name="Baixar o arquivo de 20/11/2026")
    assert link.get_attribute("data-terms-required") is None  # accepted in the walk above
    with portal.world.database.session() as session, session.begin():
        crud.publish_terms(session, SP, crud.DEFAULT_TERMS + "\n5. Versão revista para o teste.")
    page.reload()
    page.get_by_role("link", name="Baixar o arquivo de 20/11/2026").click()
    modal = page.get_by_role("dialog", name="TERMO DE USO")
    modal.wait_for()
    assert "Versão 2" in modal.inner_text() and "Versão revista para o teste" in modal.inner_text()
    # Confirmar without the box ticked: nothing is recorded, the modal stays.
    modal.get_by_role("button", name="Confirmar").click()
    assert modal.is_visible()
    modal.get_by_role("button", name="Cancelar").click()
    assert not modal.is_visible()
    with portal.world.database.session() as session:
        terms = crud.current_terms(session, SP)
        marta = crud.user_by_cpf(session, SAO_PAULO_CPF)
        assert terms.version == 2 and crud.acceptance(session, marta.id, terms) is None


def test_rj_manager_sees_nothing_of_sao_paulo(portal, new_page):
    page = new_page()
    login(page, portal, RJ_CPF, "/portal/download-csv")
    assert page.locator("#operacao option").all_inner_texts() == [RJ]
    for path in ("/portal/download-csv", "/portal/credenciais", "/portal/credenciais?aba=homologacao", "/"):
        page.goto(portal.url + path)
        text = page.locator("body").inner_text()
        assert "355030" not in text and "Marta" not in text and "3406/2024" not in text, (path, text)
    sp_file = portal.world.file(SP, SP_DAYS[11])
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for path in (
        f"/portal/arquivos/{sp_file.id}/conteudo?csrf_token={token}",
        f"/portal/termos/{sp_file.id}",
        f"/portal/download-csv?operacao={SP}",
        f"/portal/download-csv?operacao={SP}&ano=2026&mes=11",
        "/portal/arquivos/999999/conteudo?csrf_token=" + token,
    ):
        response = page.goto(portal.url + path)
        assert response.status == 404, path
        assert page.get_by_role("heading", name="Não encontrado").is_visible(), path
        assert "Marta" not in page.locator("body").inner_text()
    assert_accessible(page, "não encontrado")
    screenshot(page, "nao-encontrado-desktop")
    # A forged "Atualizar" of the São Paulo file with a valid token of the RJ session: 404 too.
    response = page.request.post(
        f"{portal.url}/portal/arquivos/{sp_file.id}/atualizar",
        form={"csrf_token": token},
        max_redirects=0,
    )
    assert response.status == 404
    # Nothing of the attempt reached the log or the refresh requests.
    import sqlalchemy as sa

    from portal_api.models import DownloadLogEntry, RefreshRequest, User

    with portal.world.database.session() as session:
        rafael = session.scalar(
            sa.select(sa.func.count())
            .select_from(DownloadLogEntry)
            .join(User, DownloadLogEntry.user_id == User.id)
            .where(User.cpf == RJ_CPF)
        )
        assert rafael == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(RefreshRequest)) == 0


def test_logout_leaves_nothing_behind(portal, new_page, browser):
    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/download-csv")
    assert page.locator(".portal-file").count() > 0
    old_cookies = page.context.cookies()
    session_cookie = next(c for c in old_cookies if c["name"] == "vd1_sessao")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Sair com segurança").click()
    page.wait_for_url(portal.url + "/")
    assert page.get_by_role("link", name="Entrar com gov.br").first.is_visible()
    # Back: the page is asked again (no-store) and the session is gone.
    page.go_back()
    page.wait_for_load_state()
    assert "/entrar" in page.url or "/dev-issuer" in page.url, page.url
    assert page.locator(".portal-file").count() == 0
    assert "Marta" not in page.locator("body").inner_text()
    # The old cookie, replayed in another browser context: nothing.
    other = browser.new_context()
    try:
        other.add_cookies(old_cookies)
        replay = other.new_page()
        response = replay.goto(portal.url + "/portal/download-csv")
        assert "/entrar" in replay.url and response.ok
        assert replay.locator(".portal-file").count() == 0
        api = other.request.get(portal.url + "/portal/arquivos/1/conteudo?csrf_token=x", max_redirects=0)
        assert api.status == 303 and "/entrar" in api.headers["location"]
    finally:
        other.close()
    # The issuer's session ended too (RP-initiated logout): logging in asks for the CPF again.
    page.goto(portal.url + "/entrar")
    page.locator("#main").get_by_role("link", name="Entrar com gov.br").click()
    assert page.get_by_label("CPF").is_visible()


def test_forged_posts_without_the_csrf_token_are_refused(portal, new_page):
    import sqlalchemy as sa

    from portal_api.models import PersonalToken

    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/tokens")
    sp_file = portal.world.file(SP, SP_DAYS[0])

    def count_tokens():
        with portal.world.database.session() as session:
            return session.scalar(sa.select(sa.func.count()).select_from(PersonalToken))

    before = count_tokens()
    for path, form in (
        ("/portal/tokens", {"nome": "forjado", "dias": "30"}),
        ("/portal/termos", {"operacao": SP, "versao": "2", "aceito": "sim"}),
        (f"/portal/arquivos/{sp_file.id}/atualizar", {}),
        ("/sair", {}),
    ):
        response = page.request.post(portal.url + path, form=form, max_redirects=0)
        assert response.status == 403, (path, response.status)
        assert "Requisição recusada" in response.text() or "Acesso negado" in response.text()
        forged = page.request.post(portal.url + path, form={**form, "csrf_token": "x" * 43}, max_redirects=0)
        assert forged.status == 403, path
    assert count_tokens() == before
    # A download link without the session's token (another site linking to it): refused, not logged.
    from portal_api.models import DownloadLogEntry

    with portal.world.database.session() as session:
        logged = session.scalar(sa.select(sa.func.count()).select_from(DownloadLogEntry))
    for query in ("", "?csrf_token=" + "x" * 43):
        response = page.request.get(f"{portal.url}/portal/arquivos/{sp_file.id}/conteudo{query}", max_redirects=0)
        assert response.status == 403 and response.headers["content-type"].startswith("text/html")
    with portal.world.database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(DownloadLogEntry)) == logged
    # Still logged in (the forged /sair did nothing); a real form post works.
    page.goto(portal.url + "/portal/tokens")
    assert page.get_by_text("Marta", exact=True).is_visible()
    # The right token from another origin is refused as well.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(
        portal.url + "/portal/tokens",
        form={"nome": "x", "csrf_token": token},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert response.status == 403 and count_tokens() == before


def test_personal_api_tokens_are_created_and_revoked_on_the_page(portal, new_page):
    import httpx

    page = new_page()
    login(page, portal, SAO_PAULO_CPF, "/portal/tokens")
    page.get_by_label("Nome do token").fill("carga diária")
    page.get_by_role("button", name="Criar token").click()
    plain = page.get_by_label("Token", exact=True).input_value()
    assert plain.startswith("vd1p_")
    assert_accessible(page, "tokens")
    screenshot(page, "tokens-desktop")
    exchange = {"grant_type": "client_credentials", "client_id": SAO_PAULO_CPF, "client_secret": plain}
    response = httpx.post(portal.url + "/token", data=exchange)
    assert response.status_code == 200
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert httpx.get(portal.url + "/operations", headers=bearer).status_code == 200
    page.reload()
    assert page.get_by_label("Token", exact=True).count() == 0  # shown once
    page.get_by_role("button", name="Revogar o token carga diária").click()
    assert page.get_by_text("revogado").first.is_visible()
    assert httpx.post(portal.url + "/token", data=exchange).status_code == 401
    assert httpx.get(portal.url + "/operations", headers=bearer).status_code == 401
