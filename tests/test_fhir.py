"""The RNDS FHIR source (RIA documents) and the CNES establishment table."""

import copy
import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validate_docbr import CNS, CPF

from pipelines import contract
from pipelines.cnes import LAYOUT_COLUMNS, CnesTable
from pipelines.extract import extract
from pipelines.sources import SourceError, open_source
from pipelines.sources.fhir import FhirSource, map_document, records_frame
from pipelines.validation import CNS_COLUMN, CPF_COLUMN, reason_label, validate
from tests.conftest import FIXTURES

TODAY = dt.date(2026, 11, 22)
KEY = "chave-de-teste-fhir-0123456789"
SP = ZoneInfo("America/Sao_Paulo")
EXAMPLE = FIXTURES / "rnds_ria_campanha_bundle_example.json"
ROTINA = FIXTURES / "fhir" / "ria_rotina_bundle.json"
SHIPPED_CNES = Path(__file__).parents[1] / "pipelines" / "data" / "cnes_estabelecimentos.csv"
SD = "http://www.saude.gov.br/fhir/r4/StructureDefinition/"
CS = "http://www.saude.gov.br/fhir/r4/CodeSystem/"
CPF_SYSTEM = "http://www.saude.gov.br/fhir/r4/NamingSystem/cpf"
CNS_SYSTEM = SD + "BRIndividuo-1.0"
REASONS = contract.QUARANTINE_REASONS_COLUMN


def _pool(generator, n: int) -> list[str]:
    state = random.getstate()
    random.seed(20261122)
    try:
        return [generator.generate() for _ in range(n)]
    finally:
        random.setstate(state)


VALID_CNS = _pool(CNS(), 12)
VALID_CPF = _pool(CPF(), 12)
PRACTITIONER_CNS = VALID_CNS[-1]


def co_paciente(kind: str, digits: str) -> str:
    """The documented pseudonym, computed independently of the code under test."""
    return hmac.new(KEY.encode(), f"{kind}:{digits}".encode(), hashlib.sha256).hexdigest()


def filled_example(cns: str, *, cnes: str = "7319428", doc_id: str = "ria-exemplo-1") -> dict:
    """The reference example with its template placeholders filled in."""
    text = (
        EXAMPLE.read_text(encoding="utf-8")
        .replace("{{cnes}}", cnes)
        .replace("{{id-es-ria}}", doc_id)
        .replace("{{identificador-solicitante}}", "9999")
        .replace("{{individuo-cns}}", PRACTITIONER_CNS)
        .replace("712176901347489", cns)
    )
    return json.loads(text)


def ria_bundle(
    doc_id: str,
    *,
    cnes: str = "0271136",
    patient: tuple[str, str] = (CNS_SYSTEM, VALID_CNS[0]),
    vaccine: str = "9",
    dose: str = "1",
    occurrence: str = "2025-03-01",
    last_updated: str = "2025-03-02T10:00:00-03:00",
    status: str = "final",
    replaces: str | None = None,
    group: str | None = None,
    strategy: str | None = None,
    site: str | None = None,
    route: str | None = None,
    lot: str = "LOTE-1",
    extra_entries: tuple = (),
    immunizations: int = 1,
) -> dict:
    """A RIA document built from parts: campanha profile when it has a grupo de atendimento."""
    system, value = patient
    campanha = group is not None
    profile = "BRImunobiologicoAdministradoCampanha-1.0" if campanha else "BRImunobiologicoAdministrado-1.0"
    imms = []
    for k in range(immunizations):
        imm = {
            "resourceType": "Immunization",
            "meta": {"profile": [SD + profile]},
            "status": "completed",
            "vaccineCode": {"coding": [{"system": CS + "BRImunobiologico", "code": vaccine}]},
            "patient": {"identifier": {"system": system, "value": value}},
            "occurrenceDateTime": occurrence,
            "manufacturer": {"reference": "Organization/33781055000135", "display": "FUNDACAO BUTANTAN"},
            "lotNumber": lot,
            "protocolApplied": [{"doseNumberString": dose}],
        }
        if campanha:
            imm["extension"] = [
                {
                    "url": SD + "BRGrupoAtendimento",
                    "valueCodeableConcept": {"coding": [{"system": CS + "BRGrupoAtendimento", "code": group}]},
                }
            ]
        if strategy is not None:
            imm["protocolApplied"][0]["extension"] = [
                {
                    "url": SD + "BREstrategiaVacinacao-1.0",
                    "valueCodeableConcept": {"coding": [{"system": CS + "BREstrategiaVacinacao", "code": strategy}]},
                }
            ]
        if site is not None:
            imm["site"] = {"coding": [{"system": CS + "BRLocalAplicacao", "code": site}]}
        if route is not None:
            imm["route"] = {"coding": [{"system": CS + "BRViaAdministracao", "code": route}]}
        imms.append({"fullUrl": f"urn:uuid:{doc_id}-imm-{k}", "resource": imm})
    composition = {
        "resourceType": "Composition",
        "status": status,
        "type": {"coding": [{"system": CS + "BRTipoDocumento", "code": "RIA"}]},
        "subject": {"identifier": {"system": system, "value": value}},
        "date": last_updated,
        "author": [{"identifier": {"system": SD + "BREstabelecimentoSaude-1.0", "value": cnes}}],
        "title": "Registro de Imunobiologico Administrado",
        "section": [{"entry": [{"reference": e["fullUrl"]} for e in imms]}],
    }
    if replaces is not None:
        composition["relatesTo"] = [{"code": "replaces", "targetReference": {"reference": f"Composition/{replaces}"}}]
    return {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": last_updated},
        "identifier": {"system": "http://www.saude.gov.br/fhir/r4/NamingSystem/BRRNDS-9999", "value": doc_id},
        "type": "document",
        "timestamp": last_updated,
        "entry": [{"fullUrl": f"urn:uuid:{doc_id}-comp", "resource": composition}, *imms, *extra_entries],
    }


