"""The pipeline's metrics file (``d1_metrics_sensor``): the lag per UF from the catalog
and the latest result of every check, in the Prometheus format the portal appends to
its ``/metrics``."""

from __future__ import annotations

import datetime as dt

from dagster import AssetSelection, build_sensor_context
from prometheus_client.parser import text_string_to_metric_families

from assets.d1 import PUBLICATION, QUARANTINE, STAGED_FILES, STAGING
from serving.freshness import day_end, pipeline_metrics_path
from tests import dagster_support as s


def _read(path) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, next(iter(sample.labels.values())))] = sample.value
    return found


def test_the_sensor_writes_the_lag_per_uf_and_each_checks_latest_result(tmp_path, monkeypatch):
    home = tmp_path / "home"
    s.clean_env(monkeypatch, home)
    published = s.materialize_keys(home, AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES, PUBLICATION), s.DAY.isoformat())
    assert published.success
    d1 = s.build()
    sensor = next(x for x in d1.sensors if x.name == "d1_metrics_sensor")
    with s.instance_in(home) as instance:
        sensor.evaluate_tick(build_sensor_context(instance=instance, resources=s.resources(home)))
    metrics = _read(pipeline_metrics_path(home))
    lags = {uf: v for (name, uf), v in metrics.items() if name == "vacina_d1_pipeline_publication_lag_seconds"}
    assert len(lags) == 27  # every UF has its file, header-only or not
    expected = (dt.datetime.now(dt.timezone.utc) - day_end(s.DAY)).total_seconds()
    assert all(abs(v - expected) < 300 for v in lags.values())
    passed = {check: v for (name, check), v in metrics.items() if name == "vacina_d1_pipeline_check_passed"}
    assert len(passed) == 9 and set(passed.values()) == {1.0}

    # A later day whose quarantine is over the limit: that check's latest result is 0.
    later = (s.DAY + dt.timedelta(days=1)).isoformat()
    failed = s.materialize_keys(home, AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES), later, max_share=0.0001)
    assert not failed.success
    with s.instance_in(home) as instance:
        sensor.evaluate_tick(build_sensor_context(instance=instance, resources=s.resources(home)))
    metrics = _read(pipeline_metrics_path(home))
    assert metrics[("vacina_d1_pipeline_check_passed", "rnds_staging/quarantine_share_under_limit")] == 0
    assert metrics[("vacina_d1_pipeline_check_passed", "d1_publication/objects_sha256_verified")] == 1
    assert not list(pipeline_metrics_path(home).parent.glob(".pipeline-*"))  # no temporary file left
