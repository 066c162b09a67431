"""The 07:00 freshness check of ``d1_publication``, judging only days that were due
after the installation began.

The rule: at any moment the day expected is the one whose deadline (07:00
America/Sao_Paulo of the next day) is the latest that has passed. That day fails the
check when it is not published — unless its deadline passed *before the installation
began*: ``VACINA_D1_INSTALLED_AT`` when set (an installation moved to a new instance keeps
its date), else the creation of the oldest run in the Dagster instance (a fresh instance
with no run: now). A machine set up on a morning at 05:00 is not red for the day before
yesterday, which nobody could have published there; from the first deadline after
it on, every day is judged. The check's metadata says which day it judged and why.

Same machinery as Dagster's ``build_time_partition_freshness_checks`` (so the UI shows
it as a freshness check and ``build_sensor_for_freshness_checks`` evaluates it), with
that one rule added.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Iterable
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    JsonMetadataValue,
    MetadataValue,
    TimestampMetadataValue,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.asset_checks.asset_check_factories.utils import (
    DEADLINE_CRON_PARAM_KEY,
    FRESHNESS_PARAMS_METADATA_KEY,
    LATEST_CRON_TICK_METADATA_KEY,
    TIMEZONE_PARAM_KEY,
    freshness_multi_asset_check,
    retrieve_last_update_record,
)
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._time import datetime_from_timestamp, get_current_timestamp
from dagster._utils.schedules import get_latest_completed_cron_tick

INSTALLED_AT_METADATA_KEY = "instalação começou em"


def installation_started(instance: DagsterInstance, now: float) -> float:
    """When the installation began: ``VACINA_D1_INSTALLED_AT`` (ISO date or time, for an
    installation moved to a new instance), else the creation of the instance's oldest run,
    else now."""
    configured = os.environ.get("VACINA_D1_INSTALLED_AT", "").strip()
    if configured:
        moment = dt.datetime.fromisoformat(configured)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo("America/Sao_Paulo"))
        return min(now, moment.timestamp())
    records = instance.get_run_records(limit=1, order_by="create_timestamp", ascending=True)
    if not records:
        return now
    return min(now, records[0].create_timestamp.timestamp())


def build_freshness_checks(asset_keys: list[AssetKey], deadline_cron: str, timezone: str, severity: AssetCheckSeverity):
    params = JsonMetadataValue({TIMEZONE_PARAM_KEY: timezone, DEADLINE_CRON_PARAM_KEY: deadline_cron})

    @freshness_multi_asset_check(params_metadata=params, asset_keys=asset_keys, blocking=False)
    def d1_freshness(context) -> Iterable[AssetCheckResult]:
        now = get_current_timestamp()
        installed = installation_started(context.instance, now)
        for check_key in context.selected_asset_check_keys:
            asset_key = check_key.asset_key
            partitions_def = context.job_def.asset_layer.asset_graph.get(asset_key).partitions_def
            assert isinstance(partitions_def, TimeWindowPartitionsDefinition)
            deadline = get_latest_completed_cron_tick(deadline_cron, datetime_from_timestamp(now, tz=timezone), timezone)
            with partition_loading_context(
                datetime_from_timestamp(deadline.timestamp(), tz=partitions_def.timezone), context.instance
            ):
                window = partitions_def.get_last_partition_window()
            metadata: dict[str, MetadataValue] = {
                FRESHNESS_PARAMS_METADATA_KEY: params,
                LATEST_CRON_TICK_METADATA_KEY: TimestampMetadataValue(deadline.timestamp()),
                INSTALLED_AT_METADATA_KEY: TimestampMetadataValue(installed),
            }
            if window is None:
                yield AssetCheckResult(
                    passed=True,
                    asset_key=asset_key,
                    severity=severity,
                    metadata=metadata,
                    description="Nenhum dia venceu desde o início das partições.",
                )
                continue
            day = partitions_def.get_partition_key_range_for_time_window(window).start
            due = _fmt(deadline.timestamp(), timezone)
            if deadline.timestamp() < installed:
                yield AssetCheckResult(
                    passed=True,
                    asset_key=asset_key,
                    severity=severity,
                    metadata=metadata,
                    description=f"O dia {day} venceu em {due}, antes de a instalação começar "
                    f"({_fmt(installed, timezone)}): não é julgado.",
                )
                continue
            published = retrieve_last_update_record(instance=context.instance, asset_key=asset_key, partition_key=day) is not None
            yield AssetCheckResult(
                passed=published,
                asset_key=asset_key,
                severity=severity,
                metadata=metadata,
                description=f"O dia {day} está publicado (prazo {due})."
                if published
                else f"O dia {day} não foi publicado até o prazo ({due}).",
            )

    return [d1_freshness]


def _fmt(timestamp: float, timezone: str) -> str:
    return datetime_from_timestamp(timestamp, tz=timezone).strftime("%Y-%m-%d %H:%M") + f" ({timezone})"
