"""The month's chart on the Download CSV page (issue 12), in a real browser: real
synthetic days partitioned and published with their indicator tables, the portal
served by ``vacina-d1 serve``, São Paulo's municipal user logged in through the
development issuer. The bars are the published days, the others are marked as
missing, the day's bar carries the count an independent DuckDB query gives over
the published CSV, and the page stays accessible and fits a phone."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from pipelines.extract import extract
from pipelines.partition import partition_day
from pipelines.sources.synthetic import SyntheticSource
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from portal_api.web import demo
from serving.publish import publish_day, staged_day_from
from serving.stores import open_storage
from tests.portal.world import World
from tests.web.conftest import DESKTOP, PHONE, SAO_PAULO_CPF, SP, Portal, assert_accessible, login, screenshot, start_portal

DAYS = (dt.date(2026, 11, 19), dt.date(2026, 11, 21))
RECORDS = 4_000


@pytest.fixture(scope="module")
def charted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grafico")
    home = tmp / "home"
    settings = PortalSettings(
        home=home,
        catalog_url=f"sqlite:///{home / 'catalog.db'}",
        storage_url=str(home / "storage"),
        token_key="k" * 48,
    )
    upgrade(settings.resolved_catalog_url)
    database = Database(settings.resolved_catalog_url)
    world = World(settings, database, open_storage(settings.resolved_storage_url))
    for seed, day in enumerate(DAYS, start=3):
        source = SyntheticSource(day, RECORDS, seed)
        staging = tmp / f"{day}.parquet"
        extract(
            source.batches(), staging, tmp / f"{day}.rejects.parquet", today=day + dt.timedelta(days=1), day=day, source=source
        )
        result = partition_day(staging, tmp / f"staging-{day}", day=day)
        publish_day(world.storage, database.catalog, staged_day_from(result))
    with database.session() as session, session.begin():
        demo.seed(session)
    server = start_portal(tmp, world)
    try:
        yield Portal(server.url, world, server, tmp)
    finally:
        server.stop()
        database.dispose()


def _expected_doses(world: World, day: dt.date) -> int:
    record = world.database.catalog.current_file("imunizacao-total-sp", day)
    path = world.storage.path_of(record.object_key)
    return duckdb.sql(
        f"SELECT count(*) FROM read_csv('{path}', delim=';', header=true, all_varchar=true) "
        "WHERE tp_vinculo_territorio IN ('ocorrencia', 'ambos') AND st_documento = 'final' "
        "AND dt_deletado_rnds IS NULL AND co_municipio_estabelecimento = '355030'"
    ).fetchall()[0][0]


@pytest.mark.parametrize("width", ["desktop", "celular"])
def test_the_download_page_shows_the_months_chart(charted, new_page, width):
    assert SP == "imunizacao-total-sp-355030"
    page = new_page(DESKTOP if width == "desktop" else PHONE)
    login(page, charted, SAO_PAULO_CPF, f"/portal/download-csv?operacao={SP}&ano=2026&mes=11")
    chart = page.locator("#grafico-do-mes svg")
    chart.wait_for()
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 150
    assert page.locator("#grafico-do-mes rect.dia:not(.sem-publicacao)").count() == len(DAYS)
    assert page.locator("#grafico-do-mes rect.sem-publicacao").count() == 30 - len(DAYS)
    for day in DAYS:
        bar = page.locator(f'#grafico-do-mes rect.dia[data-dia="{day.isoformat()}"]')
        expected = _expected_doses(charted.world, day)
        assert expected > 0 and bar.get_attribute("data-doses") == str(expected)
        assert bar.bounding_box()["height"] > 1  # drawn, not just present in the markup
    assert page.locator('#grafico-do-mes rect[data-dia="2026-11-20"]').get_attribute("class") == "dia sem-publicacao"
    assert page.locator("#grafico-do-mes rect.vacina").count() >= 1
    assert "Vacinas mais aplicadas no mês" in chart.text_content()
    assert_accessible(page, f"grafico ({width})")
    if width == "celular":
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, f"download-csv-grafico-{width}")
