"""``vacina-d1 run`` as an operator runs it (a subprocess, a directory with the
project's dagster.yaml, nothing else configured but a small synthetic day): the
day is materialised with the Dagster jobs in process and published, stdout's one
line is the JSON summary, stderr says where the files are and how to open the UI
and the portal, the run is in the instance the UI reads; bad input gets one line."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import dates
from serving import manifest as manifests
from serving.catalog import Catalog
from tests import dagster_support as s

BIN = Path(sys.executable).parent
DAY = "2026-11-19"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    env.update(VACINA_D1_HOME=str(tmp_path / "var"), VACINA_D1_SYNTHETIC_RECORDS="1200", PYTHONPATH=str(s.ROOT))
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "vacina-d1"), "run", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path):
    """A directory laid out like the repository root: its dagster.yaml, nothing else."""
    shutil.copy(s.ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


@pytest.mark.slow  # two runs in subprocesses: about 20 s
def test_run_publishes_the_day_prints_one_json_line_and_says_where_to_look(project, monkeypatch):
    done = run(project, "--date", DAY)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    summary = json.loads(line)
    assert (summary["command"], summary["date"], summary["scope"], summary["job"]) == ("run", DAY, "BR", "d1_daily_job")
    assert summary["read"] == 1200 == summary["valid"] + summary["quarantined"]
    assert summary["checks"] == summary["checks_passed"] == 9
    assert summary["version"] == summary["current_version"] == 1 and summary["changed"] == summary["files"] > 27

    var = project / "var"
    manifest = manifests.loads(Path(summary["manifest"]).read_bytes())
    assert manifest["source_counts"]["read"] == 1200 and len(manifest["files"]) == summary["files"]
    catalog = Catalog(f"sqlite:///{var / 'catalog.db'}")
    assert len(catalog.current_files_of_day(dt.date.fromisoformat(DAY))) == summary["files"]
    catalog.engine.dispose()
    assert summary["files_at"] == f"{var / 'storage'}/d1/2026/11/19/"

    # Human text on stderr: the files, the UI, the portal.
    assert summary["files_at"] in done.stderr and summary["manifest"] in done.stderr
    assert "dagster dev" in done.stderr and summary["run_id"] in done.stderr and "vacina-d1 serve" in done.stderr
    assert "Traceback" not in done.stderr

    # Recorded where `dagster dev` at this root reads (dagster.yaml: var/dagster).
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.instance.ref import InstanceRef

    monkeypatch.chdir(project)  # dagster.yaml's paths are relative to the root
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(var / "dagster"), config_dir=str(project))) as instance:
        recorded = instance.get_run_by_id(summary["run_id"])
        assert recorded.status == DagsterRunStatus.SUCCESS and recorded.job_name == "d1_daily_job"
        assert recorded.tags["dagster/partition"] == DAY and recorded.tags["vacina_d1/origem"] == "vacina-d1 run"
    assert (var / "dagster" / "storage" / "history").is_dir()

    # One UF alone, as the portal's "Atualizar" does: same content, nothing changes.
    again = run(project, "--date", DAY, "--uf", "df")
    assert again.returncode == 0, again.stderr
    uf = json.loads(again.stdout)
    assert (uf["job"], uf["scope"], uf["version"], uf["current_version"], uf["changed"]) == ("d1_uf_job", "DF", None, 1, 0)


@pytest.mark.parametrize(
    "args, extra, message",
    [
        (["--date", "2026-02-30"], {}, "data inválida"),
        (["--date", "today"], {}, "ainda não terminou"),
        (["--date", DAY, "--uf", "XY"], {}, "UF desconhecida: 'XY'"),
        (["--date", DAY, "--uf", " "], {}, "--uf vazio"),
        (["--date", DAY], {"VACINA_D1_PARTITIONS_START": "2026-11-20"}, "anterior ao início das partições"),
        (["--date", DAY], {"VACINA_D1_MAX_QUARANTINE_SHARE": "muito"}, "VACINA_D1_MAX_QUARANTINE_SHARE"),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(tmp_path, args, extra, message):
    done = run(tmp_path, *args, **extra)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("vacina-d1: erro: ") and message in line
    assert not (tmp_path / "var" / "storage").exists()


@pytest.mark.slow  # one run in a subprocess: about 10 s
def test_a_day_stopped_by_a_check_exits_non_zero_naming_the_check(tmp_path):
    done = run(tmp_path, "--date", DAY, VACINA_D1_MAX_QUARANTINE_SHARE="0.0001")
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "rnds_staging/quarantine_share_under_limit não passou" in line and "acima do limite" in line
    catalog = Catalog(f"sqlite:///{tmp_path / 'var' / 'catalog.db'}").upgrade()
    assert catalog.latest_publication(dt.date.fromisoformat(DAY)) is None
    catalog.engine.dispose()


def test_yesterday_is_the_default_day():
    import argparse

    from assets.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["run"])
    assert dates.parse_day(args.date) == dates.today() - dt.timedelta(days=1)
