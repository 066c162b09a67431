"""Health, metrics, request ids and the offline /docs of the portal, on the small
published world (real gzip files, real catalog) through FastAPI's TestClient."""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from portal_api import download_log
from portal_api.main import create_app
from serving.freshness import day_end, pipeline_metrics_path
from tests.conftest import free_port
from tests.portal import world as w


@pytest.fixture
def world(tmp_path):
    world = w.build(
        tmp_path,
        dagster_graphql_url=f"http://127.0.0.1:{free_port()}/graphql",
        dagster_timeout_seconds=2,
        refresh_per_hour=0,
    )
    yield world
    world.database.dispose()


@pytest.fixture
def client(world):
    app = create_app(world.settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.services.database.dispose()


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_live_and_ready_answer_200_when_database_and_storage_respond(client):
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "falhas": {}}


def test_ready_is_503_naming_the_storage_when_it_is_gone(world, client):
    shutil.rmtree(world.settings.home / "storage")
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert list(ready.json()["falhas"]) == ["armazenamento"]
    assert client.get("/health/live").status_code == 200  # alive, just not ready


@pytest.mark.postgres
def test_ready_is_503_naming_the_database_when_postgresql_is_gone(tmp_path, postgres_url, postgres_server):
    world = w.build(tmp_path, catalog_url=postgres_url)
    world.database.dispose()
    app = create_app(world.settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health/ready").status_code == 200
        app.state.services.database.engine.dispose()
        name = sa.engine.make_url(postgres_url).database
        admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert list(ready.json()["falhas"]) == ["banco de dados"]
        assert "vacina_d1_test_" in ready.json()["falhas"]["banco de dados"]


def test_metrics_count_downloads_bytes_latency_errors_and_each_kind_of_refusal(world, client):
    before = samples(client)
    ana = w.bearer(client, world, w.ANA_CPF)
    carla = w.bearer(client, world, w.CARLA_CPF)
    w.accept_terms(client, ana, w.DF)
    df_file = world.file(w.DF, dt.date(2026, 11, 21))
    url = f"/files/{df_file.id}/content"

    whole = client.get(url, headers=ana)
    assert whole.status_code == 200 and len(whole.content) == len(df_file.gz)
    part = client.get(url, headers={**ana, "Range": "bytes=100-"})
    assert part.status_code == 206
    as_csv = client.get(url + "?format=csv", headers={**ana, "Accept-Encoding": "identity"})
    assert as_csv.status_code == 200
    # Refusals: another state's file (404), terms not accepted (403), refresh limit (429).
    sp_file = world.file(w.SP_CITY, dt.date(2026, 11, 21))
    assert client.get(f"/files/{sp_file.id}/content", headers=ana).status_code == 404
    assert client.get(url, headers=carla).status_code == 403
    assert client.post(f"/files/{df_file.id}/refresh", headers=ana).status_code == 429

    after = samples(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        delta("vacina_d1_downloads_total", kind="imunizacao-total", scope="uf", representation="csv.gz", delivery="stream") == 2
    )
    assert delta("vacina_d1_downloads_total", kind="imunizacao-total", scope="uf", representation="csv", delivery="stream") == 1
    gz_bytes = len(df_file.gz) + (len(df_file.gz) - 100)
    assert delta("vacina_d1_download_bytes_sent_total", representation="csv.gz") == gz_bytes
    assert delta("vacina_d1_download_bytes_sent_total", representation="csv") == len(as_csv.content)
    assert delta("vacina_d1_refusals_total", reason="escopo") == 1
    assert delta("vacina_d1_refusals_total", reason="termos") == 1
    assert delta("vacina_d1_refusals_total", reason="limite") == 1
    assert delta("vacina_d1_http_errors_total", status="404") == 1
    assert delta("vacina_d1_http_errors_total", status="403") == 1
    assert delta("vacina_d1_http_errors_total", status="429") == 1
    route = "/files/{file_id}/content"
    assert delta("vacina_d1_http_request_duration_seconds_count", method="GET", route=route) == 5
    assert delta("vacina_d1_http_requests_total", method="GET", route=route, status="206") == 1


def test_metrics_carry_the_publication_lag_of_each_uf_and_the_pipelines_file(world, client):
    found = samples(client)
    lags = {labels[0][1]: v for (name, labels), v in found.items() if name == "vacina_d1_publication_lag_seconds"}
    # The world publishes DF (newest 2026-11-21) and SP (2026-11-21): UF files only count.
    assert set(lags) == {"DF", "SP"}
    now = dt.datetime.now(dt.timezone.utc)
    expected = (now - day_end(dt.date(2026, 11, 21))).total_seconds()
    assert abs(lags["DF"] - expected) < 120

    path = pipeline_metrics_path(world.settings.home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# HELP vacina_d1_pipeline_check_passed Resultado da última avaliação.\n"
        "# TYPE vacina_d1_pipeline_check_passed gauge\n"
        'vacina_d1_pipeline_check_passed{check="d1_publication/contagens"} 1\n'
    )
    found = samples(client)
    assert value(found, "vacina_d1_pipeline_check_passed", check="d1_publication/contagens") == 1


def test_request_id_is_echoed_or_made_and_reaches_the_download_log_line(world, client, caplog):
    made = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    ana = w.bearer(client, world, w.ANA_CPF)
    w.accept_terms(client, ana, w.DF)
    df_file = world.file(w.DF, dt.date(2026, 11, 20))
    with caplog.at_level(logging.INFO, logger="portal_api"):
        response = client.get(f"/files/{df_file.id}/content", headers={**ana, "X-Request-ID": "chamado-42"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "chamado-42"
    lines = [r.getMessage() for r in caplog.records if "download registrado" in r.getMessage()]
    assert len(lines) == 1 and "request_id chamado-42" in lines[0]
    # The request id is a column of the hash-chained entry: changing it breaks the chain.
    engine = world.database.engine
    with engine.connect() as conn:
        entry_id, stored = conn.execute(sa.text("SELECT id, http_request_id FROM download_log ORDER BY id DESC LIMIT 1")).one()
    assert stored == "chamado-42" and download_log.verify(engine).ok
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER download_log_no_update"))  # as someone with database access would
        conn.execute(sa.text("UPDATE download_log SET http_request_id = 'outro' WHERE id = :id"), {"id": entry_id})
    broken = download_log.verify(engine)
    assert not broken.ok and broken.first_bad_id == entry_id
    # A header that is not a plain token is replaced, never echoed.
    odd = client.get("/health/live", headers={"X-Request-ID": "a b;<x>"})
    assert odd.headers["X-Request-ID"] != "a b;<x>"


def test_json_logs_carry_the_request_id(world):
    from portal_api import observability

    record = logging.LogRecord("portal_api", logging.INFO, __file__, 1, "olá %s", ("mundo",), None)
    token = observability.request_id_var.set("r-1")
    try:
        line = observability.JsonFormatter().format(record)
    finally:
        observability.request_id_var.reset(token)
    import json

    payload = json.loads(line)
    assert payload["mensagem"] == "olá mundo" and payload["request_id"] == "r-1" and payload["nivel"] == "INFO"


def test_docs_page_loads_swagger_ui_from_the_app_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(src.startswith("/") for src in sources), sources
    assert "cdn" not in page.text.lower()
    for src in sources:
        asset = client.get(src)
        assert asset.status_code == 200, src
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert len(bundle.content) > 500_000  # the real Swagger UI bundle
    # Swagger UI 5 (OpenAPI 3.1, what FastAPI writes); 4.x refuses the document.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert re.search(rb'"5\.\d+\.\d+"', bundle.content)
