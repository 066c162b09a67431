"""A backfill of several days through the daily flow (``dagster.materialize`` of each
partition, one instance): each day is published once, and running the same days
again changes nothing — no new version, no new object. (A backfill launched through
the daemon and its run queue is in test_dagster_e2e.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import AssetSelection

from assets.d1 import PUBLICATION, QUARANTINE, STAGED_FILES, STAGING
from serving.catalog import Catalog, Publication
from tests import dagster_support as s

DAYS = [dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18)]
ALL = AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES, PUBLICATION)


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    s.clean_env(monkeypatch, tmp_path / "home")


def _state(home):
    import sqlalchemy as sa

    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    with catalog.session() as session:
        publications = sorted((p.day, p.version, p.manifest_key) for p in session.scalars(sa.select(Publication)))
    files = {day: sorted((r.operation, r.version, r.object_key) for r in catalog.current_files_of_day(day)) for day in DAYS}
    catalog.engine.dispose()
    objects = sorted(p.relative_to(home / "storage").as_posix() for p in (home / "storage").rglob("*") if p.is_file())
    return publications, files, objects


@pytest.mark.slow  # six small runs: about 20 s
def test_a_backfill_of_three_days_publishes_each_once_and_running_it_again_changes_nothing(tmp_path):
    home = tmp_path / "home"
    for day in DAYS:
        result = s.materialize_keys(home, ALL, day.isoformat(), records=800, seed=day.day)
        assert result.success, s.checks_of(result)
    publications, files, objects = _state(home)
    assert [(day, version) for day, version, _ in publications] == [(day, 1) for day in DAYS]
    assert all(len(files[day]) > 27 for day in DAYS)
    # Different days, different content: every day has its own objects.
    assert len({tuple(k for _, _, k in files[day]) for day in DAYS}) == 3

    for day in DAYS:
        result = s.materialize_keys(home, ALL, day.isoformat(), records=800, seed=day.day)
        assert result.success and s.materialized(result)["d1_publication"]["versão publicada"] == 0
    assert _state(home) == (publications, files, objects)

    with s.instance_in(home) as instance:
        assert instance.get_materialized_partitions(PUBLICATION) == {day.isoformat() for day in DAYS}
        from dagster import DagsterRunStatus, RunsFilter

        runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
        assert len(runs) == 6