def patient_resource(
    *,
    cns: str | None = None,
    cpf: str | None = None,
    gender="female",
    birth="1990-07-15",
    race="03",
    city="3550308",
    cep="01310-100",
):
    identifiers = []
    if cns:
        identifiers.append({"use": "official", "type": {"coding": [{"code": "CNS"}]}, "value": cns})
    if cpf:
        identifiers.append({"use": "official", "type": {"coding": [{"code": "CPF"}]}, "value": cpf})
    return {
        "resourceType": "Patient",
        "id": f"p-{(cns or cpf)[-4:]}",
        "identifier": identifiers,
        "active": True,
        "gender": gender,
        "birthDate": birth,
        "extension": [
            {
                "url": SD + "BRRacaCorEtnia-1.0",
                "extension": [{"url": "race", "valueCodeableConcept": {"coding": [{"system": CS + "BRRacaCor", "code": race}]}}],
            }
        ],
        "address": [
            {
                "use": "old",
                "type": "physical",
                "line": ["R", "A", "1", "B"],
                "city": "3304557",
                "state": "RJ",
                "postalCode": "20000-000",
                "period": {"end": "2019-01-01"},
            },
            {"use": "home", "type": "physical", "line": ["R", "B", "2", "C"], "city": city, "state": "SP", "postalCode": cep},
        ],
    }


