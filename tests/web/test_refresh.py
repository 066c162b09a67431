"""Atualizar in the browser against a real Dagster webserver (runs stay queued: no
daemon), its state read back from Dagster on the page."""

from __future__ import annotations

import pytest

from portal_api.models import RefreshRequest
from tests.portal.servers import graphql, start_dagster
from tests.web.conftest import SAO_PAULO_CPF, SP, SP_DAYS, Portal, assert_accessible, build_world, login, screenshot, start_portal

pytestmark = pytest.mark.slow

TERMINATE = """
mutation Cancel($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on TerminateRunSuccess { run { status } } ... on PythonError { message } }
}
"""


@pytest.fixture(scope="module")
def portal_dagster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web-dagster")
    dagster = start_dagster(tmp)
    world = build_world(tmp)
    server = start_portal(tmp, world, {"VACINA_D1_DAGSTER_GRAPHQL_URL": dagster.url})
    try:
        yield Portal(server.url, world, server, tmp, dagster.url)
    finally:
        server.stop()
        dagster.stop()
        world.database.dispose()


def test_atualizar_shows_the_run_state_as_it_changes(portal_dagster, new_page):
    portal = portal_dagster
    published = portal.world.file(SP, SP_DAYS[11])
    page = new_page()
    login(page, portal, SAO_PAULO_CPF, f"/portal/download-csv?operacao={SP}&ano=2026&mes=11")
    card = page.locator(f"#arquivo-{published.id}")
    assert card.locator(".portal-refresh-state").count() == 0

    card.get_by_role("button", name="Atualizar o arquivo de 21/11/2026").click()
    page.wait_for_url(f"**#arquivo-{published.id}")
    assert page.get_by_text("Atualização de 21/11/2026 pedida").is_visible()
    card = page.locator(f"#arquivo-{published.id}")
    assert card.locator(".portal-refresh-state").inner_text() == "Atualização: Na fila"
    assert_accessible(page, "atualizar")
    screenshot(page, "atualizar-na-fila-desktop")

    with portal.world.database.session() as session:
        run_id = session.query(RefreshRequest).filter_by(published_file_id=published.id).one().run_id
    result = graphql(portal.dagster_url, TERMINATE, {"runId": run_id})["terminateRun"]
    assert result["__typename"] == "TerminateRunSuccess", result
    page.reload()
    assert page.locator(f"#arquivo-{published.id} .portal-refresh-state").inner_text() == "Atualização: Cancelada"
    # Another day of the same month is not affected.
    other = portal.world.file(SP, SP_DAYS[10])
    assert page.locator(f"#arquivo-{other.id} .portal-refresh-state").count() == 0

    # The per-user limit (3 an hour) answers on the page, in Portuguese.
    for day in (SP_DAYS[10], SP_DAYS[9], SP_DAYS[8]):
        page.locator(f"#arquivo-{portal.world.file(SP, day).id}").get_by_role("button", name="Atualizar").click()
    assert page.get_by_text("Limite de 3 pedidos de atualização por hora atingido").is_visible()
