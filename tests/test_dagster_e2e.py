"""End to end, over real processes: a day published by ``vacina-d1 run``; then a
real ``dagster dev`` (webserver + daemon, loading the repository's workspace.yaml,
its run queue from the repository's dagster.yaml) and ``vacina-d1 serve``; the
portal's "Atualizar" launches ``d1_uf_job`` through GraphQL, the daemon runs it,
and the portal lists the newer version; and a backfill of three days launched
through GraphQL runs with no manual step, never more runs at once than the queue
allows."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests import dagster_support as s
from tests.conftest import free_port
from tests.dagster_stack import FINISHED, launch_daily_backfill, runs_tagged
from tests.portal.servers import Server, graphql, start_portal

pytestmark = pytest.mark.slow  # two servers and five runs: a few minutes on 2 cores

BIN = Path(sys.executable).parent
DAY = dt.date(2026, 11, 19)
BACKFILL_DAYS = ["2026-11-14", "2026-11-15", "2026-11-16"]
DF = "imunizacao-total-df"
ANA_CPF = "52998224725"
TOKEN_KEY = "k" * 48

RUN = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status jobName tags { key value } } } }
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(s.ROOT), VACINA_D1_HOME=str(home), VACINA_D1_TOKEN_KEY=TOKEN_KEY)
    env.update(extra)
    return env


def _dagster_home(tmp: Path) -> Path:
    """The repository's dagster.yaml (run queue, telemetry) with the storage in the test's
    directory instead of the repository's var/."""
    config = yaml.safe_load((s.ROOT / "dagster.yaml").read_text())
    for key in ("storage", "local_artifact_storage", "compute_logs"):
        config.pop(key, None)
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _users(home: Path) -> str:
    """Ana, holder of the DF credential; her personal token."""
    from portal_api import crud
    from portal_api.core.config import PortalSettings
    from portal_api.core.db import Database, upgrade

    settings = PortalSettings(home=home, token_key=TOKEN_KEY)
    upgrade(settings.resolved_catalog_url)
    database = Database(settings.resolved_catalog_url)
    with database.session() as session, session.begin():
        ana = crud.create_user(session, cpf=ANA_CPF, name="Ana Souza", email="ana@saude.df.gov.br")
        crud.create_credential(
            session,
            number="3804/2024",
            cnes="0010456",
            uf="DF",
            system_name="SI-PNI DF",
            environment="producao",
            holder=ana,
            operations=[DF],
        )
        _, token = crud.issue_personal_token(session, settings.resolved_token_key(), ana, name="e2e", days=1)
    database.dispose()
    return token


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "var"
    # The day as the 03:00 run left it: 1,200 records.
    first = subprocess.run(
        [str(BIN / "vacina-d1"), "run", "--date", DAY.isoformat()],
        cwd=tmp,
        env=_env(home, VACINA_D1_SYNTHETIC_RECORDS="1200"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    token = _users(home)

    # Since then the source received late records: the orchestrator now reads 1,500.
    port = free_port()
    dagster = Server(
        [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],  # Server adds env --default-signal
        _env(home, DAGSTER_HOME=str(_dagster_home(tmp)), VACINA_D1_SYNTHETIC_RECORDS="1500"),
        tmp / "dagster-dev.log",
        f"http://127.0.0.1:{port}/graphql",
    )
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"

    def loaded() -> bool:
        entries = httpx.post(dagster.url, json={"query": query}, timeout=5).json()["data"]["workspaceOrError"]["locationEntries"]
        return any(e["name"] == "vacina_d1" and e["loadStatus"] == "LOADED" for e in entries)

    try:
        dagster.wait_until(loaded, timeout=180)
        portal = start_portal(
            tmp, {"VACINA_D1_HOME": str(home), "VACINA_D1_TOKEN_KEY": TOKEN_KEY, "VACINA_D1_DAGSTER_GRAPHQL_URL": dagster.url}
        )
    except BaseException:
        dagster.stop()
        raise
    try:
        yield {"home": home, "dagster": dagster, "portal": portal, "token": token, "first": json.loads(first.stdout)}
    finally:
        portal.stop()
        dagster.stop()


def _wait_run(url: str, run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = graphql(url, RUN, {"runId": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(1)
    raise AssertionError(f"a execução {run_id} não terminou em {timeout}s")


def _day_files(client: httpx.Client, headers: dict, operation: str) -> list[dict]:
    response = client.get(f"/operations/{operation}/years/{DAY.year}/months/{DAY.month}/files", headers=headers)
    assert response.status_code == 200, response.text
    return [f for f in response.json()["items"] if f["day"] == DAY.isoformat()]


def test_atualizar_in_the_portal_runs_d1_uf_job_in_dagster_and_the_portal_lists_the_newer_version(stack):
    from serving.catalog import Catalog

    with httpx.Client(base_url=stack["portal"].url, timeout=30) as client:
        token = client.post(
            "/token", data={"grant_type": "client_credentials", "client_id": ANA_CPF, "client_secret": stack["token"]}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        [before] = _day_files(client, headers, DF)
        assert before["version"] == 1 and before["is_current"]
        catalog = Catalog(f"sqlite:///{stack['home'] / 'catalog.db'}")
        others_before = {r.operation: (r.version, r.object_key) for r in catalog.current_files_of_day(DAY) if r.uf != "DF"}

        response = client.post(f"/files/{before['id']}/refresh", headers=headers)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        run = _wait_run(stack["dagster"].url, run_id)
        assert (run["status"], run["jobName"]) == ("SUCCESS", "d1_uf_job"), stack["dagster"].log.read_text()[-3000:]
        assert {t["key"]: t["value"] for t in run["tags"]}["dagster/partition"] == f"{DAY}|DF"

        [after] = _day_files(client, headers, DF)
        assert after["version"] == 2 and after["is_current"] and after["id"] != before["id"]
        assert after["rows"] > before["rows"] and after["sha256"] != before["sha256"]
        # The other UFs' files are as the 03:00 run published them.
        others_after = {r.operation: (r.version, r.object_key) for r in catalog.current_files_of_day(DAY) if r.uf != "DF"}
        catalog.engine.dispose()
        assert others_after == others_before


def test_a_backfill_runs_through_the_daemon_within_the_run_queue_limit(stack):
    from serving.catalog import Catalog

    url = stack["dagster"].url
    backfill_id = launch_daily_backfill(url, BACKFILL_DAYS)
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        runs = runs_tagged(url, "dagster/backfill", backfill_id)
        if len(runs) == 3 and all(r["status"] in FINISHED for r in runs):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"o backfill não terminou: {runs}")
    assert sorted(r["status"] for r in runs) == ["SUCCESS"] * 3, stack["dagster"].log.read_text()[-3000:]
    assert sorted({t["key"]: t["value"] for t in r["tags"]}["dagster/partition"] for r in runs) == BACKFILL_DAYS
    # Never more than the queue's max_concurrent_runs (dagster.yaml: 2) at once.
    events = sorted([(r["startTime"], 1) for r in runs] + [(r["endTime"], -1) for r in runs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak <= 2
    catalog = Catalog(f"sqlite:///{stack['home'] / 'catalog.db'}")
    for day in BACKFILL_DAYS:
        assert catalog.latest_publication(dt.date.fromisoformat(day)).version == 1
    catalog.engine.dispose()


FRESHNESS = """
{ assetCheckExecutions(assetKey: {path: ["d1_publication"]}, checkName: "freshness_check", limit: 5) {
  status evaluation { success description } } }
"""


def test_a_fresh_installation_shows_no_red_check_and_no_alert(stack):
    """The freshness sensor evaluates the 07:00 check as soon as the daemon starts: on an
    installation that began today, the day due before it is not judged (assets.freshness),
    so the check passes and nothing reaches alertas.jsonl."""
    url = stack["dagster"].url
    deadline = time.monotonic() + 240
    freshness = None
    while time.monotonic() < deadline:
        executions = graphql(url, FRESHNESS)["assetCheckExecutions"]
        done = [e for e in executions if e["status"] in ("SUCCEEDED", "FAILED")]
        if done:
            freshness = done[0]
            break
        time.sleep(2)
    assert freshness and freshness["status"] == "SUCCEEDED", freshness
    assert freshness["evaluation"]["success"] is True, freshness
    assert not (stack["home"] / "alertas.jsonl").exists(), (stack["home"] / "alertas.jsonl").read_text()