def write_json(path: Path, bundle: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    return path


def write_ndjson(path: Path, resources) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for resource in resources:
            handle.write((resource if isinstance(resource, str) else json.dumps(resource, ensure_ascii=False)) + "\n")
    return path


def run(path: Path, **options):
    source = FhirSource(path, key=KEY, **options)
    raw = pl.concat(list(source.batches()), how="vertical")
    return validate(raw, today=TODAY, pseudonymize=source.pseudonymizer())


def only_row(frame: pl.DataFrame) -> dict:
    assert frame.height == 1, frame
    return frame.row(0, named=True)


# --- the reference example -----------------------------------------------------------------------


def test_reference_example_maps_to_what_a_person_reads(tmp_path):
    cns = VALID_CNS[1]
    bundle = filled_example(cns)
    result = run(write_json(tmp_path / "exemplo.json", bundle))
    row = only_row(result.quarantine)
    # Read off the example: vaccine 15 (BCG), dose "1", grupo 000907 (Enfermeiro(a)), lot, dates.
    assert row["co_documento"] == "ria-exemplo-1"
    assert row["co_vacina"] == "15" and row["ds_vacina"] == "Vacina BCG"
    assert row["co_dose_vacina"] == "1" and row["ds_dose_vacina"] == "1ª Dose"
    assert row["co_vacina_grupo_atendimento"] == "000907"
    assert row["ds_vacina_grupo_atendimento"] == "Enfermeiro(a)"
    assert row["co_lote_vacina"] == "L-transient-1"
    assert row["dt_vacina"] == "2020-01-01"
    assert row["dt_entrada_rnds"] == "2001-06-23"
    assert row["st_documento"] == "final"
    assert row["co_vacina_fabricante"] == "00394544000185"
    # The establishment, from the shipped CNES table (7319428: the UPA of Chapecó/SC).
    assert row["co_cnes_estabelecimento"] == "7319428"
    assert row["no_razao_social_estabelecimento"] == "MUNICIPIO DE CHAPECO"
    assert row["no_fantasia_estalecimento"] == "UNIDADE DE PRONTO ATENDIMENTO UPA 24H"
    assert row["co_municipio_estabelecimento"] == "420420"
    assert row["no_municipio_estabelecimento"] == "CHAPECO"
    assert row["sg_uf_estabelecimento"] == "SC"
    assert row["co_paciente"] == co_paciente("cns", cns)
    assert row[contract.QUARANTINE_ORIGIN_COLUMN] == "exemplo.json"
    # The example's own dates disagree: vaccinated in 2020, entered the RNDS in 2001.
    assert row[REASONS] == ["dt_vacina_posterior_entrada"]

    bundle["meta"]["lastUpdated"] = "2020-01-02T09:00:00-03:00"
    valid = only_row(run(write_json(tmp_path / "corrigido.json", bundle)).valid)
    assert valid["dt_entrada_rnds"] == dt.date(2020, 1, 2)
    assert valid["dt_vacina"] == dt.date(2020, 1, 1)
    assert valid["no_uf_estabelecimento"] == "SANTA CATARINA"
    assert valid["co_tipo_estabelecimento"] == "73" and valid["ds_tipo_estabelecimento"] == "PRONTO ATENDIMENTO"


def test_example_with_its_placeholders_is_quarantined_and_says_why():
    result = run(EXAMPLE)
    row = only_row(result.quarantine)
    assert "fhir_placeholder" in row[REASONS]
    assert "cnes_invalido" in row[REASONS]  # "{{cnes}}" is no CNES
    assert "cns_invalido" in row[REASONS]  # the example's CNS fails its check digit
    assert row["co_cnes_estabelecimento"] == "{{cnes}}"  # original values kept
    assert "{{...}}" in reason_label("fhir_placeholder")


# --- routine and campanha, status, replacement ---------------------------------------------------


def test_routine_document_with_time_offset_and_cpf():
    row = only_row(run(ROTINA).valid)
    assert row["co_documento"] == "rotina-0001"  # Bundle.identifier.value, not Bundle.id
    # 2025-03-10T01:30Z is still the 9th in São Paulo; lastUpdated 02:15-03:00 is the 10th.
    assert row["dt_vacina"] == dt.date(2025, 3, 9)
    assert row["dt_entrada_rnds"] == dt.date(2025, 3, 10)
    assert (row["co_vacina"], row["ds_vacina"]) == ("9", "Vacina hepatite B (recombinante)")
    assert (row["co_dose_vacina"], row["ds_dose_vacina"]) == ("2", "2ª Dose")
    assert (row["co_estrategia_vacinacao"], row["ds_estrategia_vacinacao"]) == ("1", "Rotina")
    assert (row["co_local_aplicacao"], row["ds_local_aplicacao"]) == ("2", "Deltóide Esquerdo")
    assert (row["co_via_administracao"], row["ds_via_administracao"]) == ("2", "Intramuscular")
    assert row["co_vacina_grupo_atendimento"] is None  # routine profile: no grupo de atendimento
    assert row["co_cnes_estabelecimento"] == "0271136"
    assert row["no_fantasia_estalecimento"] == "ESF JACONE"
    assert (row["co_municipio_estabelecimento"], row["sg_uf_estabelecimento"]) == ("330550", "RJ")
    assert row["co_paciente"] == co_paciente("cpf", "11144477735")
    assert row["co_municipio_paciente"] is None  # no Patient resource: residence unknown


@pytest.mark.parametrize(
    ("group", "strategy", "expected_group", "expected_strategy"),
    [("000201", None, "000201", None), (None, "4", None, "Intensificação")],
    ids=["campanha", "rotina"],
)
def test_campanha_and_rotina_profiles(tmp_path, group, strategy, expected_group, expected_strategy):
    bundle = ria_bundle("perfil-1", group=group, strategy=strategy)
    row = only_row(run(write_json(tmp_path / "perfil.json", bundle)).valid)
    assert row["co_vacina_grupo_atendimento"] == expected_group
    assert row["ds_estrategia_vacinacao"] == expected_strategy


def test_entered_in_error_and_replacement(tmp_path):
    path = write_ndjson(
        tmp_path / "Bundle.ndjson",
        [
            ria_bundle("doc-original"),
            ria_bundle("doc-erro", status="entered-in-error"),
            ria_bundle("doc-novo", replaces="doc-original", lot="LOTE-CORRIGIDO"),
        ],
    )
    valid = run(path).valid.sort("co_documento")
    assert valid["co_documento"].to_list() == ["doc-erro", "doc-novo", "doc-original"]
    assert valid["st_documento"].to_list() == ["entered-in-error", "final", "final"]
    assert valid["co_troca_documento"].to_list() == [None, "doc-original", None]


def test_document_with_two_immunizations_gives_two_records(tmp_path):
    result = run(write_json(tmp_path / "dois.json", ria_bundle("doc-duplo", immunizations=2)))
    assert sorted(result.valid["co_documento"].to_list()) == ["doc-duplo-i0", "doc-duplo-i1"]


# --- patients ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "value", "reason"),
    [
        (CNS_SYSTEM, "712176901347489", "cns_invalido"),
        (CPF_SYSTEM, "111.444.777-36", "cpf_invalido"),
        (CNS_SYSTEM, "12345678901", "cpf_invalido"),
    ],
)
def test_bad_cns_or_cpf_goes_to_quarantine(tmp_path, system, value, reason):
    result = run(write_json(tmp_path / "ruim.json", ria_bundle("doc-ruim", patient=(system, value))))
    row = only_row(result.quarantine)
    assert row[REASONS] == [reason]
    assert row["co_paciente"] is not None and len(row["co_paciente"]) == 64


