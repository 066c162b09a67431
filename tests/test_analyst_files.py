"""Files analysts can use without traps (issue 12), on real synthetic days partitioned
and published to a real local store and SQLite catalog, read back from the store:

- the typed Parquet equals the CSV row for row, codes as text and dates as dates
  with no reader option;
- the manifest and the catalog list both representations and the UF indicators;
- the day's data package is the current view: a glob over the store sees the
  superseded versions, the package only the current ones, whose occurrence rows
  add up to exactly the day's valid records;
- the indicator tables equal an independent DuckDB count over the published CSVs;
- the README's reader options (pandas, polars, duckdb, stdlib csv) keep every code;
- the portal serves ``?format=parquet`` (logged as such), the month's indicators
  (scoped: 404 outside) and their SVG chart.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from pipelines import contract, indicators
from pipelines.datapackage import dictionary
from pipelines.extract import extract
from pipelines.partition import partition_day
from pipelines.sources.synthetic import SyntheticSource
from portal_api import crud, download_log
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from portal_api.main import create_app
from serving import datapackage
from serving import manifest as manifests
from serving.catalog import Catalog
from serving.publish import publish_day, staged_day_from
from serving.storage import LocalStorage
from tests.portal import world as w

DAYS = (dt.date(2026, 11, 20), dt.date(2026, 11, 21))
LATEST = DAYS[-1]
RECORDS = 6_000
CODE_COLUMNS = (*contract.CODE_WIDTHS, *contract.NUMERIC_CODE_COLUMNS)
DF_USER, CITY_USER = w.ANA_CPF, w.BRUNO_CPF
CITY = "imunizacao-total-sp-355030"


def _day(directory: Path, day: dt.date, seed: int) -> tuple[Path, int]:
    source = SyntheticSource(day, RECORDS, seed)
    out = directory / f"{day}-{seed}.parquet"
    counts = extract(
        source.batches(),
        out,
        directory / f"{day}-{seed}.rejects.parquet",
        today=day + dt.timedelta(days=1),
        day=day,
        source=source,
    )
    return out, counts.valid


class Published:
    def __init__(self, root: Path):
        self.root = root
        self.url = f"sqlite:///{root / 'catalog.db'}"
        upgrade(self.url)
        self.catalog = Catalog(self.url)
        self.storage = LocalStorage(root / "storage")
        self.valid: dict[dt.date, int] = {}
        self.superseded_keys: list[str] = []

    def publish(self, day: dt.date, seed: int) -> None:
        path, valid = _day(self.root, day, seed)
        result = partition_day(path, self.root / f"staging-{day}-{seed}", day=day, batch_rows=2_000)
        outcome = publish_day(self.storage, self.catalog, staged_day_from(result))
        assert outcome.publication_id is not None
        self.valid[day] = valid

    def get(self, key: str) -> bytes:
        return self.storage.get_bytes(key)

    def package(self, day: dt.date) -> dict:
        return json.loads(self.get(datapackage.package_key(day)))

    def manifest(self, day: dt.date) -> dict:
        return manifests.loads(self.get(self.catalog.latest_publication(day).manifest_key))


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Published:
    world = Published(tmp_path_factory.mktemp("analistas"))
    world.publish(DAYS[0], seed=5)
    world.publish(LATEST, seed=6)
    world.superseded_keys = [r.object_key for r in world.catalog.current_files_of_day(LATEST)]
    # A corrected day: new versions of the files that changed; the old ones stay stored.
    world.publish(LATEST, seed=7)
    return world


def _csv(data: bytes) -> pl.DataFrame:
    return pl.read_csv(gzip.decompress(data), separator=";", infer_schema=False)


def _sample(records, uf_too: bool = True) -> list:
    ufs = [r for r in records if r.scope_kind == "uf" and r.rows > 0]
    munis = sorted((r for r in records if r.scope_kind == "municipio"), key=lambda r: -r.rows)
    return (ufs if uf_too else []) + munis[:15] + munis[-15:]


# -- Parquet == CSV ---------------------------------------------------------------------------


def test_the_parquet_equals_the_csv_row_for_row_with_codes_and_dates_typed(published):
    records = published.catalog.current_files_of_day(LATEST)
    representations = published.catalog.representations([r.id for r in records])
    assert all({rep.kind for rep in representations[r.id]} >= {"parquet"} for r in records)
    checked = 0
    for record in _sample(records):
        parquet = next(rep for rep in representations[record.id] if rep.kind == "parquet")
        data = published.get(parquet.object_key)
        assert hashlib.sha256(data).hexdigest() == parquet.sha256 and len(data) == parquet.bytes
        typed = pl.read_parquet(io.BytesIO(data))  # no option at all
        assert typed.columns == list(contract.FILE_COLUMNS) and typed.height == record.rows == parquet.rows
        assert all(typed.schema[c] == pl.Date for c in contract.DATE_COLUMNS)
        assert all(typed.schema[c] == pl.String for c in contract.FILE_COLUMNS if c not in contract.DATE_COLUMNS)
        text = _csv(published.get(record.object_key))
        as_text = typed.with_columns(pl.col(c).dt.strftime("%Y-%m-%d") for c in contract.DATE_COLUMNS)
        assert as_text.equals(text), record.operation
        metadata = pq.ParquetFile(io.BytesIO(data)).metadata
        assert metadata.num_row_groups == 0 or metadata.row_group(0).column(0).compression == "ZSTD"
        checked += 1
    assert checked > 30
    # Leading zeros survive pandas' and DuckDB's defaults on the Parquet too.
    sp = next(r for r in records if r.operation == "imunizacao-total-sp")
    sp_parquet = next(rep for rep in representations[sp.id] if rep.kind == "parquet")
    frame = pd.read_parquet(io.BytesIO(published.get(sp_parquet.object_key)))
    assert frame["co_cnes_estabelecimento"].str.len().eq(7).all()
    assert frame["co_raca_cor_paciente"].dropna().str.len().eq(2).all()
    assert str(frame["co_municipio_estabelecimento"].dtype) in ("object", "str", "string")
    assert isinstance(frame["dt_vacina"].iloc[0], dt.date) or "datetime" in str(frame["dt_vacina"].dtype)
    local = published.storage.path_of(sp_parquet.object_key)
    kinds = {row[0]: row[1] for row in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{local}')").fetchall()}
    assert kinds["co_cnes_estabelecimento"] == "VARCHAR" and kinds["dt_vacina"] == "DATE"


# -- manifest, catalog, data package -----------------------------------------------------------


def test_manifest_and_catalog_list_both_representations_and_the_indicators(published):
    records = {r.operation: r for r in published.catalog.current_files_of_day(LATEST)}
    representations = published.catalog.representations([r.id for r in records.values()])
    manifest = published.manifest(LATEST)
    assert {f["operation"] for f in manifest["files"]} == set(records)
    for entry in manifest["files"]:
        record = records[entry["operation"]]
        listed = {rep["kind"]: rep for rep in entry["representations"]}
        catalogued = {rep.kind: rep for rep in representations[record.id]}
        expected = {"parquet", "indicadores.csv", "indicadores.parquet"} if record.scope_kind == "uf" else {"parquet"}
        assert set(listed) == set(catalogued) == expected, entry["operation"]
        # Header-only versions (a municipality that lost its records) included: named after their CSV.
        assert listed["parquet"]["file_name"] == entry["file_name"].replace(".csv.gz", ".parquet")
        for kind, rep in listed.items():
            assert rep["object_key"] == catalogued[kind].object_key and rep["sha256"] == catalogued[kind].sha256
            assert rep["object_key"].rsplit("/", 1)[0] == record.object_key.rsplit("/", 1)[0]  # same version folder
    # Every representation object the manifest names is stored with that digest and size (UF ones read back).
    for entry in manifest["files"]:
        if entry["scope"]["kind"] != "uf":
            continue
        for rep in entry["representations"]:
            data = published.get(rep["object_key"])
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (rep["sha256"], rep["bytes"])
    assert any(entry["rows"] == 0 for entry in manifest["files"])  # the corrected day emptied some files
    # Old versions' representations are still addressable.
    assert all(published.storage.head(key) is not None for key in published.superseded_keys)


def test_the_data_package_describes_every_column_from_the_public_dictionary(published):
    package = published.package(LATEST)
    folder = datapackage.day_folder(LATEST)
    schema = json.loads(published.get(folder + datapackage.SCHEMA_FILES["registros"]))
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == list(contract.FILE_COLUMNS)
    words = dictionary()
    for name in contract.SOURCE_COLUMNS:
        assert fields[name]["description"].startswith(words.get(name, words.get("dt_deleted"))), name
        assert fields[name]["type"] == ("date" if name in contract.DATE_COLUMNS else "string")
    vinculo = fields[contract.TERRITORY_COLUMN]["description"]
    assert "'ocorrencia' ou 'ambos'" in vinculo and "'residencia' ou 'ambos'" in vinculo
    assert "contar cada registro uma vez" in package["description"].lower() or "uma vez" in package["description"]
    assert package["profile"] == "tabular-data-package" and package["sources"]
    assert json.loads(published.get(folder + datapackage.SCHEMA_FILES["indicadores"]))["fields"][-1]["name"] == "qt_doses"
    for resource in package["resources"][:50]:
        data = published.get(folder + resource["path"])
        assert resource["hash"] == f"sha256:{hashlib.sha256(data).hexdigest()}" and resource["bytes"] == len(data)


def test_the_current_view_never_shows_superseded_versions_and_counts_each_record_once(published):
    folder = published.storage.path_of(datapackage.package_key(LATEST)).parent
    globbed = sorted(folder.glob("*/*/*.csv.gz"))
    package = published.package(LATEST)
    current = {r.object_key for r in published.catalog.current_files_of_day(LATEST)}
    listed = {
        datapackage.day_folder(LATEST) + r["path"]
        for r in package["resources"]
        if r["format"] == "csv" and r["path"].endswith(".csv.gz")
    }
    assert listed == current
    assert len(globbed) > len(listed)  # the glob trap the package avoids: the corrected day has two versions
    uf_files = [
        str(published.storage.path_of(datapackage.day_folder(LATEST) + r["path"]))
        for r in package["resources"]
        if r["vacina_d1"]["scope"]["kind"] == "uf" and r["vacina_d1"]["representation"] == "csv.gz"
    ]
    assert len(uf_files) == 27
    files = ", ".join(f"'{p}'" for p in uf_files)
    occurrence, distinct_records, lines = duckdb.sql(
        f"SELECT count(*) FILTER (WHERE tp_vinculo_territorio IN ('ocorrencia', 'ambos')), "
        f"count(DISTINCT co_documento), count(*) "
        f"FROM read_csv([{files}], delim=';', header=true, all_varchar=true)"
    ).fetchall()[0]
    assert occurrence == distinct_records == published.valid[LATEST] < lines
    # Globbing everything instead counts superseded rows (and residents twice).
    everything = ", ".join(f"'{p}'" for p in globbed if "-" not in p.name.split("_")[0].removeprefix("imunizacao-total-"))
    doubled = duckdb.sql(f"SELECT count(*) FROM read_csv([{everything}], delim=';', header=true, all_varchar=true)").fetchall()[
        0
    ][0]
    assert doubled > lines


# -- indicators ----------------------------------------------------------------------------------

_BANDS = " ".join(f"WHEN age >= {lower} THEN '{label}'" for lower, label in reversed(indicators.AGE_BANDS))


def _independent_counts(paths: list[str]) -> pl.DataFrame:
    files = ", ".join(f"'{p}'" for p in paths)
    query = f"""
        WITH r AS (
            SELECT *, TRY_CAST(nu_idade_paciente AS INTEGER) AS age
            FROM read_csv([{files}], delim=';', header=true, all_varchar=true)
            WHERE st_documento = 'final' AND dt_deletado_rnds IS NULL
        ), banded AS (
            SELECT *, CASE WHEN age IS NULL OR age < 0 OR age >= 200 THEN 'ignorada' {_BANDS} END AS faixa_etaria FROM r
        )
        SELECT 'ocorrencia' AS perspectiva, co_municipio_estabelecimento AS co_municipio, co_vacina, co_dose_vacina,
               faixa_etaria, tp_sexo_paciente, count(*) AS qt_doses
        FROM banded WHERE tp_vinculo_territorio IN ('ocorrencia', 'ambos') GROUP BY ALL
        UNION ALL
        SELECT 'residencia', CASE WHEN length(co_municipio_paciente) = 6 AND co_municipio_paciente <> '999999'
                                  THEN co_municipio_paciente END,
               co_vacina, co_dose_vacina, faixa_etaria, tp_sexo_paciente, count(*)
        FROM banded WHERE tp_vinculo_territorio IN ('residencia', 'ambos') GROUP BY ALL
    """
    return duckdb.sql(query).pl()


def test_the_indicator_tables_match_an_independent_duckdb_count_over_the_published_csvs(published):
    package = published.package(LATEST)
    folder = datapackage.day_folder(LATEST)
    checked = 0
    for resource in package["resources"]:
        about = resource["vacina_d1"]
        if about["scope"]["kind"] != "uf" or about["representation"] != "csv.gz":
            continue
        mine = next(
            r
            for r in package["resources"]
            if r["vacina_d1"]["operation"] == about["operation"] and r["vacina_d1"]["representation"] == "indicadores.parquet"
        )
        table = pl.read_parquet(io.BytesIO(published.get(folder + mine["path"])))
        assert (table["dt_entrada_rnds"] == LATEST).all() and (table["sg_uf"] == about["scope"]["uf"]).all()
        keys = ["perspectiva", "co_municipio", "co_vacina", "co_dose_vacina", "faixa_etaria", "tp_sexo_paciente"]
        expected = _independent_counts([str(published.storage.path_of(folder + resource["path"]))])
        got = table.group_by(keys).agg(pl.col("qt_doses").sum())
        if expected.height == 0:
            assert got.height == 0
            continue
        expected = expected.with_columns(pl.col("qt_doses").cast(pl.Int64))
        assert got.sort(keys, nulls_last=True).equals(expected.select(got.columns).sort(keys, nulls_last=True)), (
            about["uf"] if "uf" in about else about
        )
        # The CSV form holds the same table.
        same = pl.read_csv(
            io.BytesIO(published.get(folder + mine["path"].replace(".parquet", ".csv"))),
            separator=";",
            schema_overrides={c: pl.String for c in table.columns if c not in ("qt_doses", "dt_entrada_rnds")},
            try_parse_dates=True,
        )
        assert same.equals(table)
        checked += 1
    assert checked >= 20


# -- readers --------------------------------------------------------------------------------------


def test_the_readme_reader_options_keep_every_code_and_the_stdlib_csv_reads_utf8_sig(published, tmp_path):
    record = published.catalog.current_file("imunizacao-total-sp", LATEST)
    path = tmp_path / record.file_name
    path.write_bytes(published.get(record.object_key))
    truth = _csv(path.read_bytes())
    frames = {
        "pandas": pl.from_pandas(pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, na_values=[""])),
        "polars": pl.read_csv(path, separator=";", infer_schema=False),
        "duckdb": duckdb.sql(f"SELECT * FROM read_csv('{path}', delim=';', header=true, all_varchar=true)").pl(),
    }
    for name, frame in frames.items():
        assert frame.columns == list(contract.FILE_COLUMNS), name
        for column in CODE_COLUMNS:
            assert frame[column].cast(pl.String).equals(truth[column], null_equal=True), (name, column)
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0][0] == "co_documento" and len(rows) == record.rows + 1
    assert [row[14] for row in rows[1:]] == truth["co_cnes_estabelecimento"].to_list()
    # Without the README's options the trap is real: pandas' defaults lose the leading zeros.
    naive = pd.read_csv(path, sep=";")
    assert naive["co_cnes_estabelecimento"].dtype.kind in "if"


# -- portal ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portal(published):
    settings = PortalSettings(
        home=published.root / "home",
        catalog_url=published.url,
        storage_url=str(published.root / "storage"),
        token_key=w.TOKEN_KEY,
    )
    database = Database(settings.resolved_catalog_url)
    tokens = {}
    with database.session() as session, session.begin():
        ana = crud.create_user(session, cpf=DF_USER, name="Ana Souza", email="ana@saude.df.gov.br")
        bruno = crud.create_user(session, cpf=CITY_USER, name="Bruno Lima", email="bruno@prefeitura.sp.gov.br")
        crud.create_credential(
            session,
            number="3804/2024",
            cnes="0010456",
            uf="DF",
            system_name="SI-PNI DF",
            environment="producao",
            holder=ana,
            operations=[w.DF],
        )
        crud.create_credential(
            session,
            number="3805/2024",
            cnes="2077485",
            uf="SP",
            system_name="Vacivida SP",
            environment="producao",
            holder=bruno,
            operations=[CITY],
        )
        key = settings.resolved_token_key()
        for cpf, user in ((DF_USER, ana), (CITY_USER, bruno)):
            tokens[cpf] = crud.issue_personal_token(session, key, user, name="testes", days=30)[1]
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {}
        for cpf, token in tokens.items():
            response = client.post("/token", data={"grant_type": "client_credentials", "client_id": cpf, "client_secret": token})
            headers[cpf] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        yield client, headers, database
    app.state.services.database.dispose()
    database.dispose()


def test_format_parquet_is_downloaded_and_logged_as_parquet(published, portal):
    client, headers, database = portal
    ana = headers[DF_USER]
    w.accept_terms(client, ana, w.DF)
    record = published.catalog.current_file(w.DF, LATEST)
    parquet = published.catalog.representation(record.id, "parquet")
    response = client.get(f"/files/{record.id}/content?format=parquet", headers=ana)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["etag"] == f'"{parquet.sha256}"'
    assert parquet.file_name in response.headers["content-disposition"]
    assert hashlib.sha256(response.content).hexdigest() == parquet.sha256
    assert pl.read_parquet(io.BytesIO(response.content)).height == record.rows
    resumed = client.get(f"/files/{record.id}/content?format=parquet", headers={**ana, "Range": "bytes=100-"})
    assert resumed.status_code == 206 and resumed.content == response.content[100:]
    entries = client.get(f"/files/{record.id}/downloads", headers=ana).json()["items"]
    assert entries[0]["representation"] == "parquet"
    with database.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT representation, delivered_sha256, file_sha256 FROM download_log ORDER BY id"
        ).fetchall()
    assert rows[0] == ("parquet", parquet.sha256, record.sha256_stored)
    assert download_log.verify(database.engine).ok
    # The CSV download still logs no delivered digest of its own.
    assert client.get(f"/files/{record.id}/content", headers=ana).status_code == 200
    assert download_log.verify(database.engine).ok


def test_month_indicators_are_scoped_and_match_the_published_csvs(published, portal):
    client, headers, _ = portal
    for cpf, operation, ibge6 in ((DF_USER, w.DF, None), (CITY_USER, CITY, "355030")):
        response = client.get(f"/operations/{operation}/indicadores?year=2026&month=11", headers=headers[cpf])
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["days"]) == 30 and body["ibge6"] == ibge6
        by_day = {d["date"]: d for d in body["days"]}
        assert not by_day["2026-11-01"]["published"] and by_day["2026-11-01"]["doses_ocorrencia"] is None
        uf_operation = "imunizacao-total-" + operation.split("-")[2]
        for day in DAYS:
            record = published.catalog.current_file(uf_operation, day)
            path = str(published.storage.path_of(record.object_key))
            extra = f"AND co_municipio_estabelecimento = '{ibge6}'" if ibge6 else ""
            expected = duckdb.sql(
                f"SELECT count(*) FROM read_csv('{path}', delim=';', header=true, all_varchar=true) "
                f"WHERE tp_vinculo_territorio IN ('ocorrencia', 'ambos') AND st_documento = 'final' "
                f"AND dt_deletado_rnds IS NULL {extra}"
            ).fetchall()[0][0]
            assert by_day[day.isoformat()]["published"] and by_day[day.isoformat()]["doses_ocorrencia"] == expected
        assert body["total_ocorrencia"] == sum(d["doses_ocorrencia"] or 0 for d in body["days"]) > 0
        assert body["top_vacinas"] and body["top_vacinas"][0]["doses"] >= body["top_vacinas"][-1]["doses"]
        chart = client.get(body["chart_url"], headers=headers[cpf])
        assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
        svg = chart.text
        assert svg.startswith("<svg") and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
        assert svg.count('class="dia"') == 2 and svg.count('class="dia sem-publicacao"') == 28
        assert f'data-doses="{by_day[LATEST.isoformat()]["doses_ocorrencia"]}"' in svg
    # Outside the caller's scope: 404, for the series and the chart alike.
    for url in (
        "/operations/imunizacao-total-sp/indicadores?year=2026&month=11",
        "/operations/imunizacao-total-sp/indicadores/grafico.svg?year=2026&month=11",
    ):
        assert client.get(url, headers=headers[DF_USER]).status_code == 404
        assert client.get(url, headers=headers[CITY_USER]).status_code == 404
    assert client.get(f"/operations/{w.DF}/indicadores?year=2026&month=13", headers=headers[DF_USER]).status_code == 422
