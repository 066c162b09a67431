"""Shared pieces of the Dagster tests (tests/test_dagster_*.py): the real definitions
with resources pointing at a temporary data home, small synthetic days, and
readers of a run's outcome."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 11, 20)
START = dt.date(2026, 1, 1)
RECORDS = 1500
SEED = 11
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No VACINA_D1_*/DAGSTER_* from the developer's shell; the data home in the test's tmp."""
    for name in list(os.environ):
        if name.startswith("VACINA_D1_") or name.startswith("DAGSTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VACINA_D1_HOME", str(home))


def settings(**overrides: Any):
    from pipelines.flow import FlowSettings

    values = {"partitions_start": START, "retry_delay_seconds": 0.05, "retry_max": 2}
    values.update(overrides)
    return FlowSettings(**values)


def resources(
    home: Path, *, records: int = RECORDS, seed: int = SEED, max_share: float | None = None, store=None, source=None
) -> dict[str, Any]:
    from assets.resources import CatalogDb, ObjectStore, PipelineWork, RndsSource

    return {
        "rnds_source": source or RndsSource(kind="synthetic", synthetic_records=records, synthetic_seed=seed),
        "object_store": store or ObjectStore(url=str(home / "storage")),
        "catalog_db": CatalogDb(url=f"sqlite:///{home / 'catalog.db'}"),
        "pipeline_work": PipelineWork(home=str(home), max_quarantine_share=max_share),
    }


def build(**overrides: Any):
    """The code location's assets, checks and jobs (``assets.build``), as the UI loads them."""
    from assets.build import build as build_d1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_d1(settings(**overrides))


def definitions(home: Path, **resource_options: Any):
    from assets.definitions import build_definitions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_definitions(settings(), resources(home, **resource_options))


@contextlib.contextmanager
def instance_in(home: Path):
    """A Dagster instance kept in ``<home>/dagster`` (SQLite), so the history of checks
    and materialisations travels with a copied home."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    base = home / "dagster"
    base.mkdir(parents=True, exist_ok=True)
    (base / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(base))) as instance:
        yield instance


def materialize_keys(home: Path, selection, partition_key: str, **resource_options: Any):
    """``dagster.materialize`` of a selection of the real assets and checks, recorded in
    the home's instance."""
    from dagster import materialize

    d1 = build()
    with warnings.catch_warnings(), instance_in(home) as instance:
        warnings.simplefilter("ignore")
        return materialize(
            [*d1.assets, *d1.blocking_checks],
            selection=selection,
            partition_key=partition_key,
            resources=resources(home, **resource_options),
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
        )


def checks_of(result) -> dict[str, tuple[bool, str]]:
    """``asset/check`` -> (passed, description) of a run."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            found[f"{data.asset_key.to_user_string()}/{data.check_name}"] = (data.passed, data.description or "")
    return found


def materialized(result) -> dict[str, dict[str, Any]]:
    """asset -> its materialization metadata (plain values) in a run."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            m = event.event_specific_data.materialization
            found[m.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    return found


def retries_of(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def copy_home(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target