def test_patient_without_cns_or_cpf_and_divergent_patients(tmp_path):
    no_id = ria_bundle("sem-id", patient=("http://example.org/passaporte", "AB123456"))
    divergent = ria_bundle("divergente", patient=(CPF_SYSTEM, VALID_CPF[0]))
    divergent["entry"][0]["resource"]["subject"] = {"identifier": {"system": CPF_SYSTEM, "value": VALID_CPF[1]}}
    result = run(write_ndjson(tmp_path / "Bundle.ndjson", [no_id, divergent]))
    reasons = dict(zip(result.quarantine["co_documento"].to_list(), result.quarantine[REASONS].to_list()))
    assert "paciente_sem_cns_cpf" in reasons["sem-id"] and "campo_obrigatorio_ausente:co_paciente" in reasons["sem-id"]
    assert reasons["divergente"] == ["fhir_paciente_divergente"]


def test_patient_in_the_bundle_gives_sex_age_race_and_residence(tmp_path):
    cpf = VALID_CPF[2]
    bundle = ria_bundle(
        "com-paciente",
        patient=(CPF_SYSTEM, cpf),
        occurrence="2025-07-14",
        last_updated="2025-07-15T08:00:00-03:00",
        extra_entries=({"fullUrl": "urn:uuid:pac", "resource": patient_resource(cpf=cpf)},),
    )
    row = only_row(run(write_json(tmp_path / "p.json", bundle)).valid)
    assert row["tp_sexo_paciente"] == "F"
    assert row["nu_idade_paciente"] == "34"  # born 1990-07-15, vaccinated the day before turning 35
    assert (row["co_raca_cor_paciente"], row["no_raca_cor_paciente"]) == ("03", "PARDA")
    assert row["co_municipio_paciente"] == "355030"  # the current home address, not the old one
    assert row["no_municipio_paciente"] == "SAO PAULO"
    assert (row["sg_uf_paciente"], row["no_uf_paciente"]) == ("SP", "SÃO PAULO")
    assert row["nu_cep_paciente"] == "01310"


def test_bulk_export_directory_with_patient_ndjson(tmp_path):
    export = tmp_path / "export"
    cns, cpf = VALID_CNS[3], VALID_CPF[3]
    write_ndjson(
        export / "Patient.ndjson",
        [patient_resource(cns=cns, gender="male", race="01", city="4204202"), patient_resource(cpf=cpf, city="1234567")],
    )
    write_ndjson(
        export / "Bundle.ndjson",
        [
            ria_bundle("b-1", patient=(CNS_SYSTEM, cns)),
            ria_bundle("b-2", patient=(CPF_SYSTEM, cpf)),
            ria_bundle("b-3", patient=(CNS_SYSTEM, VALID_CNS[4])),
        ],
    )
    result = run(export)
    rows = {r["co_documento"]: r for r in result.valid.iter_rows(named=True)}
    assert rows["b-1"]["tp_sexo_paciente"] == "M"
    assert rows["b-1"]["co_municipio_paciente"] == "420420" and rows["b-1"]["no_municipio_paciente"] == "CHAPECO"
    assert rows["b-3"]["co_municipio_paciente"] is None and rows["b-3"]["tp_sexo_paciente"] is None  # not in Patient.ndjson
    assert "b-2" not in rows  # its residence code is not an IBGE municipality
    assert only_row(result.quarantine)[REASONS] == ["municipio_paciente_invalido"]
    assert only_row(result.quarantine)[contract.QUARANTINE_ORIGIN_COLUMN] == "Bundle.ndjson:2"


# --- establishments ------------------------------------------------------------------------------


