import csv
import datetime as dt

import polars as pl
import pytest

from pipelines import contract, reference
from tests.conftest import FIXTURES

DICTIONARY = FIXTURES.parent.parent / "pipelines" / "data" / "pni_rotina_dicionario.csv"


def test_columns_are_the_published_layout_in_order():
    with open(FIXTURES / "sample_pni_rotina_rows.csv", encoding="utf-8") as handle:
        header = next(csv.reader(handle, delimiter=";"))
    assert tuple(header) == contract.SOURCE_COLUMNS
    assert len(contract.SOURCE_COLUMNS) == 56
    assert "no_fantasia_estalecimento" in contract.SOURCE_COLUMNS  # the official misspelling
    assert contract.FILE_COLUMNS[-1] == contract.TERRITORY_COLUMN
    assert len(contract.FILE_COLUMNS) == 57


def test_columns_match_the_data_dictionary_positions():
    with open(DICTIONARY, encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["posicao_no_csv_publico"]]
    by_position = {int(r["posicao_no_csv_publico"]): r["campo"] for r in rows}
    by_position[56] = "dt_deletado_rnds"  # the dictionary calls it dt_deleted
    assert tuple(by_position[i] for i in range(1, 57)) == contract.SOURCE_COLUMNS


def test_schema_keeps_codes_as_text_and_dates_as_dates():
    assert contract.SCHEMA["co_cnes_estabelecimento"] == pl.String
    assert contract.SCHEMA["dt_vacina"] == pl.Date
    assert set(contract.DATE_COLUMNS) == {n for n, t in contract.SCHEMA.items() if t == pl.Date}


def test_operations_and_file_names():
    assert contract.state_operation("DF") == "imunizacao-total-df"
    assert contract.municipality_operation("SP", "355030") == "imunizacao-total-sp-355030"
    assert contract.file_name("imunizacao-total-df", dt.date(2026, 11, 21)) == "imunizacao-total-df_2026-11-21.csv.gz"


def test_reference_has_every_municipality_and_state():
    munis = reference.municipios()
    assert len(munis) == 5571
    assert munis["510183"].nome == "Boa Esperança do Norte" and munis["510183"].uf == "MT"
    assert munis["355030"].nome == "São Paulo"
    assert len(reference.ufs()) == 27
    assert {m.uf for m in munis.values()} == set(reference.ufs())
    assert all(len(code) == 6 and code.isdigit() for code in munis)


def test_codesystems_load():
    vacinas = reference.codesystem("BRImunobiologico")
    assert vacinas["15"]
    grupos = reference.codesystem("BRGrupoAtendimento")
    assert all(len(code) == 6 for code in grupos)
    with pytest.raises(KeyError):
        reference.codesystem("NaoExiste")
