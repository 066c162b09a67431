"""The rooms' import rules (CONTRIBUTING.md): data flows one way, and no room
reaches up. Checked twice: statically (every import statement, lazy ones included)
and by importing each room in a fresh interpreter and looking at ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Room → top-level packages it must never import.
FORBIDDEN = {
    "serving": ("pipelines", "assets", "portal_api", "dagster", "dagster_webserver", "dagster_postgres", "fastapi"),
    "pipelines": ("assets", "portal_api", "dagster", "dagster_webserver", "dagster_postgres", "fastapi"),
    "assets": ("fastapi", "uvicorn"),
    "portal_api": ("assets", "dagster", "dagster_webserver", "dagster_postgres"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _modules(room: str) -> list[Path]:
    return sorted(p for p in (ROOT / room).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_import_statement_reaches_a_forbidden_room(room):
    offenders = []
    for path in _modules(room):
        for line, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[room]:
                offenders.append(f"{path.relative_to(ROOT)}:{line} importa {name}")
    assert not offenders, "\n".join(offenders)


def test_the_backends_do_not_import_each_other_and_the_factory_knows_both():
    storage = {name for _, name in _imports(ROOT / "serving" / "storage.py")}
    s3 = {name for _, name in _imports(ROOT / "serving" / "s3.py")}
    stores = {name for _, name in _imports(ROOT / "serving" / "stores.py")}
    assert "serving.s3" not in storage and "serving.stores" not in storage
    assert "serving.stores" not in s3
    assert {"serving.storage", "serving.s3"} <= stores


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _import_every_module(room: str) -> str:
    names = []
    for path in _modules(room):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return "\n".join(f"import {name}" for name in names)


@pytest.mark.parametrize("room", ["serving", "pipelines"])
def test_importing_every_module_of_a_lower_room_loads_nothing_above_it(room):
    loaded = _loaded_after(_import_every_module(room))
    assert not loaded & set(FORBIDDEN[room]), sorted(loaded & set(FORBIDDEN[room]))


def test_help_loads_neither_dagster_nor_the_web_stack_nor_the_data_engines():
    loaded = _loaded_after(
        "import contextlib, io, sys\n"
        "from pipelines import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "assert 'publish' in out.getvalue() and 'run' in out.getvalue() and 'serve' in out.getvalue()\n"
    )
    heavy = {"dagster", "fastapi", "uvicorn", "sqlalchemy", "alembic", "boto3", "polars", "pyarrow", "duckdb", "pydantic"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_a_command_that_needs_no_dagster_does_not_load_it(tmp_path):
    loaded = _loaded_after(
        "from pipelines import cli\n"
        f"assert cli.main(['generate', '--date', '2026-01-02', '--records', '50', '--out', {str(tmp_path / 'd.parquet')!r}]) == 0\n"
    )
    assert "polars" in loaded  # it did the work
    assert not loaded & {"dagster", "fastapi", "sqlalchemy", "uvicorn"}, sorted(loaded & {"dagster", "fastapi", "sqlalchemy"})
