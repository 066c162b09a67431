"""The client installs small: its distribution's requirements name no server or
pipeline package, and it runs a real sync from a fresh virtual environment that
holds only the client and the closure of its declared requirements (copied file
by file from this environment's installed distributions — no network)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.sync import world as sw

CLIENT_SRC = Path(__file__).resolve().parents[1] / "client" / "src"
HEAVY = {
    "dagster",
    "dagster-webserver",
    "dagster-postgres",
    "fastapi",
    "uvicorn",
    "polars",
    "pyarrow",
    "boto3",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic-settings",
    "cryptography",
    "isal",
    "vacina-d1",
    "numpy",
    "pandas",
}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        if _norm(current) in seen:
            continue
        seen.add(_norm(current))
        for text in metadata.requires(current) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in (wanted or {""})):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_the_client_distribution_requires_no_server_or_pipeline_package():
    requires = [Requirement(r) for r in metadata.requires("vacina-d1-client")]
    unconditional = {_norm(r.name) for r in requires if r.marker is None}
    assert unconditional == {"httpx", "tqdm"}
    by_extra = {
        extra: {_norm(r.name) for r in requires if r.marker is not None and r.marker.evaluate({"extra": extra})}
        for extra in ("duckdb", "postgresql")
    }
    assert by_extra == {"duckdb": {"duckdb"}, "postgresql": {"psycopg2-binary"}}
    everything = _closure("vacina-d1-client", frozenset({"duckdb", "postgresql"}))
    assert not everything & HEAVY, everything & HEAVY
    assert metadata.entry_points(group="console_scripts", name="vacina-d1")  # the `vacina-d1 sync` the README shows
    # Nothing of the server is imported by the client's modules.
    source = "\n".join(p.read_text(encoding="utf-8") for p in (CLIENT_SRC / "vacina_d1_client").glob("*.py"))
    for package in ("pipelines", "serving", "portal_api", "assets", "dagster", "polars", "fastapi"):
        assert f"import {package}" not in source and f"from {package}" not in source.replace("from pipelines.cli", "")


@pytest.mark.slow
def test_a_fresh_venv_with_only_the_declared_requirements_runs_a_sync(tmp_path):
    venv = tmp_path / "venv limpo"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The client from the source tree, and each required distribution's own files.
    (purelib / "vacina_d1_client.pth").write_text(str(CLIENT_SRC) + "\n", encoding="utf-8")
    here = Path(sysconfig.get_paths()["purelib"])
    copied = []
    for name in sorted(_closure("vacina-d1-client") - {"vacina-d1-client"}):
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            source = Path(distribution.locate_file(file))
            if not source.is_file() or ".." in file.parts:
                continue
            target = purelib / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        copied.append(name)
    assert set(copied) >= {"httpx", "httpcore", "h11", "anyio", "idna", "certifi", "tqdm"}
    assert str(here) != str(purelib)

    probe = "import importlib.util as u; print([m for m in ('dagster','polars','fastapi','pipelines','portal_api','duckdb') if u.find_spec(m)])"
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("VACINA_D1_")}
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=clean_env, cwd=tmp_path, check=True)
    assert found.stdout.strip() == "[]"

    world = sw.build(tmp_path, rows_per_day=10)
    server = sw.serve(tmp_path, world)
    try:
        dest = tmp_path / "dados"
        done = subprocess.run(
            [
                str(python),
                "-m",
                "vacina_d1_client",
                "sync",
                "--operation",
                sw.CAMPINAS,
                "--since",
                "2026-11-01",
                "--dest",
                str(dest),
                "--accept-terms",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={
                **clean_env,
                "VACINA_D1_URL": server.url,
                "VACINA_D1_CPF": sw.USER_CPF,
                "VACINA_D1_TOKEN": world.world.personal_tokens[sw.USER_CPF],
                "VACINA_D1_CONFIG": str(tmp_path / "x.toml"),
            },
        )
        assert done.returncode == 0, done.stderr
        for day in sw.DAYS:
            assert (dest / sw.CAMPINAS / f"{sw.CAMPINAS}_{day}.csv.gz").read_bytes() == world.gz[(sw.CAMPINAS, day)]
        # --into without the duckdb extra: one clear line, exit 2.
        missing = subprocess.run(
            [
                str(python),
                "-m",
                "vacina_d1_client",
                "sync",
                "--operation",
                sw.CAMPINAS,
                "--dest",
                str(dest),
                "--into",
                str(tmp_path / "d.duckdb"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={
                **clean_env,
                "VACINA_D1_URL": server.url,
                "VACINA_D1_CPF": sw.USER_CPF,
                "VACINA_D1_TOKEN": "x",
                "VACINA_D1_CONFIG": str(tmp_path / "x.toml"),
            },
        )
        assert missing.returncode == 2 and 'pip install "vacina-d1-client[duckdb]"' in missing.stderr
        # The only command of a client-only install is sync.
        other = subprocess.run(
            [str(python), "-c", "import sys; from vacina_d1_client.cli import main; sys.exit(main(['serve']))"],
            capture_output=True,
            text=True,
            env=clean_env,
            cwd=tmp_path,
        )
        assert other.returncode == 2 and "só o cliente" in other.stderr
    finally:
        server.stop()
        world.world.database.dispose()