def test_unknown_cnes_is_quarantined_with_a_readable_reason(tmp_path):
    row = only_row(run(write_json(tmp_path / "c.json", ria_bundle("cnes-x", cnes="1234567"))).quarantine)
    assert row["co_cnes_estabelecimento"] == "1234567"
    assert row[REASONS] == [
        "cnes_desconhecido",
        "campo_obrigatorio_ausente:co_municipio_estabelecimento",
        "campo_obrigatorio_ausente:sg_uf_estabelecimento",
    ]
    assert reason_label("cnes_desconhecido") == "CNES fora da tabela de estabelecimentos (município e UF desconhecidos)"


def _dump_row(**values: str) -> list[str]:
    row = dict.fromkeys(LAYOUT_COLUMNS, "")
    row.update(values)
    return [row[name] for name in LAYOUT_COLUMNS] + ["extra"]


def write_cnes_dump(path: Path) -> Path:
    """A dump in the DATASUS layout (Latin-1, ';', every field quoted, one extra column)."""
    header = [*LAYOUT_COLUMNS, "CO_COLUNA_NOVA"]
    rows = [
        _dump_row(
            CO_UNIDADE="3550302082675",
            CO_CNES="2082675",
            NU_CNPJ_MANTENEDORA="46.395.000/0001-39",
            NO_RAZAO_SOCIAL="PREFEITURA DO MUNICÍPIO DE SÃO PAULO",
            NO_FANTASIA="UBS SÉ",
            NU_TELEFONE="(11)3241-1234",
            NO_EMAIL="ubsse@prefeitura.sp.gov.br",
            TP_UNIDADE="02",
            CO_ESTADO_GESTOR="35",
            CO_MUNICIPIO_GESTOR="355030",
            CO_NATUREZA_JUR="1244",
        ),
        _dump_row(
            CO_UNIDADE="3550302077485",
            CO_CNES="2077485",
            NU_CNPJ="60.765.823/0001-30",
            NO_RAZAO_SOCIAL="SOCIEDADE BENEFICENTE ISRAELITA",
            NO_FANTASIA="HOSPITAL ISRAELITA",
            TP_UNIDADE="05",
            CO_ESTADO_GESTOR="35",
            CO_MUNICIPIO_GESTOR="",
            CO_NATUREZA_JUR="3999",
        ),
        _dump_row(
            CO_UNIDADE="3550302000001",
            CO_CNES="2000001",
            NU_CNPJ_MANTENEDORA="46395000000139",
            NO_RAZAO_SOCIAL="PREFEITURA DO MUNICÍPIO DE SÃO PAULO",
            NO_FANTASIA="AMA X",
        ),
    ]
    import csv

    with path.open("w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_shipped_cnes_table_holds_the_sample_establishments():
    table = CnesTable.load()
    assert len(table) == 8
    sample = pl.read_csv(FIXTURES / "sample_covid_campanha_rows.csv", separator=";", infer_schema=False)
    for row in sample.iter_rows(named=True):
        found = table.by_cnes(row["estabelecimento_valor"])
        assert found is not None
        assert found.razao_social == row["estabelecimento_razaoSocial"]
        assert found.ibge6 == row["estabelecimento_municipio_codigo"]
        assert found.municipio_nome == row["estabelecimento_municipio_nome"]
        assert found.uf == row["estabelecimento_uf"]
    assert table.by_cnes("271136").fantasia == "ESF JACONE"  # leading zero lost, as in old files
    assert table.by_cnes("9999999") is None and table.by_cnes("abc") is None and table.by_cnes(None) is None


def test_full_dump_in_latin1_with_extra_columns(tmp_path, monkeypatch):
    dump = write_cnes_dump(tmp_path / "tbEstabelecimento202501.csv")
    table = CnesTable.load(dump)
    ubs = table.by_cnes("2082675")
    assert ubs.razao_social == "PREFEITURA DO MUNICÍPIO DE SÃO PAULO" and ubs.fantasia == "UBS SÉ"
    assert (ubs.ibge6, ubs.municipio_nome, ubs.uf) == ("355030", "SAO PAULO", "SP")
    assert (ubs.tipo_unidade, ubs.tipo_unidade_descricao) == ("02", "CENTRO DE SAUDE/UNIDADE BASICA")
    assert (ubs.natureza_grupo, ubs.natureza_descricao) == ("1", "ADMINISTRACAO PUBLICA")
    assert (ubs.telefone, ubs.email) == ("(11)3241-1234", "ubsse@prefeitura.sp.gov.br")
    hospital = table.by_cnes("2077485")
    assert hospital.ibge6 == "355030"  # no CO_MUNICIPIO_GESTOR: taken from CO_UNIDADE
    assert hospital.natureza_descricao == "ENTIDADES SEM FINS LUCRATIVOS"
    assert [e.cnes for e in table.by_cnpj("46395000000139")] == ["2000001", "2082675"]  # maintainer's CNPJ
    assert [e.cnes for e in table.by_cnpj("60.765.823/0001-30")] == ["2077485"]  # own CNPJ
    assert table.by_cnpj("00000000000000") == []
    # Configuration points the source at the dump.
    monkeypatch.setenv("VACINA_D1_CNES_TABLE", str(dump))
    assert CnesTable.load().by_cnes("2082675") is not None
    row = only_row(run(write_json(tmp_path / "sp.json", ria_bundle("sp-1", cnes="2082675"))).valid)
    assert row["no_fantasia_estalecimento"] == "UBS SÉ" and row["ds_natureza_estabelecimento"] == "ADMINISTRACAO PUBLICA"


def test_cnes_table_outside_the_layout_is_refused(tmp_path):
    bad = tmp_path / "outra.csv"
    bad.write_text('"CNES";"NOME"\n"1234567";"X"\n', encoding="latin-1")
    with pytest.raises(ValueError, match="CO_CNES"):
        CnesTable.load(bad)
    with pytest.raises(FileNotFoundError):
        CnesTable.load(tmp_path / "nada.csv")


# --- streaming, quarantine of bad lines, errors --------------------------------------------------


def test_ndjson_streams_in_batches_and_quarantines_bad_lines(tmp_path):
    lines = [ria_bundle(f"lote-{i:05d}", patient=(CNS_SYSTEM, VALID_CNS[i % 10])) for i in range(2_400)]
    lines.insert(100, '{"resourceType": "Bundle", "type": "document", "entry": [')  # truncated line
    lines.insert(200, {"resourceType": "Patient", "id": "x"})  # not a document
    lines.insert(300, "")  # blank lines are not records
    path = write_ndjson(tmp_path / "Bundle.ndjson", lines)
    source = FhirSource(path, key=KEY, batch_size=500)
    batches = source.batches()
    first = next(batches)
    assert first.height == 500
    sizes = [first.height] + [b.height for b in batches]
    assert len(sizes) == 5 and max(sizes) <= 500 and sum(sizes) == 2_402
    counts = extract(
        FhirSource(path, key=KEY, batch_size=500).batches(),
        tmp_path / "d.parquet",
        tmp_path / "q.parquet",
        today=TODAY,
        source=source,
    )
    assert (counts.read, counts.valid, counts.quarantined) == (2_402, 2_400, 2)
    quarantine = pl.read_parquet(tmp_path / "q.parquet")
    origins = dict(zip(quarantine[contract.QUARANTINE_ORIGIN_COLUMN].to_list(), quarantine[REASONS].to_list()))
    assert origins["Bundle.ndjson:101"][0] == "fhir_json_invalido"
    assert origins["Bundle.ndjson:201"][0] == "fhir_nao_documento_ria"


def test_gzipped_ndjson_and_a_bundle_of_documents(tmp_path):
    gz = tmp_path / "Bundle.ndjson.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        for i in range(3):
            handle.write(json.dumps(ria_bundle(f"gz-{i}")) + "\n")
    assert run(gz).valid.height == 3
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": ria_bundle(f"col-{i}")} for i in range(2)],
    }
    collection["entry"][1]["resource"]["entry"][0]["resource"]["author"][0]["identifier"]["value"] = "{{cnes}}"
    result = run(write_json(tmp_path / "colecao.json", collection))
    assert result.valid["co_documento"].to_list() == ["col-0"]
    assert result.quarantine[contract.QUARANTINE_ORIGIN_COLUMN].to_list() == ["colecao.json:1"]
    assert "fhir_placeholder" in result.quarantine[REASONS].to_list()[0]


