"""Issue 11: corruption caught and nothing left behind, through the real CLI.

``vacina-d1 verify`` re-reads stored objects against the catalog and the manifests,
republishing a day whose stored object is damaged rewrites it, and ``gc`` removes the
``.tmp`` objects and staging trees interrupted attempts leave (older than a threshold)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from serving.catalog import Catalog
from serving.storage import LocalStorage
from tests.day_factory import raw_day, write_day
from tests.test_cli_publish import DAY, one_json_line, run


@pytest.fixture
def published(tmp_path):
    day_file = tmp_path / "dia.parquet"
    write_day(day_file, DAY, 0, frame=raw_day(DAY, 300, seed=11))
    one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(day_file), home=tmp_path))
    catalog = Catalog(f"sqlite:///{tmp_path / 'var' / 'catalog.db'}")
    yield tmp_path, day_file, catalog, LocalStorage(tmp_path / "var" / "storage")
    catalog.engine.dispose()


def _flip(store: LocalStorage, key: str) -> None:
    path = store.path_of(key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))


def test_verify_catches_a_flipped_byte_and_republishing_rewrites_it(published):
    home, day_file, catalog, store = published
    clean = one_json_line(run("verify", "--date", DAY.isoformat(), home=home))
    files = catalog.files_of_day(DAY)
    assert clean["ok"] is True and clean["bad"] == 0 and clean["objects"] == len(files) + 1  # + the manifest
    assert clean["bytes_read"] == sum(f.bytes_stored for f in files) + len(
        store.get_bytes(catalog.latest_publication(DAY).manifest_key)
    )

    victim = next(f for f in files if f.uf == "SP" and f.scope_kind == "uf")
    _flip(store, victim.object_key)
    for selection in (("--date", DAY.isoformat()), ("--all",), ("--since", (DAY - dt.timedelta(days=3)).isoformat())):
        caught = run("verify", *selection, home=home)
        assert caught.returncode != 0, caught.stdout
        report = json.loads(caught.stdout.strip().splitlines()[-1])
        assert report["ok"] is False and report["bad_keys"] == [victim.object_key]
        assert victim.object_key in caught.stderr and len(caught.stderr.strip().splitlines()) == 1
    # Nothing else is verified outside the asked days.
    assert one_json_line(run("verify", "--since", (DAY + dt.timedelta(days=1)).isoformat(), home=home))["objects"] == 0

    # The same input again: the damaged file gets a new version (the others stay).
    again = one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(day_file), home=home))
    assert again["changed"] == 1 and again["version"] == 2 and again["partitioned"] is True
    fresh = catalog.current_file(victim.operation, DAY)
    assert fresh.version == victim.version + 1 and fresh.sha256_stored == victim.sha256_stored
    assert store.sha256(fresh.object_key) == fresh.sha256_stored
    # The old damaged version is still in the catalog, so verify still names it (audit), and only it.
    after = run("verify", "--date", DAY.isoformat(), home=home)
    assert json.loads(after.stdout.strip().splitlines()[-1])["bad_keys"] == [victim.object_key]


def test_verify_catches_a_manifest_that_changed(published):
    home, _, catalog, store = published
    key = catalog.latest_publication(DAY).manifest_key
    path = store.path_of(key)
    path.write_bytes(path.read_bytes().replace(b'"rows"', b'"Rows"', 1))
    caught = run("verify", "--date", DAY.isoformat(), home=home)
    assert caught.returncode != 0 and json.loads(caught.stdout.strip().splitlines()[-1])["bad_keys"] == [key]


def test_gc_removes_tmp_objects_and_staging_trees_of_interrupted_attempts(published):
    home, _, catalog, store = published
    day_dir = store.root / "d1" / "2026" / "11" / "21"
    old_tmp = day_dir / "imunizacao-total-sp" / ".imunizacao-total-sp_2026-11-21.csv.gz.abc123.tmp"
    old_tmp.parent.mkdir(parents=True, exist_ok=True)
    old_tmp.write_bytes(b"x" * 1000)
    young_tmp = day_dir / ".manifesto.young.tmp"
    young_tmp.write_bytes(b"y" * 10)
    staging = home / "var" / "staging" / "2026-11-21-BR-deadbeef"
    (staging / "SP").mkdir(parents=True)
    (staging / "SP" / "parte.csv.gz").write_bytes(b"z" * 5000)
    pipeline_attempt = home / "var" / "pipeline" / "2026-11-21" / ".files-0123456789ab"
    pipeline_attempt.mkdir(parents=True)
    (pipeline_attempt / "a.csv.gz").write_bytes(b"w" * 300)
    two_days_ago = time.time() - 48 * 3600
    for path in (old_tmp, staging, pipeline_attempt):
        os.utime(path, (two_days_ago, two_days_ago))

    dry = one_json_line(run("gc", "--dry-run", home=home))
    assert (dry["tmp_removed"], dry["staging_removed"], dry["bytes_freed"]) == (1, 2, 6300)
    assert old_tmp.exists() and staging.exists()
    done = one_json_line(run("gc", home=home))
    assert (done["tmp_removed"], done["staging_removed"], done["bytes_freed"]) == (1, 2, 6300)
    assert not old_tmp.exists() and not staging.exists() and not pipeline_attempt.exists()
    assert young_tmp.exists()  # an attempt in progress is spared
    assert one_json_line(run("verify", "--all", home=home))["ok"] is True  # nothing published was touched


def test_the_daily_scrub_job_catches_a_flipped_byte_records_it_and_alerts(published, monkeypatch):
    import warnings

    from dagster import DagsterInstance

    from assets.resources import CatalogDb, ObjectStore, PipelineWork
    from serving.catalog import FileIncident
    from tests import dagster_support as s

    home, _, catalog, store = published
    s.clean_env(monkeypatch, home / "var")
    defs = s.definitions(home / "var")
    schedule = defs.resolve_schedule_def("d1_scrub_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 5 * * *",
        "America/Sao_Paulo",
        "d1_scrub_job",
    )
    resources = {
        "object_store": ObjectStore(url=str(store.root)),
        "catalog_db": CatalogDb(url=catalog.url),
        "pipeline_work": PipelineWork(home=str(home / "var")),
    }
    config = {"ops": {"d1_scrub": {"config": {"days": 3660}}}, **s.QUIET}
    job = defs.resolve_job_def("d1_scrub_job")
    with warnings.catch_warnings(), DagsterInstance.ephemeral() as instance:
        warnings.simplefilter("ignore")
        clean = job.execute_in_process(run_config=config, resources=resources, instance=instance, raise_on_error=False)
        assert clean.success
        victim = next(f for f in catalog.files_of_day(DAY) if f.uf == "RJ" and f.scope_kind == "uf")
        _flip(store, victim.object_key)
        caught = job.execute_in_process(run_config=config, resources=resources, instance=instance, raise_on_error=False)
    assert not caught.success
    failure = next(e for e in caught.all_events if e.is_step_failure)
    assert victim.object_key in failure.event_specific_data.error.message
    alerts = [json.loads(line) for line in (home / "var" / "alertas.jsonl").read_text().splitlines()]
    assert alerts[-1]["tipo"] == "arquivos danificados" and alerts[-1]["objetos"] == [victim.object_key]
    with catalog.session() as session:
        incident = session.query(FileIncident).one()
    assert (incident.published_file_id, incident.detected_by) == (victim.id, "scrub")
