"""The walks of issue 9 in Chromium, against ``vacina-d1 serve --dev-login``."""

from __future__ import annotations

import hashlib
import re

from tests.web.conftest import SAO_PAULO_CPF, SP, SP_DAYS, assert_accessible, login, screenshot


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
