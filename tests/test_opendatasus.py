"""The OpenDataSUS CSV sources (routine PNI and COVID-19 campaign), end to end on
real files: the real sample rows, re-encoded, re-zipped, damaged and split by day."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipelines import contract, reference
from pipelines import extract as extract_module
from pipelines.extract import NO_ENTRY_DAY, extract, read_counts, split_by_entry_day
from pipelines.sources import SourceError, open_source, opendatasus
from pipelines.sources.opendatasus import CovidCsvSource, PniCsvSource, dose_code
from pipelines.validation import validate
from tests.conftest import FIXTURES

TODAY = dt.date(2026, 11, 22)
ORIGIN = contract.QUARANTINE_ORIGIN_COLUMN
REASONS = contract.QUARANTINE_REASONS_COLUMN
SOURCE_REASONS = "motivos_fonte"
PNI_SAMPLE = FIXTURES / "sample_pni_rotina_rows.csv"
COVID_SAMPLE = FIXTURES / "sample_covid_campanha_rows.csv"
REPO = Path(__file__).resolve().parents[1]


# --- building files from the real samples --------------------------------------------


def pni_rows() -> list[dict[str, str]]:
    with PNI_SAMPLE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";", quoting=csv.QUOTE_NONE))


def covid_header() -> list[str]:
    return COVID_SAMPLE.read_text(encoding="utf-8").splitlines()[0].replace('"', "").split(";")


def covid_rows() -> list[dict[str, str]]:
    with COVID_SAMPLE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def pni_text(rows, *, header_semicolon: bool = False, extra_semicolon: bool = False, newline: str = "\n") -> str:
    header = ";".join(contract.SOURCE_COLUMNS) + (";" if header_semicolon else "")
    lines = [header] + [
        ";".join(row[name] for name in contract.SOURCE_COLUMNS) + (";" if extra_semicolon else "") for row in rows
    ]
    return newline.join(lines) + newline


def covid_text(rows, header: list[str] | None = None) -> str:
    names = header or covid_header()
    keys = covid_header() if header is None else list(rows[0]) if rows else names
    lines = [";".join(f'"{name}"' for name in names)]
    for row in rows:
        lines.append(";".join(f'"{row[key]}"' for key in keys))
    return "\n".join(lines) + "\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def raw_of(source) -> pl.DataFrame:
    batches = list(source.batches())
    return pl.concat(batches, how="diagonal_relaxed") if batches else pl.DataFrame()


def imported(source, tmp_path: Path, **kwargs) -> tuple[pl.DataFrame, pl.DataFrame]:
    out, rejects = tmp_path / "dia.parquet", tmp_path / "dia.rejects.parquet"
    counts = extract(source.batches(), out, rejects, today=TODAY, source=source, **kwargs)
    valid, quarantine = pl.read_parquet(out), pl.read_parquet(rejects)
    assert counts.read == valid.height + quarantine.height
    return valid, quarantine


def by_documento(frame: pl.DataFrame, documento: str) -> dict:
    rows = frame.filter(pl.col("co_documento") == documento)
    assert rows.height == 1, documento
    return rows.row(0, named=True)


def with_entry(rows, entry: str, documento: str) -> dict[str, str]:
    return {**rows, "dt_entrada_rnds": entry, "co_documento": documento}


# --- the real sample rows -------------------------------------------------------------


def test_real_pni_rows_give_what_a_person_reads_off_them(tmp_path):
    source = PniCsvSource(PNI_SAMPLE)
    raw = raw_of(source)
    assert raw[ORIGIN].to_list() == ["sample_pni_rotina_rows.csv:2", "sample_pni_rotina_rows.csv:3"]
    valid, quarantine = imported(source, tmp_path)
    assert quarantine.height == 0 and valid.height == 2
    first = by_documento(valid, "1ca8b58f-ac77-473c-826d-6b874712a41f-i0b0")
    assert first["co_cnes_estabelecimento"] == "0271136"
    assert first["no_fantasia_estalecimento"] == "ESF JACONE"
    assert first["no_municipio_estabelecimento"] == "SAQUAREMA"
    assert first["sg_uf_estabelecimento"] == "RJ"
    assert first["co_municipio_estabelecimento"] == "330550"
    assert first["dt_vacina"] == dt.date(2025, 1, 9)
    assert first["dt_entrada_rnds"] == dt.date(2025, 2, 22)
    assert first["ds_dose_vacina"] == "Tratamento com três doses"
    assert first["co_dose_vacina"] == "13"
    assert first["dt_deletado_rnds"] is None
    second = by_documento(valid, "1b12eab2-e9ab-466d-aff4-55a8ac45ee6b-i0b0")
    assert (second["co_cnes_estabelecimento"], second["no_municipio_estabelecimento"], second["sg_uf_estabelecimento"]) == (
        "7319428",
        "CHAPECO",
        "SC",
    )
    assert second["no_fantasia_estalecimento"] == "UNIDADE DE PRONTO ATENDIMENTO UPA 24H"
    assert second["co_vacina_grupo_atendimento"] == "000210"
    assert second["ds_via_administracao"] == "Bucal"
    assert valid.schema == pl.Schema(contract.SCHEMA)


def test_real_covid_rows_give_what_a_person_reads_off_them(tmp_path):
    source = CovidCsvSource(COVID_SAMPLE)
    valid, quarantine = imported(source, tmp_path)
    assert quarantine.height == 0 and valid.height == 6
    pfizer = by_documento(valid, "1a44aaf2-0dd6-4289-809e-cb8de255e60d-i0b0")
    assert pfizer["co_cnes_estabelecimento"] == "2002914"
    assert pfizer["no_fantasia_estalecimento"] == "UNIDADE SAUDE DA FAMILIA 25 DE AGOSTO"
    assert pfizer["no_razao_social_estabelecimento"] == "PREFEITURA MUNICIPAL DE CRUZEIRO DO SUL"
    assert (pfizer["co_municipio_estabelecimento"], pfizer["sg_uf_estabelecimento"]) == ("120020", "AC")
    assert pfizer["no_uf_estabelecimento"] == "ACRE"
    assert pfizer["ds_dose_vacina"] == "2ª Dose" and pfizer["co_dose_vacina"] == "2"
    assert pfizer["ds_vacina_fabricante"] == "PFIZER" and pfizer["co_vacina_fabricante"] == "28290"
    assert (pfizer["co_vacina"], pfizer["ds_vacina"]) == ("87", "COVID-19 PFIZER - COMIRNATY")
    assert pfizer["dt_vacina"] == dt.date(2022, 3, 24)
    assert pfizer["dt_entrada_rnds"] == dt.date(2022, 3, 24)  # no entry timestamp: the vaccination date
    assert pfizer["st_documento"] == "final"
    assert pfizer["co_paciente"] == "5266947cd5cd2f366f58be8aaad7d380eb9ab63ced4151c666a2ee613e987840"
    assert (pfizer["tp_sexo_paciente"], pfizer["nu_idade_paciente"], pfizer["co_raca_cor_paciente"]) == ("M", "22", "99")
    assert (pfizer["co_vacina_grupo_atendimento"], pfizer["ds_vacina_grupo_atendimento"]) == ("000201", "Pessoas de 18 a 64 anos")
    assert (pfizer["co_vacina_categoria_atendimento"], pfizer["ds_vacina_categoria_atendimento"]) == ("2", "Faixa Etária")
    assert (pfizer["co_lote_vacina"], pfizer["ds_sistema_origem"]) == ("FF8848", "Novo PNI")
    assert (pfizer["co_municipio_paciente"], pfizer["nu_cep_paciente"], pfizer["no_pais_paciente"]) == (
        "120020",
        "69980",
        "BRASIL",
    )
    reforco = by_documento(valid, "c7e305e0-fc4e-4acf-bdcb-56d89a89135a-i0b0")
    assert (reforco["ds_dose_vacina"], reforco["co_dose_vacina"], reforco["dt_vacina"]) == (
        "Reforço",
        "38",
        dt.date(2021, 12, 28),
    )
    assert reforco["nu_cep_paciente"] is None
    coronavac = by_documento(valid, "c7f3fe19-c5cb-4a0b-9073-7106423d3aaf-i0b0")
    # A CNPJ is never a manufacturer code: a name the RNDS table does not know keeps its name, code empty...
    assert (coronavac["ds_vacina_fabricante"], coronavac["co_vacina_fabricante"]) == ("SINOVAC/BUTANTAN", None)
    # ...and PFIZER has one code, whether its row referenced the RNDS code or a CNPJ.
    pfizer_cnpj = by_documento(valid, "c7e064a2-fe65-4d1d-8fd8-d0a07bc21cf3-i0b0")
    assert (pfizer_cnpj["ds_vacina_fabricante"], pfizer_cnpj["co_vacina_fabricante"]) == ("PFIZER", "28290")
    assert set(valid["co_vacina_fabricante"].drop_nulls().to_list()) == {"28290", "30587"}
    assert (coronavac["ds_dose_vacina"], coronavac["co_dose_vacina"], coronavac["dt_vacina"]) == (
        "1ª Dose",
        "1",
        dt.date(2021, 3, 26),
    )
    janssen = by_documento(valid, "4e992b56-494a-43a6-b093-9f3450338bda-i0b0")
    assert (janssen["co_vacina_fabricante"], janssen["co_lote_vacina"]) == ("30587", "1855836")


# --- encodings ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["auto", "latin-1"])
def test_latin1_file_comes_out_as_proper_utf8(tmp_path, encoding):
    path = write(tmp_path / "rotina.csv", pni_text(pni_rows()), "latin-1")
    valid, _ = imported(PniCsvSource(path, encoding=encoding), tmp_path)
    first = by_documento(valid, "1ca8b58f-ac77-473c-826d-6b874712a41f-i0b0")
    assert first["ds_dose_vacina"] == "Tratamento com três doses"
    assert first["ds_local_aplicacao"] == "Sem registro no sistema de informação de origem"
    text = valid.write_csv()
    assert "três" in text and "Ã" not in text


def test_utf8_file_whose_first_blocks_are_ascii_is_read_as_utf8(tmp_path, monkeypatch):
    monkeypatch.setattr(opendatasus, "_READ_BLOCK", 2048)
    ascii_row = {
        **pni_rows()[0],
        "ds_dose_vacina": "Dose",
        "ds_local_aplicacao": "Deltoide",
        "ds_via_administracao": "Intramuscular",
    }
    rows = [{**ascii_row, "co_documento": f"doc-{i:04d}"} for i in range(60)]
    rows.append({**pni_rows()[0], "co_documento": "doc-acentos", "no_fantasia_estalecimento": "POSTO SÃO JOÃO"})
    path = write(tmp_path / "rotina.csv", pni_text(rows), "utf-8")
    ascii_part = path.read_bytes().rsplit(b"\n", 2)[0]
    assert ascii_part.isascii() and len(ascii_part) > 2048 * 10
    raw = raw_of(PniCsvSource(path))
    last = raw.filter(pl.col("co_documento") == "doc-acentos").row(0, named=True)
    assert last["no_fantasia_estalecimento"] == "POSTO SÃO JOÃO"
    assert last["ds_dose_vacina"] == "Tratamento com três doses"
    assert last[ORIGIN] == "rotina.csv:62"


def test_latin1_file_whose_first_blocks_are_ascii_is_read_as_latin1(tmp_path, monkeypatch):
    monkeypatch.setattr(opendatasus, "_READ_BLOCK", 2048)
    ascii_row = {
        **pni_rows()[0],
        "ds_dose_vacina": "Dose",
        "ds_local_aplicacao": "Deltoide",
        "ds_via_administracao": "Intramuscular",
    }
    rows = [{**ascii_row, "co_documento": f"doc-{i:04d}"} for i in range(60)]
    rows.append({**pni_rows()[0], "co_documento": "doc-acentos"})
    path = write(tmp_path / "rotina.csv", pni_text(rows), "latin-1")
    raw = raw_of(PniCsvSource(path))
    assert raw.filter(pl.col("co_documento") == "doc-acentos")["ds_dose_vacina"].to_list() == ["Tratamento com três doses"]


def test_file_mixing_utf8_and_latin1_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(opendatasus, "_READ_BLOCK", 2048)
    utf8_part = pni_text([{**pni_rows()[0], "co_documento": f"doc-{i}"} for i in range(20)]).encode("utf-8")
    latin_line = (pni_text([{**pni_rows()[1], "no_fantasia_estalecimento": "POSTO SÃO JOSÉ"}]).splitlines()[1] + "\n").encode(
        "latin-1"
    )
    path = tmp_path / "misturado.csv"
    path.write_bytes(utf8_part + latin_line)
    with pytest.raises(SourceError, match=r"misturado.csv: linha 22: .*mistura codificações"):
        raw_of(PniCsvSource(path))


def test_latin1_file_read_as_utf8_is_refused_with_its_line(tmp_path):
    path = write(tmp_path / "rotina.csv", pni_text(pni_rows()), "latin-1")
    with pytest.raises(SourceError, match=r"rotina.csv: linha 2: .*não é UTF-8.*--encoding latin-1"):
        raw_of(PniCsvSource(path, encoding="utf-8"))


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + pni_text(pni_rows()).encode("utf-8"))
    raw = raw_of(PniCsvSource(path))
    assert raw["ds_dose_vacina"][0] == "Tratamento com três doses"


# --- the defects of the public files --------------------------------------------------


def test_float_codes_and_lost_zeros_are_repaired_in_the_output(tmp_path):
    damaged = {
        **pni_rows()[0],
        "co_cnes_estabelecimento": "271136.0",
        "co_municipio_estabelecimento": "330550.0",
        "co_municipio_paciente": "330550.0",
        "co_raca_cor_paciente": "1.0",
        "co_tipo_estabelecimento": "2.0",
        "co_vacina_grupo_atendimento": "210.0",
        "nu_cep_paciente": "8997",
        "co_vacina": "1.0",
        "nu_idade_paciente": "26.0",
    }
    path = write(tmp_path / "rotina_2021.csv", pni_text([damaged]), "latin-1")
    raw = raw_of(PniCsvSource(path))
    assert raw["co_cnes_estabelecimento"][0] == "271136.0"  # the source hands the text over as read
    valid, quarantine = imported(PniCsvSource(path), tmp_path)
    assert quarantine.height == 0
    row = valid.row(0, named=True)
    assert row["co_cnes_estabelecimento"] == "0271136"
    assert row["co_municipio_estabelecimento"] == row["co_municipio_paciente"] == "330550"
    assert row["co_raca_cor_paciente"] == "01"
    assert row["co_tipo_estabelecimento"] == "02"
    assert row["co_vacina_grupo_atendimento"] == "000210"
    assert row["nu_cep_paciente"] == "08997"
    assert (row["co_vacina"], row["nu_idade_paciente"]) == ("1", "26")


@pytest.mark.parametrize("header_semicolon", [False, True])
@pytest.mark.parametrize("extra_semicolon", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_trailing_semicolon_with_and_without_header_semicolon(tmp_path, header_semicolon, extra_semicolon, newline):
    rows = pni_rows() + [{**pni_rows()[0], "co_documento": "deletado", "dt_deletado_rnds": "2025-03-01"}]
    text = pni_text(rows, header_semicolon=header_semicolon, extra_semicolon=extra_semicolon, newline=newline)
    raw = raw_of(PniCsvSource(write(tmp_path / "rotina.csv", text)))
    assert raw.height == 3
    assert SOURCE_REASONS not in raw.columns
    assert raw["dt_deletado_rnds"].to_list() == [None, None, "2025-03-01"]  # an empty field is null
    assert raw["no_uf_estabelecimento"].to_list() == ["RIO DE JANEIRO", "SANTA CATARINA", "RIO DE JANEIRO"]
    assert raw[ORIGIN].to_list() == ["rotina.csv:2", "rotina.csv:3", "rotina.csv:4"]


def test_malformed_and_blank_lines_keep_exact_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(opendatasus, "_READ_BLOCK", 1500)
    good = [{**pni_rows()[i % 2], "co_documento": f"doc-{i:03d}"} for i in range(12)]
    lines = pni_text(good).splitlines()
    lines.insert(4, "")  # a blank line (line 5) is not a record
    lines.insert(8, "quebrada;no;meio")  # line 9: 3 fields
    lines.insert(11, "longa;" + lines[2].split(";", 1)[1] + ";a;mais")  # line 12: 58 fields, the surplus kept in the last column
    path = write(tmp_path / "rotina.csv", "\n".join(lines) + "\n")
    valid, quarantine = imported(PniCsvSource(path), tmp_path)
    assert valid.height == 12
    assert quarantine.height == 2
    assert sorted(quarantine[ORIGIN].to_list()) == ["rotina.csv:12", "rotina.csv:9"]
    short = quarantine.filter(pl.col(ORIGIN) == "rotina.csv:9").row(0, named=True)
    assert short["co_documento"] == "quebrada" and short["tp_sexo_paciente"] == "meio" and short["dt_vacina"] is None
    assert "csv_linha_malformada" in short[REASONS]
    long = quarantine.filter(pl.col(ORIGIN) == "rotina.csv:12").row(0, named=True)
    assert long[REASONS][0] == "csv_linha_malformada"
    assert long["dt_deletado_rnds"] == ";a;mais"
    raw = raw_of(PniCsvSource(path))
    origins = dict(zip(raw["co_documento"].to_list(), raw[ORIGIN].to_list()))
    expected = {line.split(";")[0]: f"rotina.csv:{n}" for n, line in enumerate(lines, start=1) if line.startswith("doc-")}
    assert {doc: origins[doc] for doc in expected} == expected


def test_blank_lines_at_the_end_are_not_records(tmp_path):
    raw = raw_of(PniCsvSource(write(tmp_path / "rotina.csv", pni_text(pni_rows()) + "\n\r\n\n")))
    assert raw[ORIGIN].to_list() == ["rotina.csv:2", "rotina.csv:3"]


def test_covid_quoted_value_with_a_line_break_stays_one_record(tmp_path):
    rows = covid_rows()
    rows[1] = {
        **rows[1],
        "estabelecimento_razaoSocial": "PREFEITURA MUNICIPAL\nDE BRASILEIA",
        "estalecimento_noFantasia": 'ESF "TUFIC"',
    }
    text = covid_text(rows).replace('"ESF "TUFIC""', '"ESF ""TUFIC"""')
    raw = raw_of(CovidCsvSource(write(tmp_path / "covid.csv", text)))
    assert raw.height == 6
    assert raw["no_razao_social_estabelecimento"][1] == "PREFEITURA MUNICIPAL\nDE BRASILEIA"
    assert raw["no_fantasia_estalecimento"][1] == 'ESF "TUFIC"'
    assert raw[ORIGIN].to_list() == [f"covid.csv:{n}" for n in (2, 3, 5, 6, 7, 8)]