def test_a_bundle_that_is_not_a_ria_document_is_quarantined(tmp_path):
    transaction = ria_bundle("transacao")
    transaction["type"] = "transaction"
    row = only_row(run(write_json(tmp_path / "t.json", transaction)).quarantine)
    assert row[REASONS][0] == "fhir_nao_documento_ria"
    assert row["co_documento"] == "transacao"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("vazio.json", "", "vazio"),
        ("vazio.ndjson", "\n\n", "vazio"),
        ("planilha.json", "co_documento;co_paciente\n1;2\n", "não é JSON"),
        ("paciente.json", json.dumps({"resourceType": "Patient"}), "não é um Bundle"),
        ("lista.json", "[1, 2]", "não é um Bundle"),
        ("planilha.ndjson", "co_documento;co_paciente\n1;2\n", "não é NDJSON"),
        ("pacientes.ndjson", json.dumps({"resourceType": "Patient"}) + "\n", "não é um Bundle"),
        ("binario.gz", "isto não é gzip", "ilegível"),
    ],
)
def test_unreadable_input_is_one_clear_source_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match=message) as info:
        list(FhirSource(path, key=KEY).batches())
    assert "\n" not in str(info.value) and name in str(info.value)


def test_directory_errors(tmp_path):
    (tmp_path / "leia-me.txt").write_text("nada")
    with pytest.raises(SourceError, match="sem arquivos"):
        FhirSource(tmp_path)
    with pytest.raises(SourceError, match="não encontrada"):
        FhirSource(tmp_path / "ausente.ndjson")
    write_ndjson(tmp_path / "Bundle.ndjson", [ria_bundle("d-1")])
    write_ndjson(tmp_path / "Patient.ndjson", ["{quebrado"])
    with pytest.raises(SourceError, match=r"Patient.ndjson:1"):
        list(FhirSource(tmp_path, key=KEY).batches())
    (tmp_path / "Patient.ndjson").write_text("")
    (tmp_path / "Vazio.ndjson").write_text("")  # an empty file in an export: no rows, not an error
    assert run(tmp_path).valid.height == 1


