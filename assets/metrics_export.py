"""The pipeline's metrics for the portal's ``/metrics`` scrape: a sensor that writes, every
minute, ``<VACINA_D1_HOME>/metrics/pipeline.prom`` (Prometheus text format) with

- ``vacina_d1_pipeline_publication_lag_seconds{uf}``: the same lag the portal reads
  (``serving.freshness``), as the pipeline sees its catalog;
- ``vacina_d1_pipeline_check_passed{check}``: 1/0, the latest evaluation of each check of
  the D-1 (the blocking ones and the freshness check), and
  ``vacina_d1_pipeline_check_evaluated_timestamp_seconds{check}``: when it was evaluated.

The file is replaced atomically, so a scrape never reads half of it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from dagster import AssetCheckKey, DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from assets.resources import CatalogDb, PipelineWork

SENSOR_NAME = "d1_metrics_sensor"


def render(check_results: dict[str, tuple[bool, float]], lags: dict[str, float]) -> bytes:
    registry = CollectorRegistry()
    lag = Gauge(
        "vacina_d1_pipeline_publication_lag_seconds",
        "Idade do dia publicado mais novo de cada UF, vista pelo pipeline.",
        ["uf"],
        registry=registry,
    )
    for uf, seconds in sorted(lags.items()):
        lag.labels(uf).set(seconds)
    passed = Gauge(
        "vacina_d1_pipeline_check_passed", "Última avaliação da verificação: 1 passou, 0 falhou.", ["check"], registry=registry
    )
    evaluated = Gauge(
        "vacina_d1_pipeline_check_evaluated_timestamp_seconds", "Quando a verificação foi avaliada.", ["check"], registry=registry
    )
    for name, (ok, timestamp) in sorted(check_results.items()):
        passed.labels(name).set(1 if ok else 0)
        evaluated.labels(name).set(timestamp)
    return generate_latest(registry)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".pipeline-", suffix=".prom")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def latest_check_results(instance, check_keys: Sequence[AssetCheckKey]) -> dict[str, tuple[bool, float]]:
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    results = {}
    for key in check_keys:
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        if not records:
            continue
        record = records[0]
        if record.status not in (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED):
            continue  # still running: the previous result stays until it ends
        results[f"{key.asset_key.to_user_string()}/{key.name}"] = (
            record.status == AssetCheckExecutionRecordStatus.SUCCEEDED,
            float(record.create_timestamp),
        )
    return results


def build_metrics_sensor(check_keys: Sequence[AssetCheckKey]):
    keys = list(check_keys)

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Escreve VACINA_D1_HOME/metrics/pipeline.prom (atraso da publicação por UF e o resultado de cada "
        "verificação), que o /metrics do portal inclui no mesmo scrape.",
    )
    def d1_metrics_sensor(context: SensorEvaluationContext, catalog_db: CatalogDb, pipeline_work: PipelineWork):
        import sqlalchemy as sa

        from serving.freshness import lag_by_uf, pipeline_metrics_path

        lags: dict[str, float] = {}
        engine = sa.create_engine(catalog_db.resolved_url())
        try:
            # A fresh install has no catalog yet: nothing published, no lag to report.
            if sa.inspect(engine).has_table("published_file"):
                lags = lag_by_uf(engine)
        except sa.exc.SQLAlchemyError as exc:
            context.log.warning(f"atraso da publicação não medido: {exc}")
        finally:
            engine.dispose()
        results = latest_check_results(context.instance, keys)
        path = pipeline_metrics_path(pipeline_work.home_dir())
        write_atomically(path, render(results, lags))
        return SkipReason(f"{len(results)} verificação(ões) e {len(lags)} UF(s) em {path}")

    return d1_metrics_sensor