# --- zips and directories ---------------------------------------------------------------


def test_zip_with_several_members_and_a_directory_of_them(tmp_path):
    rows = [{**pni_rows()[i % 2], "co_documento": f"doc-{i}"} for i in range(6)]
    archive = tmp_path / "entrada" / "vacinacao_jan_2025.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("parte1.csv", pni_text(rows[:2]).encode("latin-1"))
        zf.writestr("dados/parte2.csv", pni_text(rows[2:4]).encode("utf-8"))
        zf.writestr("LEIAME.txt", "não é dado")
        zf.writestr("__MACOSX/._parte1.csv", b"\x00\x05\x16\x07")
    raw = raw_of(PniCsvSource(archive))
    assert raw["co_documento"].to_list() == ["doc-2", "doc-3", "doc-0", "doc-1"]
    assert raw[ORIGIN].to_list() == [
        "vacinacao_jan_2025.zip/dados/parte2.csv:2",
        "vacinacao_jan_2025.zip/dados/parte2.csv:3",
        "vacinacao_jan_2025.zip/parte1.csv:2",
        "vacinacao_jan_2025.zip/parte1.csv:3",
    ]
    assert set(raw["ds_dose_vacina"]) == {"Tratamento com três doses", "Profilaxia com 1 frasco-ampola/ampola"}
    write(tmp_path / "entrada" / "solto.csv", pni_text(rows[4:]))
    write(tmp_path / "entrada" / "notas.txt", "ignorado")
    raw = raw_of(PniCsvSource(tmp_path / "entrada", batch_size=2))
    assert sorted(raw["co_documento"].to_list()) == [f"doc-{i}" for i in range(6)]
    assert "solto.csv:3" in raw[ORIGIN].to_list()


