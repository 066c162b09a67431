import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import contract
from pipelines.validation import CNS_COLUMN, CPF_COLUMN, validate
from tests.conftest import FIXTURES

TODAY = dt.date(2026, 11, 22)


@pytest.fixture
def sample() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "sample_pni_rotina_rows.csv", separator=";", infer_schema=False)


def reasons_of(frame: pl.DataFrame, **kwargs) -> list[list[str]]:
    result = validate(frame, today=TODAY, **kwargs)
    assert result.valid.height + result.quarantine.height == frame.height
    return result.quarantine[contract.QUARANTINE_REASONS_COLUMN].to_list()


def test_real_sample_rows_are_valid_and_read_as_published(sample):
    result = validate(sample, today=TODAY)
    assert result.quarantine.height == 0
    first = result.valid.row(0, named=True)
    assert first["co_cnes_estabelecimento"] == "0271136"
    assert first["co_municipio_estabelecimento"] == "330550"
    assert first["no_municipio_paciente"] == "SAQUAREMA"
    assert first["dt_vacina"] == dt.date(2025, 1, 9)
    assert first["dt_entrada_rnds"] == dt.date(2025, 2, 22)
    assert first["ds_dose_vacina"] == "Tratamento com três doses"
    second = result.valid.row(1, named=True)
    assert second["co_vacina_grupo_atendimento"] == "000210"
    assert second["co_tipo_estabelecimento"] == "73"
    assert result.valid.schema == pl.Schema(contract.SCHEMA)


def test_float_defect_and_lost_zeros_are_undone(sample):
    damaged = sample.with_columns(
        pl.lit("330550.0").alias("co_municipio_estabelecimento"),
        pl.lit("271136.0").alias("co_cnes_estabelecimento"),
        pl.lit("1.0").alias("co_raca_cor_paciente"),
        pl.lit("210").alias("co_vacina_grupo_atendimento"),
        pl.lit("2.0").alias("co_tipo_estabelecimento"),
        pl.lit("26.0").alias("nu_idade_paciente"),
        pl.lit("3305505").alias("co_municipio_paciente"),
    ).head(1)
    row = validate(damaged, today=TODAY).valid.row(0, named=True)
    assert row["co_municipio_estabelecimento"] == "330550"
    assert row["co_cnes_estabelecimento"] == "0271136"
    assert row["co_raca_cor_paciente"] == "01"
    assert row["co_vacina_grupo_atendimento"] == "000210"
    assert row["co_tipo_estabelecimento"] == "02"
    assert row["nu_idade_paciente"] == "26"
    assert row["co_municipio_paciente"] == "330550"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"co_vacina": None}, "campo_obrigatorio_ausente:co_vacina"),
        ({"co_municipio_estabelecimento": "999998"}, "municipio_estabelecimento_invalido"),
        ({"co_municipio_estabelecimento": "999999"}, "municipio_estabelecimento_desconhecido"),
        ({"sg_uf_estabelecimento": "SP"}, "uf_estabelecimento_inconsistente"),
        ({"co_municipio_paciente": "123456"}, "municipio_paciente_invalido"),
        ({"sg_uf_paciente": "ZZ", "co_municipio_paciente": "999999"}, "uf_paciente_invalida"),
        ({"sg_uf_paciente": "MG"}, "uf_paciente_inconsistente"),
        ({"co_cnes_estabelecimento": "12345678"}, "cnes_invalido"),
        ({"dt_vacina": "2025-02-30"}, "dt_vacina_invalida"),
        ({"dt_vacina": "1899-12-31"}, "dt_vacina_implausivel"),
        ({"dt_vacina": "2027-01-01", "dt_entrada_rnds": "2027-01-02"}, "dt_vacina_futura"),
        ({"dt_vacina": "2025-03-01"}, "dt_vacina_posterior_entrada"),
        ({"dt_entrada_rnds": "ontem"}, "dt_entrada_rnds_invalida"),
        ({"dt_entrada_rnds": "2027-01-01"}, "dt_entrada_rnds_futura"),
        ({"dt_deletado_rnds": "2027-01-01"}, "dt_deletado_rnds_futura"),
        ({"st_documento": "amended"}, "st_documento_invalido"),
        ({"co_documento": '"unterminated'}, "co_documento_invalido"),
        ({"co_documento": "1ca8b58f ac77-473c"}, "co_documento_invalido"),
        ({"co_documento": "doc\x00\x01\xfe\xff"}, "co_documento_invalido"),
        ({"co_documento": "a" * 65}, "co_documento_invalido"),
        ({"co_documento": "1ca8b58f-ac77-473c-826d-6b874712a41f;i0b0"}, "co_documento_invalido"),
    ],
)
def test_each_defect_goes_to_quarantine_with_its_reason(sample, changes, expected):
    bad = sample.head(1).with_columns(pl.lit(v, pl.String).alias(k) for k, v in changes.items())
    reasons = reasons_of(bad)
    assert len(reasons) == 1 and expected in reasons[0]


