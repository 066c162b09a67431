"""A partition of the D-1 flow with this machine's PostgreSQL as the Dagster
instance storage, configured by the block ``dagster.yaml`` documents (uncommented,
its ``DAGSTER_PG_*`` variables pointing at a fresh database)."""

from __future__ import annotations

import warnings

import pytest
import sqlalchemy as sa
import yaml

from serving.catalog import Catalog
from tests import dagster_support as s

pytestmark = pytest.mark.postgres


def documented_postgres_storage() -> dict:
    """The commented ``storage: postgres`` block of the repository's dagster.yaml."""
    lines = (s.ROOT / "dagster.yaml").read_text().splitlines()
    start = lines.index("# storage:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    return yaml.safe_load("\n".join(block))


def test_a_day_runs_with_postgresql_as_the_instance_storage(postgres_url, tmp_path, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.instance.ref import InstanceRef

    from assets.automation import DAILY_JOB
    from assets.d1 import PUBLICATION

    storage = documented_postgres_storage()
    assert storage["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    url = sa.engine.make_url(postgres_url)
    home = tmp_path / "home"
    s.clean_env(monkeypatch, home)
    for name, value in {
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_DB": url.database,
    }.items():
        monkeypatch.setenv(name, value)
    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    (instance_dir / "dagster.yaml").write_text(yaml.safe_dump({**storage, "telemetry": {"enabled": False}}))

    defs = s.definitions(home, records=800)
    with warnings.catch_warnings(), DagsterInstance.from_ref(InstanceRef.from_dir(str(instance_dir))) as instance:
        warnings.simplefilter("ignore")
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
            partition_key=s.DAY.isoformat(), instance=instance, run_config=s.QUIET
        )
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == DagsterRunStatus.SUCCESS
        assert instance.get_materialized_partitions(PUBLICATION) == {s.DAY.isoformat()}

    # The run's events are in PostgreSQL, not in a local file.
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        checks = conn.execute(
            sa.text("select count(*) from asset_check_executions where run_id = :run and execution_status = 'SUCCEEDED'"),
            {"run": result.run_id},
        ).scalar()
        runs = conn.execute(sa.text("select count(*) from runs where run_id = :run"), {"run": result.run_id}).scalar()
    engine.dispose()
    assert (runs, checks) == (1, 9)
    assert not (instance_dir / "history").exists()
    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    assert catalog.latest_publication(s.DAY).version == 1
    catalog.engine.dispose()