def test_open_source_builds_the_fhir_source(tmp_path):
    source = open_source("fhir", str(write_json(tmp_path / "a.json", ria_bundle("os-1"))))
    assert isinstance(source, FhirSource) and source.kind == "fhir"


# --- privacy ---------------------------------------------------------------------------------------


def test_clear_cns_and_cpf_never_reach_staging_or_quarantine(tmp_path):
    valid_cns, valid_cpf = VALID_CNS[5], VALID_CPF[5]
    bad_cns, bad_cpf = "712176901347489", "11144477736"
    path = write_ndjson(
        tmp_path / "Bundle.ndjson",
        [
            ria_bundle("priv-1", patient=(CNS_SYSTEM, valid_cns)),
            ria_bundle("priv-2", patient=(CPF_SYSTEM, valid_cpf)),
            ria_bundle("priv-3", patient=(CNS_SYSTEM, bad_cns)),
            ria_bundle("priv-4", patient=(CPF_SYSTEM, bad_cpf), cnes="1234567"),
        ],
    )
    source = FhirSource(path, key=KEY)
    out, rejects = tmp_path / "dia.parquet", tmp_path / "quarentena.parquet"
    counts = extract(source.batches(), out, rejects, today=TODAY, source=source)
    assert (counts.valid, counts.quarantined) == (2, 2)
    for file in (out, rejects):
        data = file.read_bytes()
        table = pq.read_table(file)
        cells = repr(table.to_pylist()) + repr(table.schema.metadata)
        for clear in (valid_cns, valid_cpf, bad_cns, bad_cpf):
            assert clear.encode() not in data
            assert clear not in cells
        assert CNS_COLUMN not in table.column_names and CPF_COLUMN not in table.column_names
    assert set(pl.read_parquet(out)["co_paciente"]) == {co_paciente("cns", valid_cns), co_paciente("cpf", valid_cpf)}


# --- memory --------------------------------------------------------------------------------------


def test_ndjson_memory_stays_bounded(tmp_path):
    path = write_ndjson(tmp_path / "grande.ndjson", (ria_bundle(f"m-{i:06d}", lot="L" * 200) for i in range(6_000)))
    size = path.stat().st_size
    source = FhirSource(path, key=KEY, batch_size=400)
    CnesTable.load()  # the reference tables are not what this measures
    source._table()
    tracemalloc.start()
    try:
        batches = 0
        for batch in source.batches():
            batches += 1
            del batch
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batches == 15
    assert peak < size / 3, f"pico de {peak / 1e6:.1f} MB para um arquivo de {size / 1e6:.1f} MB"


# --- properties ----------------------------------------------------------------------------------

SHIPPED_CNES_CODES = sorted(CnesTable.load().frame["cnes"].to_list())


def _codes(name: str) -> list[str]:
    from pipelines import reference

    return sorted(reference.codesystem(name))


ZONES = st.sampled_from(
    [dt.timezone.utc, SP, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5, minutes=30))]
)


