"""The code location as Dagster loads it: ``dagster definitions validate`` on the
repository's workspace, the instance ``dagster.yaml`` configures, the partitions,
the jobs the portal and the schedule launch, the 03:00 schedule, the 07:00
freshness check, resources from the environment, which errors are retried, and
the sensors that report failures."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dagster import AssetSelection, DagsterEventType, DagsterInstance, build_schedule_context

from assets.automation import DAILY_JOB, UF_JOB
from assets.d1 import PUBLICATION, QUARANTINE, STAGED_FILES, STAGING, UF_PUBLICATION, UF_STAGED_FILES
from pipelines import reference
from tests import dagster_support as s

SP = ZoneInfo("America/Sao_Paulo")


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    s.clean_env(monkeypatch, tmp_path / "home")


def _quiet_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(s.ROOT))
    return env


def test_dagster_definitions_validate_passes_on_the_repository_workspace(tmp_path):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=s.ROOT,
        env=_quiet_env(tmp_path / "dagster_home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful for code location vacina_d1" in done.stdout + done.stderr


def test_workspace_yaml_loads_assets_definitions_as_the_code_location_vacina_d1():
    workspace = yaml.safe_load((s.ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    module = entry["python_module"]
    assert (module["module_name"], module["attribute"], module["location_name"]) == ("assets.definitions", "defs", "vacina_d1")


def test_dagster_yaml_keeps_sqlite_under_var_dagster_and_bounds_the_run_queue(tmp_path, monkeypatch):
    # Relative paths are the repository root's; here a copy of the file in an empty directory.
    shutil.copy(s.ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    from dagster._core.instance.ref import InstanceRef

    (tmp_path / "tmp_home").mkdir()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "tmp_home"), config_dir=str(tmp_path))) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert {
            "key": "dagster/partition",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in queue.tag_concurrency_limits
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert not instance.telemetry_enabled
    assert (tmp_path / "var" / "dagster" / "storage").is_dir()
    # The PostgreSQL block is documented, with the scheme SQLAlchemy 2.1 needs.
    text = (s.ROOT / "dagster.yaml").read_text()
    assert "#       scheme: postgresql+psycopg2" in text and "#     postgres_db:" in text


def test_the_portal_contract_job_d1_uf_job_over_date_and_uf():
    defs = s.definitions(Path("unused"))
    job = defs.resolve_job_def(UF_JOB)
    partitions = job.partitions_def
    assert [d.name for d in partitions.partitions_defs] == ["date", "uf"]
    ufs = partitions.partitions_defs[1].partitions_def.get_partition_keys()
    assert ufs == sorted(reference.ufs()) and len(ufs) == 27
    keys = set(partitions.get_partition_keys(current_time=dt.datetime(2026, 11, 22, 12, tzinfo=SP)))
    assert "2026-11-21|DF" in keys and "2026-11-22|DF" not in keys
    assert set(job.asset_layer.executable_asset_keys) == {UF_STAGED_FILES, UF_PUBLICATION}


def test_daily_partitions_are_entry_days_in_sao_paulo_from_the_configured_start(monkeypatch):
    from assets.definitions import build_definitions

    monkeypatch.setenv("VACINA_D1_PARTITIONS_START", "2026-03-01")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        defs = build_definitions()
    days = defs.resolve_job_def(DAILY_JOB).partitions_def
    assert days.timezone == "America/Sao_Paulo"
    # 23:30 in São Paulo is already the next day in UTC; the day is not over there yet.
    keys = days.get_partition_keys(current_time=dt.datetime(2026, 11, 21, 23, 30, tzinfo=SP))
    assert keys[0] == "2026-03-01" and keys[-1] == "2026-11-20"
    keys = days.get_partition_keys(current_time=dt.datetime(2026, 11, 22, 0, 30, tzinfo=SP))
    assert keys[-1] == "2026-11-21"


def test_the_schedule_runs_every_day_at_three_in_sao_paulo_for_the_previous_day():
    defs = s.definitions(Path("unused"))
    assert [x.name for x in defs.schedules] == ["d1_daily_schedule", "d1_scrub_schedule"]
    schedule = defs.resolve_schedule_def("d1_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 3 * * *", "America/Sao_Paulo")
    assert schedule.job_name == DAILY_JOB
    for tick, expected in (
        (dt.datetime(2026, 11, 22, 3, 0, tzinfo=SP), "2026-11-21"),
        (dt.datetime(2026, 3, 1, 3, 0, tzinfo=SP), "2026-02-28"),
        (dt.datetime(2027, 1, 1, 3, 0, tzinfo=SP), "2026-12-31"),
    ):
        with build_schedule_context(scheduled_execution_time=tick) as context, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Dagster's own, inside the schedule
            [request] = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == expected


def test_the_jobs_run_in_one_process_with_the_blocking_checks_of_their_assets():
    d1 = s.build()
    defs = s.definitions(Path("unused"))
    daily, uf = defs.resolve_job_def(DAILY_JOB), defs.resolve_job_def(UF_JOB)
    assert daily.executor_def.name == uf.executor_def.name == "in_process"
    assert set(daily.asset_layer.executable_asset_keys) == {STAGING, QUARANTINE, STAGED_FILES, PUBLICATION}
    blocking = {key for c in d1.blocking_checks for key in c.check_keys}
    assert all(spec.blocking for c in d1.blocking_checks for spec in c.check_specs)
    daily_checks = set(daily.asset_layer.asset_graph.asset_check_keys) & {k for c in d1.asset_checks for k in c.check_keys}
    assert {k.asset_key for k in daily_checks} == {STAGING, STAGED_FILES, PUBLICATION}
    assert daily_checks <= blocking and len(daily_checks) == 9


def test_the_freshness_check_flags_yesterday_not_published_by_seven_in_sao_paulo(tmp_path, monkeypatch):
    from dagster import AssetMaterialization, materialize

    monkeypatch.setenv("VACINA_D1_INSTALLED_AT", "2026-01-01")  # installed long before the day judged

    d1 = s.build()
    [check] = d1.freshness_checks
    [spec] = check.check_specs
    assert spec.metadata["dagster/freshness_params"].data == {"timezone": "America/Sao_Paulo", "deadline_cron": "0 7 * * *"}
    now = dt.datetime.now(SP)
    last_deadline = now.date() if now.hour >= 7 else now.date() - dt.timedelta(days=1)
    due = (last_deadline - dt.timedelta(days=1)).isoformat()
    instance = DagsterInstance.ephemeral()
    publication = next(a for a in d1.assets if PUBLICATION in a.keys)

    def evaluate():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = materialize(
                [publication, check],
                selection=AssetSelection.checks(check),
                instance=instance,
                resources=s.resources(tmp_path),
                run_config=s.QUIET,
            )
        [evaluation] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        return evaluation

    late = evaluate()
    assert late.passed is False and due in late.description
    instance.report_runless_asset_event(AssetMaterialization(asset_key=PUBLICATION, partition=due))
    assert evaluate().passed is True


def test_resources_read_the_environment_and_fall_back_to_the_embedded_defaults(monkeypatch, tmp_path):
    from dagster import EnvVar

    from assets.resources import env_variables, resources_from_env

    empty = resources_from_env()
    assert empty["rnds_source"].resolved() == {
        "kind": "synthetic",
        "location": None,
        "records": 20_000,
        "seed": 2026,
        "key": None,
        "cnes_table": None,
    }
    assert empty["object_store"].resolved_url() == str((tmp_path / "home" / "storage").absolute())
    assert empty["catalog_db"].resolved_url() == f"sqlite:///{(tmp_path / 'home' / 'catalog.db').absolute()}"
    assert empty["pipeline_work"].quarantine_limit() == 0.05

    values = {
        "VACINA_D1_SOURCE": "fhir",
        "VACINA_D1_SOURCE_LOCATION": str(tmp_path / "rnds" / "{date}"),
        "VACINA_D1_SYNTHETIC_RECORDS": "123",
        "VACINA_D1_SYNTHETIC_SEED": "9",
        "VACINA_D1_PSEUDONYM_KEY": "chave-de-teste-com-mais-de-16",
        "VACINA_D1_CNES_TABLE": str(tmp_path / "cnes.csv"),
        "VACINA_D1_STORAGE_URL": "s3://balde/d1",
        "VACINA_D1_CATALOG_URL": "postgresql+psycopg2://app:segredo@db/catalogo",
        "VACINA_D1_HOME": str(tmp_path / "dados"),
        "VACINA_D1_MAX_QUARANTINE_SHARE": "0.2",
        "VACINA_D1_PUBLISH_THREADS": "3",
    }
    assert set(values) == set(env_variables())
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    configured = resources_from_env()
    # EnvVar, so the UI shows the variable's name, never the key or the password.
    assert configured["rnds_source"].pseudonym_key == EnvVar("VACINA_D1_PSEUDONYM_KEY")
    assert configured["catalog_db"].url == EnvVar("VACINA_D1_CATALOG_URL")
    # Resolved the way a run resolves them.
    source = configured["rnds_source"].process_config_and_initialize()
    assert source.resolved()["kind"] == "fhir" and source.resolved()["key"] == "chave-de-teste-com-mais-de-16"
    assert source.resolved()["records"] == 123 and source.resolved()["seed"] == 9
    (tmp_path / "rnds" / "2026-11-20").mkdir(parents=True)
    (tmp_path / "rnds" / "2026-11-20" / "a.ndjson").write_text("")
    opened = source.open(s.DAY)
    assert opened.kind == "fhir" and opened.path == tmp_path / "rnds" / "2026-11-20"
    assert "chave" not in source.describe(s.DAY)
    assert configured["object_store"].process_config_and_initialize().resolved_url() == "s3://balde/d1"
    catalog = configured["catalog_db"].process_config_and_initialize()
    assert "segredo" not in catalog.display_url() and catalog.display_url().endswith("@db/catalogo")
    work = configured["pipeline_work"].process_config_and_initialize()
    assert work.quarantine_limit() == 0.2 and work.home_dir() == tmp_path / "dados" and work.threads() == 3


def test_storage_and_catalog_failures_are_retried_and_bad_input_is_not():
    import sqlalchemy as sa

    from assets.errors import retryable
    from pipelines.flow import FlowError
    from pipelines.partition import PartitionInputError
    from pipelines.sources import SourceError
    from serving.publish import PublishError
    from serving.storage import ObjectNotFound, StorageError

    assert retryable(StorageError("HTTP 503 depois de 5 tentativas"))
    assert retryable(PublishError("outra publicação do dia terminou antes"))
    assert retryable(sa.exc.OperationalError("select 1", {}, Exception("database is locked")))
    assert retryable(ConnectionResetError()) and retryable(TimeoutError())
    assert not retryable(SourceError("cabeçalho fora do layout"))
    assert not retryable(PartitionInputError("não é canônico"))
    assert not retryable(FlowError("falta partition.json"))
    assert not retryable(FileNotFoundError(2, "não encontrado", "x.zip"))
    assert not retryable(ObjectNotFound("sem objeto"))
    assert not retryable(ValueError("data inválida"))


@pytest.fixture
def webhook():
    """A local HTTP endpoint that keeps the JSON bodies POSTed to it."""
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alertas", received
    server.shutdown()
    server.server_close()


def test_failed_runs_and_failed_checks_are_reported(tmp_path, monkeypatch, webhook):
    from dagster import build_run_status_sensor_context, build_sensor_context

    url, received = webhook
    monkeypatch.setenv("VACINA_D1_ALERT_WEBHOOK", url)
    home = tmp_path / "home"
    d1 = s.build()
    check_sensor = next(x for x in d1.sensors if x.name == "d1_check_failure_sensor")
    run_sensor = next(x for x in d1.sensors if x.name == "d1_run_failure_sensor")
    with s.instance_in(home) as instance:
        first = build_sensor_context(instance=instance)
        check_sensor.evaluate_tick(first)
        cursor = first.cursor

    # A day with too much quarantine: the check fails, the run fails.
    result = s.materialize_keys(
        home, AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES), s.DAY.isoformat(), max_share=0.0001
    )
    assert not result.success
    alerts = home / "alertas.jsonl"
    with s.instance_in(home) as instance:
        run = instance.get_run_by_id(result.run_id)
        failure = next(
            r.dagster_event
            for r in instance.all_logs(result.run_id)
            if r.dagster_event and r.dagster_event.event_type == DagsterEventType.RUN_FAILURE
        )
        context = build_run_status_sensor_context(
            sensor_name="d1_run_failure_sensor", dagster_event=failure, dagster_instance=instance, dagster_run=run
        ).for_run_failure()
        run_sensor(context)
        check_sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor))
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    run_alert, check_alert = lines
    assert run_alert["tipo"] == "execução falhou" and run_alert["execução"] == result.run_id
    assert run_alert["partição"] == s.DAY.isoformat()
    assert [c["verificação"] for c in run_alert["verificações que falharam"]] == ["rnds_staging/quarantine_share_under_limit"]
    assert check_alert["tipo"] == "verificação falhou"
    assert (
        check_alert["verificação"] == "rnds_staging/quarantine_share_under_limit" and "acima do limite" in check_alert["motivo"]
    )
    assert received == lines


def test_the_freshness_check_does_not_judge_days_due_before_the_installation_began(tmp_path, monkeypatch):
    """A fresh install is not red for a day that was due before it existed; the first
    day due after it is judged."""
    from dagster import materialize

    from assets.freshness import installation_started

    monkeypatch.delenv("VACINA_D1_INSTALLED_AT", raising=False)
    d1 = s.build()
    [check] = d1.freshness_checks
    publication = next(a for a in d1.assets if PUBLICATION in a.keys)
    instance = DagsterInstance.ephemeral()
    assert installation_started(instance, 1e12) == 1e12  # no run yet: the installation begins now

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(
            [publication, check],
            selection=AssetSelection.checks(check),
            instance=instance,
            resources=s.resources(tmp_path),
            run_config=s.QUIET,
        )
    [evaluation] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evaluation.passed is True and "antes de a instalação começar" in evaluation.description
    # The installation began with that first run: a day due later than it is judged.
    [record] = instance.get_run_records()
    assert installation_started(instance, 1e12) == record.create_timestamp.timestamp()
    # Set explicitly (an installation moved to a new instance), the older date wins.
    monkeypatch.setenv("VACINA_D1_INSTALLED_AT", "2026-01-01")
    assert installation_started(instance, 1e12) == dt.datetime(2026, 1, 1, tzinfo=SP).timestamp()
