"""Jobs, the 03:00 schedule, the 07:00 freshness check and the sensors that make a
failure visible outside the UI.

- ``d1_daily_job``: the whole day (extract → stage → publish, with their checks);
  what the schedule and backfills launch.
- ``d1_uf_job``: one UF of a day (partition ``AAAA-MM-DD|UF``); what the portal's
  "Atualizar" launches through GraphQL.
- ``d1_daily_schedule``: every day at 03:00 America/Sao_Paulo, for the previous day.
- a freshness check on ``d1_publication``: red when yesterday is not published by 07:00.
- ``d1_run_failure_sensor`` and ``d1_check_failure_sensor``: each failed run, and each
  failed check (including the freshness check, which fails no run), becomes a line in
  ``<VACINA_D1_HOME>/alertas.jsonl``, an error in the daemon's log and, when
  ``VACINA_D1_ALERT_WEBHOOK`` is set, a JSON POST to it.
"""

import warnings
from typing import Any, Sequence

from dagster import (
    AssetCheckKey,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    build_sensor_for_freshness_checks,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.d1 import PUBLICATION, QUARANTINE, STAGED_FILES, STAGING, UF_PUBLICATION, UF_STAGED_FILES
from assets.executors import job_executor
from assets.freshness import build_freshness_checks
from pipelines import dates

DAILY_JOB = "d1_daily_job"
UF_JOB = "d1_uf_job"
SCHEDULE_HOUR = 3
FRESHNESS_DEADLINE_CRON = "0 7 * * *"
ALERTS_FILE = "alertas.jsonl"


def build_jobs(checks: Sequence[AssetChecksDefinition]):
    """The two jobs, each with the blocking checks of its assets (never the freshness
    check: a backfill of last month must not judge whether yesterday is late)."""
    from dagster import define_asset_job

    def selection(*keys):
        own = [c for c in checks if any(k.asset_key in keys for k in c.check_keys)]
        return AssetSelection.assets(*keys).without_checks() | AssetSelection.checks(*own)

    # In process by default (one process per run, steps in sequence: the steps share the
    # day's files on disk and each is already parallel inside); Celery workers when
    # VACINA_D1_EXECUTOR=celery (assets.executors).
    executor = job_executor()
    daily = define_asset_job(
        DAILY_JOB,
        selection=selection(STAGING, QUARANTINE, STAGED_FILES, PUBLICATION),
        executor_def=executor,
        description="O fluxo D-1 de um dia inteiro: extrai da fonte, verifica, particiona, verifica e publica.",
        tags={"vacina_d1/fluxo": "dia"},
    )
    uf = define_asset_job(
        UF_JOB,
        selection=selection(UF_STAGED_FILES, UF_PUBLICATION),
        executor_def=executor,
        description="Reprocessa uma UF de um dia (partição AAAA-MM-DD|UF), sem tocar nos arquivos das outras UFs. "
        "É o que o 'Atualizar' do portal lança.",
        tags={"vacina_d1/fluxo": "uf"},
    )
    return daily, uf


def build_schedule(daily_job):
    # The daily partitions are in America/Sao_Paulo: at 03:00 the last complete day is yesterday.
    return build_schedule_from_partitioned_job(
        daily_job,
        name="d1_daily_schedule",
        hour_of_day=SCHEDULE_HOUR,
        minute_of_hour=0,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Todo dia às 03:00 (America/Sao_Paulo), o D-1: o dia anterior inteiro.",
    )


def build_freshness() -> tuple[Sequence[AssetChecksDefinition], SensorDefinition]:
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, which looks at the asset's last materialization
        # of any partition; this check asks the question we have: is yesterday published?
        warnings.simplefilter("ignore")
        # Days due before the installation began are not judged (assets.freshness).
        checks = build_freshness_checks([PUBLICATION], FRESHNESS_DEADLINE_CRON, dates.TIMEZONE, AssetCheckSeverity.ERROR)
        freshness_sensor = build_sensor_for_freshness_checks(
            freshness_checks=checks, name="d1_freshness_sensor", default_status=DefaultSensorStatus.RUNNING
        )
    return checks, freshness_sensor


# -- alerts -------------------------------------------------------------------------------------


def _alert(payload: dict[str, Any], log) -> None:
    """One alert: a JSON line in the data home, an error in the log, and the webhook
    (``serving.alerts``, shared with the scrub and the portal)."""
    from pipelines.flow import FlowSettings
    from serving.alerts import raise_alert

    raise_alert(payload, FlowSettings().home, log)


def build_failure_sensor() -> SensorDefinition:
    # Every job of the code location: the two D-1 jobs and the runs the UI launches
    # by materialising assets directly.
    @run_failure_sensor(
        name="d1_run_failure_sensor",
        default_status=DefaultSensorStatus.RUNNING,
        description="Avisa (alertas.jsonl, log, webhook) cada execução do D-1 que falhou, com as verificações que não passaram.",
    )
    def d1_run_failure_sensor(context: RunFailureSensorContext):
        run = context.dagster_run
        failed_checks = []
        for record in context.instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION":
                evaluation = event.event_specific_data
                if not evaluation.passed:
                    failed_checks.append(
                        {
                            "verificação": f"{evaluation.asset_key.to_user_string()}/{evaluation.check_name}",
                            "motivo": evaluation.description,
                        }
                    )
        _alert(
            {
                "tipo": "execução falhou",
                "job": run.job_name,
                "execução": run.run_id,
                "partição": run.tags.get("dagster/partition"),
                "pedido por": run.tags.get("vacina_d1/requested_by"),
                "erro": (context.failure_event.message or "")[:500],
                "verificações que falharam": failed_checks,
            },
            context.log,
        )

    return d1_run_failure_sensor


def build_check_failure_sensor(check_keys: Sequence[AssetCheckKey]) -> SensorDefinition:
    keys = list(check_keys)

    @sensor(
        name="d1_check_failure_sensor",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Avisa (alertas.jsonl, log, webhook) cada verificação do D-1 que não passou, inclusive a de "
        "atualidade (dia não publicado até as 07:00), que não faz nenhuma execução falhar.",
    )
    def d1_check_failure_sensor(context: SensorEvaluationContext):
        last_seen = int(context.cursor) if context.cursor else None
        storage = context.instance.event_log_storage
        newest = last_seen or 0
        alerts = 0
        for key in keys:
            records = storage.get_asset_check_execution_history(key, limit=50, status={AssetCheckExecutionRecordStatus.FAILED})
            for record in records:
                newest = max(newest, record.id)
                if last_seen is None or record.id <= last_seen:
                    continue  # first tick: only remember where we are
                evaluation = record.evaluation
                _alert(
                    {
                        "tipo": "verificação falhou",
                        "verificação": f"{key.asset_key.to_user_string()}/{key.name}",
                        "partição": evaluation.partition if evaluation is not None else None,
                        "execução": record.run_id,
                        "motivo": evaluation.description if evaluation is not None else None,
                    },
                    context.log,
                )
                alerts += 1
        context.update_cursor(str(newest))
        return SkipReason(f"{alerts} verificação(ões) com falha avisada(s)" if alerts else "nenhuma verificação nova com falha")

    return d1_check_failure_sensor