@st.composite
def immunizations(draw):
    moment = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2025, 12, 31), timezones=ZONES))
    with_time = draw(st.booleans())
    if with_time:
        text = moment.isoformat(timespec="seconds")
        if text.endswith("+00:00") and draw(st.booleans()):
            text = text.removesuffix("+00:00") + "Z"
        # The instant the text names (a wall time São Paulo skipped at a DST change
        # still has one offset in its text), as São Paulo counts days.
        expected_day = dt.datetime.fromisoformat(text).astimezone(SP).date()
    else:
        expected_day = moment.date()
        text = expected_day.isoformat()
    # Entry into the RNDS: never before the vaccination day (as São Paulo counts days).
    base = moment if with_time else dt.datetime.combine(expected_day, dt.time(0, 0), tzinfo=SP)
    entry_moment = base + dt.timedelta(minutes=draw(st.integers(0, 60 * 24 * 60)))
    patient = draw(st.sampled_from([(CNS_SYSTEM, v) for v in VALID_CNS] + [(CPF_SYSTEM, v) for v in VALID_CPF]))
    parts = dict(
        cnes=draw(st.sampled_from(SHIPPED_CNES_CODES)),
        patient=patient,
        vaccine=draw(st.sampled_from(_codes("BRImunobiologico"))),
        dose=draw(st.sampled_from(_codes("BRDose"))),
        occurrence=text,
        last_updated=entry_moment.isoformat(timespec="seconds"),
        status=draw(st.sampled_from(["final", "entered-in-error"])),
        group=draw(st.none() | st.sampled_from(_codes("BRGrupoAtendimento"))),
        strategy=draw(st.none() | st.sampled_from(_codes("BREstrategiaVacinacao"))),
        site=draw(st.none() | st.sampled_from(_codes("BRLocalAplicacao"))),
        route=draw(st.none() | st.sampled_from(_codes("BRViaAdministracao"))),
        lot=draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/", min_size=1, max_size=20)),
    )
    expected_entry = entry_moment.astimezone(SP).date()
    return parts, expected_day, expected_entry


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(immunizations())
def test_any_valid_immunization_maps_to_an_accepted_record(drawn):
    parts, expected_day, expected_entry = drawn
    bundle = ria_bundle("prop-1", **parts)
    table = CnesTable.load()
    records = map_document(copy.deepcopy(bundle), "prop.json", cnes_table=table)
    raw = records_frame(records)
    result = validate(raw, today=TODAY, pseudonymize=FhirSource(EXAMPLE, key=KEY).pseudonymizer())
    assert result.quarantine.height == 0, (parts, result.quarantine.row(0, named=True))
    row = only_row(result.valid)
    assert row["dt_vacina"] == expected_day
    assert row["dt_entrada_rnds"] == expected_entry
    assert row["co_vacina"] == parts["vaccine"] and row["co_dose_vacina"] == parts["dose"]
    assert row["co_lote_vacina"] == parts["lot"]
    assert row["co_cnes_estabelecimento"] == parts["cnes"]
    assert row["co_vacina_grupo_atendimento"] == parts["group"]
    assert row["co_estrategia_vacinacao"] == parts["strategy"]
    assert row["st_documento"] == parts["status"]
    kind = "cpf" if parts["patient"][0] == CPF_SYSTEM else "cns"
    assert row["co_paciente"] == co_paciente(kind, parts["patient"][1])
    assert row["ds_vacina"] and row["ds_dose_vacina"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40), max_size=15))
def test_any_garbage_after_a_good_line_is_counted_never_crashes(tmp_path_factory, garbage):
    path = tmp_path_factory.mktemp("lixo") / "Bundle.ndjson"
    write_ndjson(path, [ria_bundle("bom-1"), *garbage])
    source = FhirSource(path, key=KEY, batch_size=7)
    raw = [b for b in source.batches()]
    expected = 1 + sum(1 for line in garbage if line.encode().strip())
    assert sum(b.height for b in raw) == expected
    result = validate(pl.concat(raw), today=TODAY, pseudonymize=source.pseudonymizer())
    assert result.valid.height >= 1 and result.valid.height + result.quarantine.height == expected


# --- the command line ----------------------------------------------------------------------------

CLI = Path(sys.executable).parent / "vacina-d1"


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_")}
    env["VACINA_D1_HOME"] = str(home)
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_imports_a_bulk_export(tmp_path):
    export = tmp_path / "export"
    write_ndjson(
        export / "Bundle.ndjson", [ria_bundle("cli-1"), ria_bundle("cli-2", patient=(CNS_SYSTEM, "712176901347489")), "{nao json"]
    )
    out, rejects = tmp_path / "dia.parquet", tmp_path / "q.parquet"
    done = _cli(
        ["import", "--format", "fhir", "--input", str(export), "--out", str(out), "--rejects", str(rejects)], tmp_path / "home"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["read"], summary["valid"], summary["quarantined"]) == (3, 1, 2)
    assert summary["format"] == "fhir"
    key_file = tmp_path / "home" / "pseudonym.key"
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert pl.read_parquet(out)["co_documento"].to_list() == ["cli-1"]


def test_cli_not_json_input_is_one_line_and_non_zero(tmp_path):
    bad = tmp_path / "entrada.json"
    bad.write_text("isto não é JSON\n", encoding="utf-8")
    done = _cli(
        [
            "import",
            "--format",
            "fhir",
            "--input",
            str(bad),
            "--out",
            str(tmp_path / "o.parquet"),
            "--rejects",
            str(tmp_path / "r.parquet"),
        ],
        tmp_path / "home",
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "entrada.json" in lines[0] and "não é JSON" in lines[0]
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "r.parquet").exists()