def test_batches_respect_batch_size_across_members(tmp_path):
    rows = [{**pni_rows()[i % 2], "co_documento": f"doc-{i}"} for i in range(7)]
    write(tmp_path / "a.csv", pni_text(rows[:3]))
    write(tmp_path / "b.csv", pni_text(rows[3:]))
    sizes = [batch.height for batch in PniCsvSource(tmp_path, batch_size=2).batches()]
    assert sizes == [2, 2, 2, 1]


def _zip_of_many_rows(path: Path, n: int) -> Path:
    rng = random.Random(7)
    rows = [{**pni_rows()[i % 2], "co_documento": f"doc-{i:06d}-{rng.random():.12f}"} for i in range(n)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("vacinacao.csv", pni_text(rows))
    return path


def test_truncated_zip_is_one_clear_error_and_no_output(tmp_path):
    archive = _zip_of_many_rows(tmp_path / "mes.zip", 3000)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    out_dir = tmp_path / "saida"
    with pytest.raises(SourceError, match=r"mes.zip: zip truncado ou corrompido"):
        extract(PniCsvSource(archive).batches(), out_dir / "d.parquet", out_dir / "d.rejects.parquet", today=TODAY)
    assert list(out_dir.iterdir()) == []


def test_zip_corrupt_midway_fails_after_batches_were_read_and_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(opendatasus, "_READ_BLOCK", 64 << 10)
    archive = _zip_of_many_rows(tmp_path / "mes.zip", 3000)
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # the central directory survives, the deflate stream does not
    archive.write_bytes(bytes(data))
    source = PniCsvSource(archive, batch_size=100)
    batches = source.batches()
    assert next(batches).height == 100  # streamed: records arrive before the damage is reached
    with pytest.raises(SourceError, match=r"mes.zip/vacinacao.csv: zip truncado ou corrompido"):
        for _ in batches:
            pass
    out_dir = tmp_path / "saida"
    with pytest.raises(SourceError):
        extract(source.batches(), out_dir / "d.parquet", out_dir / "d.rejects.parquet", today=TODAY)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(SourceError):
        split_by_entry_day(source, tmp_path / "dias", today=TODAY)
    assert list((tmp_path / "dias").iterdir()) == []


# --- what is refused ----------------------------------------------------------------------


def _pni_header_without(name: str) -> str:
    return pni_text(pni_rows()).replace(f"{name};", "", 1)


REFUSED = {
    "faltando": (lambda: _pni_header_without("co_vacina"), r"cabeçalho fora do layout .*: faltam 'co_vacina'$"),
    "sobrando": (
        lambda: pni_text(pni_rows()).replace("dt_deletado_rnds", "dt_deletado_rnds;co_extra", 1),
        r"colunas desconhecidas 'co_extra'",
    ),
    "renomeada": (
        lambda: pni_text(pni_rows()).replace("no_fantasia_estalecimento", "no_fantasia_estabelecimento", 1),
        r"faltam 'no_fantasia_estalecimento'; colunas desconhecidas 'no_fantasia_estabelecimento'",
    ),
    "repetida": (lambda: pni_text(pni_rows()).replace("co_vacina;", "co_documento;", 1), r"colunas repetidas 'co_documento'"),
    "virgula": (lambda: pni_text(pni_rows()).replace(";", ","), r"separado por vírgulas; .* ponto e vírgula"),
    "covid": (lambda: COVID_SAMPLE.read_text(encoding="utf-8"), r"campanha COVID-19 .*use --format covid-csv"),
    "vazio": (lambda: "", r"está vazio"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_header_not_of_this_layout_is_refused_with_one_line(tmp_path, case):
    make, message = REFUSED[case]
    path = write(tmp_path / f"{case}.csv", make())
    with pytest.raises(SourceError, match=message) as caught:
        raw_of(PniCsvSource(path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 64, r"não é um CSV de texto \(tem bytes nulos"),
        (pni_text(pni_rows()).encode("utf-16"), r"está em UTF-16"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(4096).replace(b"\x00", b"\x01"), r"cabeçalho fora do layout"),
        (b"\x1f\x8b\x08\x00" + bytes(100), r"comprimido em gzip"),
    ],
    ids=["binario", "utf16", "png-sem-nulos", "gzip"],
)
def test_files_that_are_not_text_csv_are_refused(tmp_path, content, message):
    path = tmp_path / "entrada.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as caught:
        raw_of(PniCsvSource(path))
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_pni_file_given_as_covid_is_refused(tmp_path):
    with pytest.raises(SourceError, match=r"CSV de rotina do PNI .*use --format pni-csv"):
        raw_of(CovidCsvSource(PNI_SAMPLE))


def test_unknown_encoding_and_missing_input_are_refused(tmp_path):
    with pytest.raises(SourceError, match="codificação não suportada"):
        PniCsvSource(PNI_SAMPLE, encoding="utf-16")
    with pytest.raises(SourceError, match="não encontrado"):
        open_source("pni-csv", str(tmp_path / "nada.csv"))


# --- COVID-19 campaign specifics -------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [str.lower, str.upper, lambda name: name],
    ids=["minusculas", "maiusculas", "original"],
)
def test_covid_header_case_variants_give_the_same_records(tmp_path, variant):
    header = [variant(name) for name in covid_header()]
    path = write(tmp_path / "covid.csv", covid_text(covid_rows(), header))
    assert raw_of(CovidCsvSource(path)).drop(ORIGIN).equals(raw_of(CovidCsvSource(COVID_SAMPLE)).drop(ORIGIN))


def test_covid_fantasia_spelled_right_is_accepted(tmp_path):
    header = [name.replace("estalecimento_noFantasia", "estabelecimento_noFantasia") for name in covid_header()]
    path = write(tmp_path / "covid.csv", covid_text(covid_rows(), header))
    raw = raw_of(CovidCsvSource(path))
    assert raw["no_fantasia_estalecimento"][0] == "UNIDADE SAUDE DA FAMILIA 25 DE AGOSTO"


def test_covid_timestamp_dates_unknown_dose_and_explicit_entry_date(tmp_path):
    rows = covid_rows()
    rows[0] = {**rows[0], "vacina_dataAplicacao": "2022-03-24T00:00:00.000Z"}
    rows[1] = {**rows[1], "vacina_descricao_dose": "Dose Experimental"}
    path = write(tmp_path / "covid.csv", covid_text(rows))
    valid, quarantine = imported(CovidCsvSource(path), tmp_path)
    pfizer = by_documento(valid, rows[0]["document_id"])
    assert pfizer["dt_vacina"] == dt.date(2022, 3, 24) and pfizer["dt_entrada_rnds"] == dt.date(2022, 3, 24)
    unknown = by_documento(quarantine, rows[1]["document_id"])
    assert unknown["ds_dose_vacina"] == "Dose Experimental" and unknown["co_dose_vacina"] is None
    assert unknown[REASONS] == ["campo_obrigatorio_ausente:co_dose_vacina"]
    assert unknown[ORIGIN] == "covid.csv:3"

    entry = dt.date(2021, 12, 31)
    valid, quarantine = imported(CovidCsvSource(path, entry_date=entry), tmp_path / "com-entrada")
    assert set(valid["dt_entrada_rnds"]) == {entry}
    late = by_documento(quarantine, rows[0]["document_id"])  # vaccinated in 2022, after the entry date given
    assert late[REASONS] == ["dt_vacina_posterior_entrada"]


def test_covid_2021_release_with_import_timestamp_uses_it_as_entry(tmp_path):
    header = [name.lower() for name in covid_header()] + ["data_importacao_rnds", "id_sistema_origem"]
    rows = [{**row, "data_importacao_rnds": "2022-04-02T10:11:12.000Z", "id_sistema_origem": "15563"} for row in covid_rows()]
    rows[2]["data_importacao_rnds"] = ""
    path = write(tmp_path / "covid_2021.csv", covid_text(rows, header))
    raw = raw_of(CovidCsvSource(path))
    assert raw["dt_entrada_rnds"].to_list()[:3] == ["2022-04-02T10:11:12.000Z", "2022-04-02T10:11:12.000Z", "2021-08-11"]
    assert set(raw["co_sistema_origem"]) == {"15563"}


def test_covid_header_missing_a_needed_column_is_refused(tmp_path):
    header = [name for name in covid_header() if name != "vacina_descricao_dose"]
    rows = [{k: v for k, v in row.items() if k != "vacina_descricao_dose"} for row in covid_rows()]
    path = write(tmp_path / "covid.csv", covid_text(rows, header))
    with pytest.raises(SourceError, match=r"fora do layout do CSV da campanha COVID-19: faltam 'vacina_descricao_dose'"):
        raw_of(CovidCsvSource(path))


# --- a month split into its entry days ----------------------------------------------------------


def _multi_day_file(path: Path) -> tuple[Path, dict[str, str]]:
    """Rows over three entry days (one with a time), one unreadable entry date, one
    duplicate and one invalid record; returns the path and each document's expected day."""
    base = pni_rows()
    entries = {
        "2025-01-26": "2025-01-26",
        "2025-02-22": "2025-02-22",
        "2025-02-22 13:45:00": "2025-02-22",
        "2025-01-27": "2025-01-27",
        " 2025-01-26 ": "2025-01-26",
        "26/01/2025": "2025-01-26",
        "ontem": NO_ENTRY_DAY,
    }
    rows, expected = [], {}
    for i, (entry, day) in enumerate(entries.items()):
        documento = f"doc-{i}"
        rows.append({**base[i % 2], "co_documento": documento, "dt_entrada_rnds": entry, "dt_vacina": "2025-01-26"})
        expected[documento] = day
    rows.append({**rows[0]})  # doc-0 again: a duplicate in its day
    rows.append({**base[0], "co_documento": "doc-sem-cnes", "co_cnes_estabelecimento": "", "dt_entrada_rnds": "2025-01-27"})
    expected["doc-sem-cnes"] = "2025-01-27"
    return write(path, pni_text(rows), "latin-1"), expected


@pytest.mark.parametrize("max_open_days", [64, 1])
def test_split_by_entry_day_puts_each_record_in_its_day(tmp_path, monkeypatch, max_open_days):
    monkeypatch.setattr(extract_module, "_MAX_OPEN_DAYS", max_open_days)
    path, expected = _multi_day_file(tmp_path / "mes.csv")
    source = PniCsvSource(path, batch_size=3)
    counts = split_by_entry_day(source, tmp_path / "dias", today=TODAY)
    assert set(counts) == {dt.date(2025, 1, 26), dt.date(2025, 1, 27), dt.date(2025, 2, 22), None}
    files = sorted(p.name for p in (tmp_path / "dias").iterdir())
    assert files == [
        "2025-01-26.parquet",
        "2025-01-26.rejects.parquet",
        "2025-01-27.parquet",
        "2025-01-27.rejects.parquet",
        "2025-02-22.parquet",
        "2025-02-22.rejects.parquet",
        "sem-data.rejects.parquet",
    ]
    total_read = sum(c.read for c in counts.values())
    assert total_read == 9 == sum(c.valid + c.quarantined for c in counts.values())
    seen = {}
    for day, day_counts in counts.items():
        name = day.isoformat() if day else NO_ENTRY_DAY
        quarantine = pl.read_parquet(tmp_path / "dias" / f"{name}.rejects.parquet")
        valid = pl.read_parquet(tmp_path / "dias" / f"{name}.parquet") if day else pl.DataFrame(schema=contract.SCHEMA)
        assert (valid.height, quarantine.height) == (day_counts.valid, day_counts.quarantined)
        assert set(valid["dt_entrada_rnds"]) <= {day}
        assert read_counts(tmp_path / "dias" / f"{name}.rejects.parquet") == dataclasses.replace(day_counts, seconds=0.0)
        for documento in [*valid["co_documento"], *quarantine["co_documento"]]:
            seen.setdefault(documento, set()).add(name)
    assert {doc: days for doc, days in seen.items()} == {doc: {day} for doc, day in expected.items()}
    jan26 = pl.read_parquet(tmp_path / "dias" / "2025-01-26.rejects.parquet")
    assert jan26[REASONS].to_list() == [["co_documento_duplicado"]]
    sem_data = pl.read_parquet(tmp_path / "dias" / "sem-data.rejects.parquet").row(0, named=True)
    assert (sem_data["co_documento"], sem_data["dt_entrada_rnds"], sem_data[ORIGIN]) == ("doc-6", "ontem", "mes.csv:8")


def test_each_split_day_is_what_extracting_that_day_gives(tmp_path):
    path, _ = _multi_day_file(tmp_path / "mes.csv")
    source = PniCsvSource(path, batch_size=4)
    split_by_entry_day(source, tmp_path / "dias", today=TODAY)
    for day in ("2025-01-26", "2025-01-27", "2025-02-22"):
        out, rejects = tmp_path / "um" / f"{day}.parquet", tmp_path / "um" / f"{day}.rejects.parquet"
        extract(source.batches(), out, rejects, today=TODAY, day=dt.date.fromisoformat(day), source=source)
        assert pl.read_parquet(tmp_path / "dias" / f"{day}.parquet").equals(pl.read_parquet(out))
        alone = pl.read_parquet(rejects).filter(pl.col("dt_entrada_rnds") != "ontem")  # extract(day) takes undated records too
        assert pl.read_parquet(tmp_path / "dias" / f"{day}.rejects.parquet").sort(ORIGIN).equals(alone.sort(ORIGIN))


# --- the command line ---------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("VACINA_D1_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_import_end_to_end(tmp_path):
    path, _ = _multi_day_file(tmp_path / "mes.csv")
    archive = tmp_path / "mes.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "mes.csv")
    done = run_cli(
        "import",
        "--format",
        "pni-csv",
        "--input",
        str(archive),
        "--out",
        "d.parquet",
        "--rejects",
        "q.parquet",
        "--encoding",
        "latin-1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip())
    assert (line["read"], line["valid"], line["quarantined"]) == (9, 6, 3)
    assert pl.read_parquet(tmp_path / "d.parquet").height == 6

    done = run_cli("import", "--format", "pni-csv", "--input", str(archive), "--split-days", "dias", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip())
    assert (line["read"], line["valid"], line["quarantined"]) == (9, 6, 3)
    assert line["days"]["2025-02-22"] == {"read": 2, "valid": 2, "quarantined": 0}
    assert line["days"]["sem-data"] == {"read": 1, "valid": 0, "quarantined": 1}
    assert (tmp_path / "dias" / "2025-01-27.parquet").exists()

    done = run_cli(
        "import",
        "--format",
        "covid-csv",
        "--input",
        str(COVID_SAMPLE),
        "--out",
        "c.parquet",
        "--date",
        "2021-08-11",
        cwd=tmp_path,
    )
    line = json.loads(done.stdout.strip())
    assert (line["read"], line["valid"], line["outside_day"]) == (1, 1, 5)
    assert (tmp_path / "c.rejects.parquet").exists()


def test_cli_bad_input_is_one_stderr_line_and_no_output(tmp_path):
    archive = _zip_of_many_rows(tmp_path / "mes.zip", 2000)
    archive.write_bytes(archive.read_bytes()[:-100])
    cases = [
        (["--format", "pni-csv", "--input", str(archive), "--out", "d.parquet"], "zip truncado ou corrompido"),
        (["--format", "pni-csv", "--input", str(COVID_SAMPLE), "--out", "d.parquet"], "use --format covid-csv"),
        (["--format", "pni-csv", "--input", "nada.csv", "--out", "d.parquet"], "não encontrado"),
        (["--format", "pni-csv", "--input", str(PNI_SAMPLE), "--out", "d.parquet", "--split-days", "x"], "--split-days"),
        (["--format", "pni-csv", "--input", str(PNI_SAMPLE), "--out", "d.parquet", "--entry-date", "2025-01-01"], "--entry-date"),
        (["--format", "pni-csv", "--input", str(PNI_SAMPLE)], "--out"),
    ]
    for args, message in cases:
        done = run_cli("import", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("vacina-d1: erro: ") and message in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mes.zip"]


# --- properties ---------------------------------------------------------------------------------

# Text a person writes in these files: Portuguese letters, digits, punctuation (no separator, quote or line break).
TEXT = st.text(
    alphabet=st.sampled_from(
        list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -/.,()ºª°ÁÀÂÃÉÊÍÓÔÕÚÜÇáàâãéêíóôõúüç")
    ),
    max_size=30,
).map(str.strip)
TEXT_COLUMNS = (
    "no_razao_social_estabelecimento",
    "no_fantasia_estalecimento",
    "ds_vacina",
    "ds_dose_vacina",
    "no_municipio_paciente",
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.tuples(*[TEXT] * len(TEXT_COLUMNS)), min_size=1, max_size=4),
    encoding=st.sampled_from(["utf-8", "latin-1"]),
)
def test_any_row_written_in_either_encoding_round_trips(values, encoding):
    rows = [{**pni_rows()[i % 2], **dict(zip(TEXT_COLUMNS, texts)), "co_documento": f"doc-{i}"} for i, texts in enumerate(values)]
    data = pni_text(rows).encode(encoding)
    if encoding == "latin-1" and not data.isascii():
        # Latin-1 bytes that also happen to be valid UTF-8 cannot be told apart; every other file must be.
        try:
            data.decode("utf-8")
            assume(False)
        except UnicodeDecodeError:
            pass
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "linhas.csv"
        path.write_bytes(data)
        raw = raw_of(PniCsvSource(path))
    for name in TEXT_COLUMNS:
        assert raw[name].to_list() == [row[name] or None for row in rows]


MUNICIPIOS = sorted(reference.municipios())


@settings(max_examples=60, deadline=None)
@given(
    cnes=st.integers(1, 9_999_999),
    municipio=st.sampled_from(MUNICIPIOS),
    raca=st.sampled_from(["01", "02", "03", "04", "05", "99"]),
    grupo=st.integers(1, 999_999),
    float_defect=st.booleans(),
)
def test_any_float_defect_code_maps_to_the_zero_padded_code(cnes, municipio, raca, grupo, float_defect):
    def damaged(code: str) -> str:
        return f"{int(code)}.0" if float_defect else str(int(code))

    row = {
        **pni_rows()[0],
        "co_cnes_estabelecimento": damaged(f"{cnes:07d}"),
        "co_municipio_estabelecimento": damaged(municipio),
        "sg_uf_estabelecimento": reference.municipios()[municipio].uf,
        "co_municipio_paciente": damaged(municipio),
        "sg_uf_paciente": reference.municipios()[municipio].uf,
        "co_raca_cor_paciente": damaged(raca),
        "co_vacina_grupo_atendimento": damaged(f"{grupo:06d}"),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "defeitos.csv", pni_text([row]), "latin-1")
        result = validate(raw_of(PniCsvSource(path)), today=TODAY)
    assert result.quarantine.height == 0, result.quarantine[REASONS].to_list()
    out = result.valid.row(0, named=True)
    assert out["co_cnes_estabelecimento"] == f"{cnes:07d}"
    assert out["co_municipio_estabelecimento"] == out["co_municipio_paciente"] == municipio
    assert out["co_raca_cor_paciente"] == raca
    assert out["co_vacina_grupo_atendimento"] == f"{grupo:06d}"


@settings(max_examples=40, deadline=None)
@given(flips=st.lists(st.booleans(), min_size=400, max_size=400))
def test_any_covid_header_case_reads_the_same(flips):
    names = covid_header()
    bits = iter(flips * 4)
    header = ["".join(ch.upper() if next(bits) else ch.lower() for ch in name) for name in names]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "covid.csv", covid_text(covid_rows(), header))
        raw = raw_of(CovidCsvSource(path))
    assert raw.drop(ORIGIN).equals(raw_of(CovidCsvSource(COVID_SAMPLE)).drop(ORIGIN))


@settings(max_examples=100, deadline=None)
@given(
    item=st.sampled_from(sorted(reference.codesystem("BRDose").items())),
    case=st.sampled_from([str.upper, str.lower, str.title, lambda s: s]),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_any_brdose_description_maps_to_its_code(item, case, pad):
    code, display = item
    spaced = display.replace(" ", " " + pad)
    assert dose_code(pad + case(spaced) + pad) == code
