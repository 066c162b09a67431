"""Everything the code location ``vacina_d1`` holds, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import Backoff, Jitter, RetryPolicy


@dataclass(frozen=True)
class D1Definitions:
    assets: list[Any]
    asset_checks: list[Any]
    jobs: list[Any]
    schedules: list[Any]
    sensors: list[Any]
    # The blocking checks of the assets (what the jobs run) and the 07:00 freshness check.
    blocking_checks: list[Any]
    freshness_checks: list[Any]


def build(settings=None) -> D1Definitions:
    """Everything the code location holds, for ``settings`` (``pipelines.flow.FlowSettings``,
    read from the environment when None)."""
    from assets import automation, checks, d1, metrics_export, partitions, scrub
    from pipelines.flow import FlowSettings

    settings = settings or FlowSettings()
    days = partitions.daily(settings.partitions_start)
    day_ufs = partitions.day_uf(days)
    retry = RetryPolicy(
        max_retries=settings.retry_max,
        delay=settings.retry_delay_seconds,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )
    assets = d1.build_assets(days, day_ufs, retry, checks.publication_gates())
    d1_checks = checks.build_checks()
    daily_job, uf_job = automation.build_jobs(d1_checks)
    freshness_checks, freshness_sensor = automation.build_freshness()
    check_keys = [key for definition in [*d1_checks, *freshness_checks] for key in definition.check_keys]
    return D1Definitions(
        assets=assets.all,
        asset_checks=[*d1_checks, *freshness_checks],
        jobs=[daily_job, uf_job, scrub.d1_scrub_job],
        schedules=[automation.build_schedule(daily_job), scrub.d1_scrub_schedule],
        sensors=[
            freshness_sensor,
            automation.build_failure_sensor(),
            automation.build_check_failure_sensor(check_keys),
            metrics_export.build_metrics_sensor(check_keys),
        ],
        blocking_checks=list(d1_checks),
        freshness_checks=list(freshness_checks),
    )
