"""``vacina-d1 publish``, ``db upgrade`` and ``gc`` end to end, as subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from serving.catalog import Catalog
from serving.storage import LocalStorage
from tests.day_factory import raw_day, write_day

DAY = dt.date(2026, 11, 21)
CLI = str(Path(sys.executable).parent / "vacina-d1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    raw = raw_day(DAY, 400, seed=9)
    original = base / "dia.parquet"
    write_day(original, DAY, 0, frame=raw)
    corrected = base / "dia-corrigido.parquet"
    write_day(
        corrected,
        DAY,
        0,
        frame=raw.with_columns(
            pl.when(pl.col("sg_uf_estabelecimento").is_in(["SP", "RJ"]))
            .then(pl.lit("X"))
            .otherwise(pl.col("sg_vacina"))
            .alias("sg_vacina")
        ),
    )
    return original, corrected


def run(*args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_")}
    environment.update(env or {})  # the defaults: var/ under the working directory
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=environment, cwd=home, timeout=300)


def one_json_line(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_publish_with_the_embedded_defaults_then_again_then_one_uf(tmp_path, inputs):
    original, corrected = inputs
    first = one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(original), home=tmp_path))
    assert first["version"] == 1 and first["changed"] == first["files"] > 27 and first["unchanged"] == 0
    assert 380 <= first["records"] <= 400  # the day's valid records
    assert first["rows"] > first["records"] and first["bytes_stored"] < first["bytes_csv"]
    assert first["manifest_key"].startswith("d1/2026/11/21/manifestos/v0001-")
    assert first["storage"] == str((tmp_path / "var" / "storage").absolute())
    catalog = Catalog(f"sqlite:///{tmp_path / 'var' / 'catalog.db'}")
    assert len(catalog.current_files_of_day(DAY)) == first["files"]
    store = LocalStorage(tmp_path / "var" / "storage")
    assert first["manifest_key"] in set(store.list_keys("d1/"))

    again = one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(original), home=tmp_path))
    assert again["changed"] == 0 and again["version"] is None and again["current_version"] == 1
    assert again["files"] == first["files"] and again["partitioned"] is False

    sp = one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(corrected), "--uf", "sp", home=tmp_path))
    assert sp["scope"] == "SP" and sp["version"] == 2 and 0 < sp["changed"] <= sp["files"]
    current = catalog.current_files_of_day(DAY)
    assert {r.uf for r in current if r.version == 2} == {"SP"}
    rest = one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(corrected), home=tmp_path))
    assert rest["version"] == 3 and rest["changed"] > 0
    # SP was already done by its own run: the whole day changes only the rest.
    third = {r.uf for r in catalog.current_files_of_day(DAY) if r.publication_id == 3}
    assert "RJ" in third and "SP" not in third
    catalog.engine.dispose()


def test_publish_to_s3_with_aws_endpoint_url(tmp_path, inputs, s3_bucket):
    endpoint, bucket = s3_bucket
    result = one_json_line(
        run(
            "publish",
            "--date",
            DAY.isoformat(),
            "--input",
            str(inputs[0]),
            "--storage",
            f"s3://{bucket}/vacina",
            "--catalog",
            f"sqlite:///{tmp_path / 'c.db'}",
            home=tmp_path,
            env={
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "teste",
                "AWS_SECRET_ACCESS_KEY": "teste",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        )
    )
    assert result["storage"] == f"s3://{bucket}/vacina" and result["version"] == 1
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]]
    assert f"vacina/{result['manifest_key']}" in keys


@pytest.mark.postgres
def test_publish_with_a_postgres_catalog(tmp_path, inputs, postgres_url):
    result = one_json_line(
        run("publish", "--date", DAY.isoformat(), "--input", str(inputs[0]), "--catalog", postgres_url, home=tmp_path)
    )
    assert result["version"] == 1 and "postgresql" in result["catalog"]
    catalog = Catalog(postgres_url)
    assert len(catalog.current_files_of_day(DAY)) == result["files"]
    catalog.engine.dispose()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--input", "{missing}"], "não encontrado"),
        (["--input", "{text}"], "não é um arquivo Parquet"),
        (["--input", "{other}"], "layout do contrato"),
        (["--input", "{day}", "--date", "2026-11-20"], "é do dia 2026-11-21"),
        (["--input", "{day}", "--date", "ontem-nao"], "data inválida"),
        (["--input", "{day}", "--uf", "ZZ"], "UF desconhecida"),
        (["--input", "{day}", "--storage", "ftp://x/y"], "armazenamento não suportado"),
        (["--input", "{day}", "--catalog", "postgresql+psycopg2://nobody@127.0.0.1:1/x"], "catálogo inacessível"),
    ],
)
def test_bad_input_gives_one_line_and_a_non_zero_exit(tmp_path, inputs, args, fragment):
    text = tmp_path / "texto.parquet"
    text.write_text("isto não é parquet")
    other = tmp_path / "outro.parquet"
    pl.DataFrame({"a": ["1"]}).write_parquet(other)
    values = {"missing": str(tmp_path / "nada.parquet"), "text": str(text), "other": str(other), "day": str(inputs[0])}
    argv = [a.format(**values) for a in args]
    if "--date" not in argv:
        argv += ["--date", DAY.isoformat()]
    result = run("publish", *argv, home=tmp_path)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vacina-d1: erro: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_gc(tmp_path, inputs):
    url = f"sqlite:///{tmp_path / 'novo.db'}"
    upgraded = one_json_line(run("db", "upgrade", "--catalog", url, home=tmp_path))
    assert "serving" in upgraded["packages"]
    assert one_json_line(run("db", "upgrade", "--catalog", url, home=tmp_path))["packages"] == upgraded["packages"]

    one_json_line(run("publish", "--date", DAY.isoformat(), "--input", str(inputs[0]), home=tmp_path))
    store = LocalStorage(tmp_path / "var" / "storage")
    store.put_bytes(
        "d1/2026/11/21/imunizacao-total-df/v0009-abandonado/x.csv.gz",
        b"x",
        content_type="application/gzip",
        metadata={"uploaded-at": "2026-11-01T00:00:00Z"},
    )
    dry = one_json_line(run("gc", "--dry-run", home=tmp_path))
    assert dry["removed"] == 1 and store.head("d1/2026/11/21/imunizacao-total-df/v0009-abandonado/x.csv.gz")
    done = one_json_line(run("gc", "--date", DAY.isoformat(), home=tmp_path))
    assert done["keys"] == ["d1/2026/11/21/imunizacao-total-df/v0009-abandonado/x.csv.gz"]
    assert store.head("d1/2026/11/21/imunizacao-total-df/v0009-abandonado/x.csv.gz") is None
    assert one_json_line(run("gc", "--older-than-hours", "0", home=tmp_path))["removed"] == 0