@pytest.mark.parametrize(
    "documento",
    ["1ca8b58f-ac77-473c-826d-6b874712a41f-i0b0", "1CA8B58F-AC77-473C-826D-6B874712A41F-i0b0-i1", "rotina-0001", "a" * 64],
)
def test_rnds_document_identifiers_are_valid(sample, documento):
    assert reasons_of(sample.head(1).with_columns(pl.lit(documento).alias("co_documento"))) == []


def test_quarantine_keeps_the_original_values(sample):
    bad = sample.head(1).with_columns(pl.lit("330550.0").alias("co_municipio_estabelecimento"), pl.lit("X").alias("st_documento"))
    quarantine = validate(bad, today=TODAY).quarantine
    assert quarantine["co_municipio_estabelecimento"].to_list() == ["330550.0"]
    assert quarantine["st_documento"].to_list() == ["X"]


def test_unknown_residence_is_valid(sample):
    unknown = sample.head(1).with_columns(pl.lit("999999").alias("co_municipio_paciente"), pl.lit("XX").alias("sg_uf_paciente"))
    assert validate(unknown, today=TODAY).valid.height == 1
    empty = sample.head(1).with_columns(
        pl.lit(None, pl.String).alias("co_municipio_paciente"), pl.lit(None, pl.String).alias("sg_uf_paciente")
    )
    assert validate(empty, today=TODAY).valid.height == 1


def test_patient_identifiers_are_checked_and_never_kept(sample):
    frame = pl.concat(
        [
            sample.head(1).with_columns(pl.lit(None, pl.String).alias("co_paciente")),
            sample.tail(1).with_columns(pl.lit(None, pl.String).alias("co_paciente")),
        ]
    ).with_columns(
        pl.Series(CPF_COLUMN, ["111.444.777-35", "111.444.777-36"]),
        pl.Series(CNS_COLUMN, [None, None], dtype=pl.String),
    )
    seen = []

    def pseudonymize(norm: pl.DataFrame) -> pl.Series:
        seen.extend(norm[CPF_COLUMN].to_list())
        return norm[CPF_COLUMN].map_elements(lambda v: f"h-{v[::-1]}", return_dtype=pl.String)

    result = validate(frame, today=TODAY, pseudonymize=pseudonymize)
    assert seen == ["11144477735", "11144477736"]  # punctuation stripped before checking
    assert result.valid["co_paciente"].to_list() == ["h-53777444111"]
    assert result.quarantine[contract.QUARANTINE_REASONS_COLUMN].to_list() == [["cpf_invalido"]]
    assert CPF_COLUMN not in result.quarantine.columns and CPF_COLUMN not in result.valid.columns
    with pytest.raises(ValueError):
        validate(frame, today=TODAY)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=12), st.from_regex(r"\d{1,8}(\.0)?", fullmatch=True)), min_size=1, max_size=20)
)
def test_read_always_equals_valid_plus_quarantined(values):
    frame = pl.DataFrame({name: pl.Series(values, dtype=pl.String) for name in contract.SOURCE_COLUMNS})
    result = validate(frame, today=TODAY)
    assert result.valid.height + result.quarantine.height == len(values)
    assert result.valid.schema == pl.Schema(contract.SCHEMA)


def test_control_characters_never_reach_the_output(sample):
    # "\x96" is what Windows-1252's en dash becomes when a file is decoded as Latin-1.
    dirty = sample.head(1).with_columns(
        pl.lit("UBS\x96CENTRO\r\nNORTE\x00").alias("no_fantasia_estalecimento"),
        pl.lit("1ª Dose").alias("ds_dose_vacina"),
    )
    row = validate(dirty, today=TODAY).valid.row(0, named=True)
    assert row["no_fantasia_estalecimento"] == "UBS CENTRO NORTE"
    assert row["ds_dose_vacina"] == "1ª Dose"
