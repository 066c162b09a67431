"""The synthetic source: determinism, realism, deliberate damage and the generate command."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import polars as pl
import pytest

from pipelines import contract, dates, extract, reference
from pipelines.cnes import CnesTable
from pipelines.sources import open_source
from pipelines.sources.synthetic import (
    DEFECT_KINDS,
    INVALID_KINDS,
    NOT_RECORDED_NAME,
    SyntheticSource,
    invalid_records,
    synthetic_establishments,
)
from pipelines.validation import validate
from tests.day_factory import sample_rows

DAY = dt.date(2026, 3, 10)
TODAY = DAY + dt.timedelta(days=1)
SEED = 7
RECORDS = 200_000
REASONS = contract.QUARANTINE_REASONS_COLUMN

UUID_DOC = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-i0b0$"

# What validation must say about each kind of deliberate corruption (written here,
# from validation's reason codes, not taken from the generator).
EXPECTED_REASON = {
    "municipio_estabelecimento_inexistente": "municipio_estabelecimento_invalido",
    "municipio_estabelecimento_desconhecido": "municipio_estabelecimento_desconhecido",
    "uf_estabelecimento_trocada": "uf_estabelecimento_inconsistente",
    "municipio_paciente_inexistente": "municipio_paciente_invalido",
    "uf_paciente_trocada": "uf_paciente_inconsistente",
    "uf_paciente_inexistente": "uf_paciente_invalida",
    "cnes_malformado": "cnes_invalido",
    "dt_vacina_ilegivel": "dt_vacina_invalida",
    "dt_vacina_futura": "dt_vacina_posterior_entrada",
    "dt_vacina_antiga": "dt_vacina_implausivel",
    "st_documento_desconhecido": "st_documento_invalido",
    "dt_deletado_ilegivel": "dt_deletado_rnds_invalida",
}


def day_frame(day=DAY, records=RECORDS, seed=SEED, **options) -> pl.DataFrame:
    frames = list(SyntheticSource(day, records, seed, **options).batches())
    return pl.concat(frames) if frames else contract.empty_raw_frame()


def public_name(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)).upper()


@pytest.fixture(scope="module")
def raw() -> pl.DataFrame:
    return day_frame()


@pytest.fixture(scope="module")
def checked(raw):
    result = validate(raw, today=TODAY)
    assert result.valid.height + result.quarantine.height == raw.height
    return result


@pytest.fixture(scope="module")
def valid(checked) -> pl.DataFrame:
    return checked.valid


# ---------------------------------------------------------------- shape and determinism


def test_batches_have_the_raw_layout_and_the_day(raw):
    assert raw.height == RECORDS
    assert raw.schema == pl.Schema(contract.RAW_SCHEMA)
    assert raw["dt_entrada_rnds"].unique().to_list() == [DAY.isoformat()]


def test_same_arguments_same_records_whatever_the_batch_size():
    first = day_frame(records=30_000)
    again = list(SyntheticSource(DAY, 30_000, SEED, batch_size=7_001).batches())
    assert [f.height for f in again] == [7_001] * 4 + [30_000 - 4 * 7_001]
    assert pl.concat(again).equals(first)
    assert day_frame(records=30_000).equals(first)


def test_a_different_seed_or_day_gives_different_records():
    base = day_frame(records=20_000)
    for other in (day_frame(records=20_000, seed=SEED + 1), day_frame(day=DAY - dt.timedelta(days=1), records=20_000)):
        assert not other.equals(base)
        assert not set(other["co_documento"]) & set(base["co_documento"])
        assert not set(other["co_paciente"]) & set(base["co_paciente"])


def test_co_documento_strictly_ascending_across_all_batches_invalid_included():
    tracker = extract._OrderTracker()
    ids = []
    for batch in SyntheticSource(DAY, 40_000, SEED, batch_size=3_000).batches():
        tracker.see(batch["co_documento"])
        ids.append(batch["co_documento"])
    assert tracker.strictly_ascending
    everything = pl.concat(ids)
    assert everything.is_sorted() and everything.n_unique() == everything.len() == 40_000
    assert everything.str.contains(UUID_DOC).all()


def test_zero_records_is_an_empty_day():
    assert list(SyntheticSource(DAY, 0).batches()) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"records": -1}, {"records": 1.5}, {"records": 10, "batch_size": 0}, {"records": 10, "day": "2026-03-10"}],
)
def test_bad_constructor_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        SyntheticSource(**{"day": DAY, **kwargs})


def test_open_source_builds_the_synthetic_source():
    source = open_source("synthetic", day=DAY, records=10, seed=1)
    assert isinstance(source, SyntheticSource) and source.kind == "synthetic"
    assert sum(b.height for b in source.batches()) == 10


# ---------------------------------------------------------------- realism


def test_all_ufs_and_many_municipalities_occur(valid):
    ufs = set(reference.ufs())
    assert set(valid["sg_uf_estabelecimento"]) == ufs
    assert set(valid["sg_uf_paciente"]) == ufs | {contract.UNKNOWN_UF}
    assert valid["co_municipio_estabelecimento"].n_unique() > 4_000
    assert set(valid["co_municipio_paciente"]) <= set(reference.municipios()) | {contract.UNKNOWN_MUNICIPIO}


def test_every_municipality_can_be_drawn(valid):
    # Residence follows the population, so at 200 thousand records the smallest
    # towns appear by chance only: every town has people and establishments.
    assert all(reference.populacao()[code] > 0 for code in reference.municipios())
    assert set(synthetic_establishments(SEED)["ibge6"]) == set(reference.municipios())
    assert valid["co_municipio_paciente"].n_unique() > 5_000


def test_residence_follows_the_population(valid):
    population = reference.populacao()
    total = sum(population.values())
    known = valid.filter(pl.col("co_municipio_paciente") != contract.UNKNOWN_MUNICIPIO)
    counts = dict(known["co_municipio_paciente"].value_counts().iter_rows())
    expected_sp = population["355030"] / total
    assert abs(counts["355030"] / known.height - expected_sp) < 0.15 * expected_sp
    smallest = min(population, key=population.get)
    assert counts["355030"] > 100 * max(counts.get(smallest, 0), 1)
    uf_of = {code: m.uf for code, m in reference.municipios().items()}
    uf_population: dict[str, int] = {}
    for code, people in population.items():
        uf_population[uf_of[code]] = uf_population.get(uf_of[code], 0) + people
    uf_counts = dict(known["sg_uf_paciente"].value_counts().iter_rows())
    for uf, people in uf_population.items():
        share = people / total
        assert abs(uf_counts[uf] / known.height - share) < 0.002 + 0.1 * share, uf


def test_vaccinated_outside_municipality_and_uf_and_unknown_residence(valid):
    unknown = valid["co_municipio_paciente"] == contract.UNKNOWN_MUNICIPIO
    assert 0.003 < unknown.mean() < 0.008
    assert (valid.filter(unknown)["sg_uf_paciente"] == contract.UNKNOWN_UF).all()
    known = valid.filter(~unknown)
    outside_municipality = (known["co_municipio_paciente"] != known["co_municipio_estabelecimento"]).mean()
    outside_uf = (known["sg_uf_paciente"] != known["sg_uf_estabelecimento"]).mean()
    assert 0.08 < outside_municipality < 0.12
    assert 0.01 < outside_uf < 0.03
    # Brasília (a one-municipality UF): its residents away from home are in a
    # neighbouring UF (GO, MG) or a popular destination.
    df = known.filter((pl.col("sg_uf_paciente") == "DF") & (pl.col("sg_uf_estabelecimento") != "DF"))
    assert df.height > 50
    assert set(df["sg_uf_estabelecimento"]) <= {"GO", "MG", "SP", "RJ", "SC", "BA", "PE", "CE"}
    assert {"GO", "MG"} <= set(df["sg_uf_estabelecimento"])


def test_late_records_corrections_errors_and_deletions(valid):
    late = valid["dt_vacina"] < DAY - dt.timedelta(days=30)
    assert 0.04 < late.mean() < 0.15
    assert valid["dt_vacina"].min() >= DAY - dt.timedelta(days=3 * 366)
    assert (valid["dt_vacina"] <= DAY).all()
    assert 0.4 < (valid["dt_vacina"] == DAY).mean() < 0.7

    corrections = valid["co_troca_documento"].drop_nulls()
    assert 0.006 < corrections.len() / valid.height < 0.014
    assert corrections.str.contains(UUID_DOC).all()
    assert not set(corrections) & set(valid["co_documento"])

    error = valid["st_documento"] == "entered-in-error"
    assert 0.0015 < error.mean() < 0.005
    assert set(valid["st_documento"]) == {"final", "entered-in-error"}
    deleted = valid["dt_deletado_rnds"].drop_nulls()
    assert 0.001 < deleted.len() / valid.height < 0.0035
    assert (deleted == DAY).all()


def test_corrections_name_documents_of_earlier_days():
    today = day_frame(records=20_000)
    yesterday = day_frame(day=DAY - dt.timedelta(days=1), records=20_000)
    named = today["co_troca_documento"].drop_nulls()
    found = named.is_in(yesterday["co_documento"].implode()).sum()
    assert named.len() > 100
    assert found > 0.3 * named.len()


def test_codes_and_names_are_real(valid):
    pairs = {
        ("co_vacina", "ds_vacina"): reference.codesystem("BRImunobiologico"),
        ("co_dose_vacina", "ds_dose_vacina"): reference.codesystem("BRDose"),
        ("co_local_aplicacao", "ds_local_aplicacao"): {**reference.codesystem("BRLocalAplicacao"), "0": NOT_RECORDED_NAME},
        ("co_via_administracao", "ds_via_administracao"): {**reference.codesystem("BRViaAdministracao"), "0": NOT_RECORDED_NAME},
        ("co_estrategia_vacinacao", "ds_estrategia_vacinacao"): reference.codesystem("BREstrategiaVacinacao"),
        ("co_vacina_grupo_atendimento", "ds_vacina_grupo_atendimento"): reference.codesystem("BRGrupoAtendimento"),
        ("co_raca_cor_paciente", "no_raca_cor_paciente"): {
            "01": "BRANCA", "02": "PRETA", "03": "PARDA", "04": "AMARELA", "05": "INDIGENA", "99": "SEM INFORMACAO",
        },
    }  # fmt: skip
    for (code, name), system in pairs.items():
        seen = valid.select(code, name).drop_nulls().unique()
        assert seen.height > 1, code
        for value, label in seen.iter_rows():
            assert system.get(value) == label, (code, value, label)
    assert valid["co_vacina"].n_unique() >= 25
    assert valid["co_vacina_grupo_atendimento"].drop_nulls().str.contains(r"^\d{6}$").all()
    assert set(valid["tp_sexo_paciente"]) <= {"F", "M", "I"}
    assert valid["nu_cep_paciente"].drop_nulls().str.contains(r"^\d{5}$").all()
    assert valid["co_paciente"].str.contains(r"^[0-9a-f]{64}$").all()
    assert valid["co_lote_vacina"].is_not_null().all() and valid["ds_vacina_fabricante"].is_not_null().all()
    assert ("18602", "ESUS APS - NACIONAL (OFFLINE)") in set(
        valid.select("co_sistema_origem", "ds_sistema_origem").unique().iter_rows()
    )
    assert {("02", "CENTRO DE SAUDE/UNIDADE BASICA"), ("73", "PRONTO ATENDIMENTO")} <= set(
        valid.select("co_tipo_estabelecimento", "ds_tipo_estabelecimento").unique().iter_rows()
    )
    assert ("1", "ADMINISTRACAO PUBLICA") in set(
        valid.select("co_natureza_estabelecimento", "ds_natureza_estabelecimento").unique().iter_rows()
    )


def test_place_names_as_the_public_files_write_them(valid):
    munis = reference.municipios()
    for code_col, name_col, uf_col, uf_name_col in (
        ("co_municipio_paciente", "no_municipio_paciente", "sg_uf_paciente", "no_uf_paciente"),
        ("co_municipio_estabelecimento", "no_municipio_estabelecimento", "sg_uf_estabelecimento", "no_uf_estabelecimento"),
    ):
        seen = (
            valid.filter(pl.col(code_col) != contract.UNKNOWN_MUNICIPIO).select(code_col, name_col, uf_col, uf_name_col).unique()
        )
        for code, name, uf, uf_name in seen.iter_rows():
            assert name == public_name(munis[code].nome)
            assert name.isascii() and name == name.upper()
            assert uf == munis[code].uf
            assert uf_name == public_name(reference.uf_nome_maiusculo(uf))
            assert uf_name.isascii() and uf_name == uf_name.upper()
    assert {"SAO PAULO", "BRASILIA", "GOIANIA"} <= set(valid["no_municipio_estabelecimento"])
    assert {"SAO PAULO", "PARA", "CEARA", "RIO DE JANEIRO"} <= set(valid["no_uf_estabelecimento"])


def test_not_recorded_site_and_route_and_residents_abroad_as_real_rows_have_them(valid):
    # The real row of the public file: co_local_aplicacao = co_via_administracao = 0, both
    # described "Sem registro no sistema de informação de origem".
    real = sample_rows().row(0, named=True)
    assert (real["co_local_aplicacao"], real["ds_local_aplicacao"]) == ("0", NOT_RECORDED_NAME)
    assert (real["co_via_administracao"], real["ds_via_administracao"]) == ("0", NOT_RECORDED_NAME)
    both = valid.filter((pl.col("co_local_aplicacao") == "0") & (pl.col("co_via_administracao") == "0"))
    assert 0.02 < both.height / valid.height < 0.07
    assert (both["ds_local_aplicacao"] == NOT_RECORDED_NAME).all() and (both["ds_via_administracao"] == NOT_RECORDED_NAME).all()
    assert valid["co_via_administracao"].null_count() == 0
    abroad = valid.filter(pl.col("co_pais_paciente") != "10")
    assert 0 < abroad.height / valid.height < 0.01
    assert (abroad["no_pais_paciente"] != "BRASIL").all() and abroad["no_pais_paciente"].str.contains("^[A-Z ]+$").all()
    assert (abroad["co_municipio_paciente"] == contract.UNKNOWN_MUNICIPIO).all() and abroad["nu_cep_paciente"].is_null().all()
    assert (valid.filter(pl.col("co_pais_paciente") == "10")["no_pais_paciente"] == "BRASIL").all()


def test_ages_fit_groups_and_vaccines(valid):
    age = pl.col("nu_idade_paciente").cast(pl.Int64)
    bands = {"000201": (60, 64), "000202": (65, 69), "000203": (70, 74), "000204": (75, 79), "000205": (80, 200)}
    for code, (low, high) in bands.items():
        ages = valid.filter(pl.col("co_vacina_grupo_atendimento") == code).select(age).to_series()
        assert ages.len() and ages.min() >= low and ages.max() <= high, code
    assert valid.filter(pl.col("co_vacina_grupo_atendimento").str.starts_with("0009")).select(age.min()).item() >= 15
    assert valid.filter(pl.col("co_vacina") == "15").select(age.max()).item() <= 4  # BCG
    assert valid.filter(pl.col("co_vacina") == "42").select(age.max()).item() <= 4  # pentavalente
    assert valid.filter(pl.col("co_vacina") == "21").select(age.min()).item() >= 50  # pneumo 23
    pregnant = valid.filter(pl.col("co_condicao_maternal") == "2")
    assert pregnant.height and (pregnant["tp_sexo_paciente"] == "F").all()
    assert pregnant.select(age.is_between(15, 49).all()).item()
    indigenous = valid.filter(pl.col("co_vacina_grupo_atendimento") == "000701")
    assert (indigenous["co_raca_cor_paciente"] == "05").all()


def test_a_patient_may_get_several_doses_in_one_visit(valid):
    counts = valid["co_paciente"].value_counts()
    repeated = counts.filter(pl.col("count") > 1)
    assert 0.05 < repeated.height / counts.height < 0.25
    visit = ["tp_sexo_paciente", "nu_idade_paciente", "co_municipio_paciente", "co_cnes_estabelecimento", "dt_vacina"]
    same = (
        valid.filter(pl.col("co_paciente").is_in(repeated["co_paciente"].implode()))
        .group_by("co_paciente")
        .agg(pl.col(name).n_unique() for name in visit)
    )
    assert same.select(pl.all().exclude("co_paciente").max()).row(0) == (1,) * len(visit)


# ---------------------------------------------------------------- establishments


def test_establishments_are_unique_scaled_and_usable_as_a_cnes_table(valid):
    table = synthetic_establishments(SEED)
    assert table.equals(synthetic_establishments(SEED))
    assert table["cnes"].is_unique().all() and table["cnes"].str.contains(r"^\d{7}$").all()
    per_municipality = dict(table["ibge6"].value_counts().iter_rows())
    population = reference.populacao()
    smallest = min(population, key=population.get)
    assert per_municipality[smallest] >= 2  # the secretariat and one UBS at least
    assert per_municipality["355030"] > 50 * per_municipality[smallest]
    secretaria = table.filter(pl.col("ibge6") == "420420", pl.col("tipo_unidade") == "68")
    assert secretaria["fantasia"].to_list() == ["SECRETARIA MUNICIPAL DE SAUDE DE CHAPECO"]
    assert table.filter(pl.col("fantasia").str.starts_with("UBS ")).height > 1000
    assert table.filter(pl.col("tipo_unidade") == "73").height > 100
    shipped = CnesTable.load(Path(reference.__file__).parent / "data" / "cnes_estabelecimentos.csv")
    assert len(shipped) and not set(table["cnes"]) & set(shipped.frame["cnes"])

    cnes = CnesTable(table, source="sintetico")
    used = valid.select(
        "co_cnes_estabelecimento", "co_municipio_estabelecimento", "sg_uf_estabelecimento", "no_fantasia_estalecimento"
    ).unique()
    assert used.height > 5_000
    for code, municipio, uf, fantasia in used.head(300).iter_rows():
        found = cnes.by_cnes(code)
        assert found is not None and (found.ibge6, found.uf, found.fantasia) == (municipio, uf, fantasia)
    assert set(used["co_cnes_estabelecimento"]) <= set(table["cnes"])
    assert synthetic_establishments(SEED + 1)["cnes"].head(50).to_list() != table["cnes"].head(50).to_list()


# ---------------------------------------------------------------- invalid and defective records


def test_quarantine_holds_exactly_the_corrupted_records(raw, checked):
    corrupted = invalid_records(DAY, RECORDS, SEED)
    quarantine = checked.quarantine
    assert 0.003 < corrupted.height / RECORDS < 0.005
    assert quarantine.height == corrupted.height
    assert set(quarantine["co_documento"]) == set(corrupted["co_documento"])
    assert (quarantine[REASONS].list.len() > 0).all()
    joined = corrupted.join(quarantine.select("co_documento", REASONS), on="co_documento")
    kinds = set()
    for kind, reasons in joined.select("tipo", REASONS).iter_rows():
        base, _, field = kind.partition(":")
        kinds.add(base)
        expected = f"campo_obrigatorio_ausente:{field}" if base == "campo_obrigatorio_vazio" else EXPECTED_REASON[base]
        assert expected in reasons, (kind, reasons)
    assert kinds == set(INVALID_KINDS)


def test_quarantine_keeps_original_values_and_the_day_order(raw, checked):
    quarantine = checked.quarantine
    assert quarantine["co_documento"].is_sorted()
    original = raw.join(quarantine.select("co_documento"), on="co_documento").sort("co_documento")
    assert quarantine.select(contract.SOURCE_COLUMNS).sort("co_documento").equals(original.select(contract.SOURCE_COLUMNS))
    cnes = quarantine.filter(pl.col(REASONS).list.contains("cnes_invalido"))["co_cnes_estabelecimento"]
    assert cnes.str.contains(r"^\d{6}[A-Z]$").any()


def test_defects_are_repaired_to_exactly_the_clean_values():
    damaged = day_frame(records=50_000, invalid=False)
    clean = day_frame(records=50_000, invalid=False, defects=False)
    defective = SyntheticSource(DAY, 50_000, SEED, invalid=False).defective_records()
    assert set(defective["tipo"]) == set(DEFECT_KINDS)
    assert 0.02 < defective.height / 50_000 < 0.04

    # The raw records differ exactly where a defect was applied…
    differs = pl.any_horizontal(
        pl.col(name).ne_missing(pl.col(f"{name}_limpo")) for name in contract.SOURCE_COLUMNS if name != "co_documento"
    )
    changed = damaged.join(clean, on="co_documento", suffix="_limpo").filter(differs)["co_documento"]
    assert set(changed) == set(defective["co_documento"])
    assert damaged.filter(pl.col("co_municipio_estabelecimento").str.ends_with(".0")).height > 0
    assert damaged.filter(pl.col("co_municipio_paciente").str.len_chars() == 7).height > 0
    assert damaged.filter(pl.col("dt_vacina").str.contains(r"^\d{2}/\d{2}/\d{4}$")).height > 0

    # …and validation brings every one of them back.
    repaired = validate(damaged, today=TODAY)
    reference_day = validate(clean, today=TODAY)
    assert repaired.quarantine.height == 0 and reference_day.quarantine.height == 0
    assert repaired.valid.equals(reference_day.valid)


# ---------------------------------------------------------------- extraction and the command


def test_extract_writes_a_canonical_staging_file_in_one_pass(tmp_path, monkeypatch):
    def second_pass(*args, **kwargs):
        raise AssertionError("a fonte sintética não deveria precisar de segunda passada")

    monkeypatch.setattr(extract, "_canonicalize", second_pass)
    source = SyntheticSource(DAY, 50_000, SEED, batch_size=9_000)
    counts = extract.extract(
        source.batches(), tmp_path / "d.parquet", tmp_path / "q.parquet", today=TODAY, day=DAY, source=source
    )
    assert counts.read == 50_000 == counts.valid + counts.quarantined
    assert counts.quarantined == source.invalid_records().height
    staged = pl.read_parquet(tmp_path / "d.parquet")
    assert staged.height == counts.valid and staged["co_documento"].is_sorted()
    assert staged.schema == pl.Schema(contract.SCHEMA)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VACINA_D1_DEBUG"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=env, timeout=300)


def test_generate_command_end_to_end(tmp_path):
    out = tmp_path / "dia.parquet"
    done = run_cli("generate", "--date", DAY.isoformat(), "--records", "20000", "--seed", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["read"] == 20_000 == report["valid"] + report["quarantined"]
    assert report["quarantined"] == invalid_records(DAY, 20_000, 3).height > 0
    rejects = Path(report["rejects"])
    assert pl.read_parquet(out).height == report["valid"]
    assert pl.read_parquet(rejects).height == report["quarantined"]
    assert extract.read_counts(out).read == 20_000


@pytest.mark.parametrize(
    "args",
    [
        ["--date", DAY.isoformat(), "--records", "-5"],
        ["--date", (dates.today() + dt.timedelta(days=3)).isoformat(), "--records", "10"],
        ["--date", "2026-02-30", "--records", "10"],
    ],
)
def test_generate_bad_arguments_give_one_line_and_fail(tmp_path, args):
    done = run_cli("generate", *args, "--out", str(tmp_path / "x.parquet"))
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vacina-d1: erro"), done.stderr
    assert not (tmp_path / "x.parquet").exists()


# ---------------------------------------------------------------- normalisation's fast path
# (validation normalises only the values its byte scan cannot prove unchanged; these
# tests hold it to the full expressions, on synthetic days and on adversarial text.)

_TRICKY = [" ", "\t", "\r\n", "\x7f", "\x00", "\xa0", "\u0085", "\u1680", "\u2003", "\u202f", "\u205f", "\u3000",
           "\x80", "\x96", "\x9f", "a", "Z", "é", "à", "É", "Ú", "ç", "0", "7", ".", "-", "/", "ª", "º"]  # fmt: skip


def test_fast_normalisation_equals_the_full_one_on_a_damaged_day():
    from pipelines.validation import _normalize_all, normalize

    frame = day_frame(records=30_000)
    assert normalize(frame).equals(_normalize_all(frame))
    clean = day_frame(records=5_000, invalid=False, defects=False)
    assert normalize(clean).equals(_normalize_all(clean))


_TRICKY_COLUMNS = ["no_fantasia_estalecimento", "sg_uf_paciente", "st_documento", "co_cnes_estabelecimento",
                   "co_municipio_paciente", "nu_idade_paciente", "co_vacina", "ds_dose_vacina"]  # fmt: skip


def test_fast_normalisation_equals_the_full_one_on_tricky_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pipelines.validation import _normalize_all, normalize

    base = day_frame(records=200, invalid=False, defects=False)
    values = st.one_of(st.none(), st.lists(st.sampled_from(_TRICKY), max_size=6).map("".join), st.text(max_size=5))
    edits = st.lists(st.tuples(st.sampled_from(_TRICKY_COLUMNS), st.integers(0, 199), values), min_size=1, max_size=12)

    @settings(max_examples=80, deadline=None)
    @given(edits=edits)
    def check(edits):
        columns = {name: base[name].to_list() for name in _TRICKY_COLUMNS}
        for name, row, value in edits:
            columns[name][row] = value
        frame = base.with_columns(pl.Series(name, values, dtype=pl.String) for name, values in columns.items())
        assert normalize(frame).equals(_normalize_all(frame))

    check()


def test_the_same_day_gives_a_byte_identical_staging_file(tmp_path):
    from pipelines.extract import extract

    files = []
    for run in ("a", "b"):
        source = SyntheticSource(dt.date(2026, 11, 20), 5_000, seed=3)
        out = tmp_path / f"{run}.parquet"
        extract(source.batches(), out, tmp_path / f"{run}.rejects.parquet", today=dt.date(2026, 11, 22), source=source)
        files.append(out.read_bytes())
    assert files[0] == files[1]
