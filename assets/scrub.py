"""The daily scrub: re-read what was published in the last days and compare it with the
catalog and the manifests (``serving.verify``), so a damaged object is found before a
user downloads it. Thin: the reading, the incidents and the alert are ``serving``'s.

- ``d1_scrub_job``: one op; damaged versions are recorded as incidents (the portal
  answers 503 for them until republished), an alert is raised (alertas.jsonl, log,
  webhook) and the run fails, naming the keys, so ``d1_run_failure_sensor`` reports it too.
- ``d1_scrub_schedule``: every day at 05:00 America/Sao_Paulo (after the 03:00 D-1).
"""

import datetime as dt

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from assets.resources import CatalogDb, ObjectStore, PipelineWork
from pipelines import dates

SCRUB_JOB = "d1_scrub_job"
SCRUB_HOUR = 5


class ScrubConfig(Config):
    days: int = Field(default=7, ge=1, le=3660, description="quantos dias para trás reler (a partir de hoje)")
    threads: int = Field(default=4, ge=1, le=32, description="leituras em paralelo")


@op(description="Relê os objetos publicados nos últimos dias e confere tamanho e SHA-256 com o catálogo e os manifestos.")
def d1_scrub(
    context: OpExecutionContext,
    config: ScrubConfig,
    object_store: ObjectStore,
    catalog_db: CatalogDb,
    pipeline_work: PipelineWork,
) -> None:
    from serving.alerts import raise_alert
    from serving.verify import record_incidents, verify_days

    since = dates.today() - dt.timedelta(days=config.days)
    storage = object_store.open()
    with catalog_db.open() as catalog:
        report = verify_days(storage, catalog, catalog.published_days(since), threads=config.threads)
        new = record_incidents(catalog, report, detected_by="scrub")
    summary = report.as_dict()
    context.log.info(f"varredura desde {since}: {summary['objects']} objetos, {summary['bad']} com problema")
    if report.ok:
        return
    raise_alert(
        {
            "tipo": "arquivos danificados",
            "detectado por": "varredura",
            "desde": since.isoformat(),
            "objetos": summary["bad_keys"][:50],
            "novos": len(new),
        },
        pipeline_work.home_dir(),
        context.log,
    )
    raise Failure(
        description=f"{summary['bad']} objeto(s) não conferem com o catálogo: {', '.join(summary['bad_keys'][:10])}",
        metadata={"chaves": MetadataValue.json(summary["bad_keys"][:50]), "objetos lidos": summary["objects"]},
    )


@job(
    name=SCRUB_JOB,
    executor_def=in_process_executor,
    description="Varredura diária: relê o que foi publicado nos últimos dias e avisa de objeto danificado.",
    tags={"vacina_d1/fluxo": "varredura"},
)
def d1_scrub_job():
    d1_scrub()


d1_scrub_schedule = ScheduleDefinition(
    name="d1_scrub_schedule",
    job=d1_scrub_job,
    cron_schedule=f"0 {SCRUB_HOUR} * * *",
    execution_timezone=dates.TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Todo dia às 05:00 (America/Sao_Paulo): relê os últimos 7 dias publicados.",
)
