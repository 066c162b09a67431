"""The D-1 record contract: the single source of truth for a vaccination record.

A D-1 file has the 56 columns of the public OpenDataSUS routine-vaccination CSV,
in the published order and with the published names (the official misspelling
``no_fantasia_estalecimento`` included), plus one last column,
``tp_vinculo_territorio``, telling why the record is in a territory's file.

Codes are strings that keep their leading zeros; dates are ``datetime.date``
(written as ISO ``YYYY-MM-DD``). Everything here is plain data and small
functions over Polars expressions, so every source, validator, writer and check
reads the layout from one place.
"""

from __future__ import annotations

import enum
from typing import Final

import polars as pl

LAYOUT_VERSION: Final = "pni-rotina-56+vinculo/1"

SOURCE_COLUMNS: Final[tuple[str, ...]] = (
    "co_documento",
    "co_paciente",
    "tp_sexo_paciente",
    "co_raca_cor_paciente",
    "no_raca_cor_paciente",
    "co_municipio_paciente",
    "co_pais_paciente",
    "no_municipio_paciente",
    "no_pais_paciente",
    "sg_uf_paciente",
    "nu_cep_paciente",
    "ds_nacionalidade_paciente",
    "no_etnia_indigena_paciente",
    "co_etnia_indigena_paciente",
    "co_cnes_estabelecimento",
    "no_razao_social_estabelecimento",
    "no_fantasia_estalecimento",
    "co_municipio_estabelecimento",
    "no_municipio_estabelecimento",
    "sg_uf_estabelecimento",
    "co_troca_documento",
    "co_vacina",
    "sg_vacina",
    "dt_vacina",
    "co_dose_vacina",
    "ds_dose_vacina",
    "co_local_aplicacao",
    "ds_local_aplicacao",
    "co_via_administracao",
    "ds_via_administracao",
    "co_lote_vacina",
    "ds_vacina_fabricante",
    "dt_entrada_rnds",
    "co_sistema_origem",
    "ds_sistema_origem",
    "st_documento",
    "co_estrategia_vacinacao",
    "ds_estrategia_vacinacao",
    "co_origem_registro",
    "ds_origem_registro",
    "co_vacina_grupo_atendimento",
    "ds_vacina_grupo_atendimento",
    "co_vacina_categoria_atendimento",
    "ds_vacina_categoria_atendimento",
    "co_vacina_fabricante",
    "ds_vacina",
    "ds_condicao_maternal",
    "co_tipo_estabelecimento",
    "ds_tipo_estabelecimento",
    "co_natureza_estabelecimento",
    "ds_natureza_estabelecimento",
    "nu_idade_paciente",
    "co_condicao_maternal",
    "no_uf_paciente",
    "no_uf_estabelecimento",
    "dt_deletado_rnds",
)

TERRITORY_COLUMN: Final = "tp_vinculo_territorio"
FILE_COLUMNS: Final[tuple[str, ...]] = (*SOURCE_COLUMNS, TERRITORY_COLUMN)


class Vinculo(enum.StrEnum):
    """Why a record is in a territory's file."""

    OCORRENCIA = "ocorrencia"  # vaccinated at an establishment in the territory
    RESIDENCIA = "residencia"  # the patient lives in the territory
    AMBOS = "ambos"  # both


DATE_COLUMNS: Final[tuple[str, ...]] = ("dt_vacina", "dt_entrada_rnds", "dt_deletado_rnds")

# Codes whose published form has a fixed width with leading zeros. The public
# files of 2020-2024 lost these zeros (and wrote codes as floats, "110001.0").
CODE_WIDTHS: Final[dict[str, int]] = {
    "co_raca_cor_paciente": 2,
    "co_municipio_paciente": 6,
    "nu_cep_paciente": 5,
    "co_cnes_estabelecimento": 7,
    "co_municipio_estabelecimento": 6,
    "co_vacina_grupo_atendimento": 6,
    "co_tipo_estabelecimento": 2,
}

# Numeric codes without a fixed width: only the float defect is undone.
NUMERIC_CODE_COLUMNS: Final[tuple[str, ...]] = (
    "co_pais_paciente",
    "co_vacina",
    "co_dose_vacina",
    "co_local_aplicacao",
    "co_via_administracao",
    "co_sistema_origem",
    "co_estrategia_vacinacao",
    "co_origem_registro",
    "co_vacina_categoria_atendimento",
    "co_vacina_fabricante",
    "co_natureza_estabelecimento",
    "co_condicao_maternal",
    "nu_idade_paciente",
    *CODE_WIDTHS,
)

# Upper-case two-letter state codes.
UF_COLUMNS: Final[tuple[str, ...]] = ("sg_uf_paciente", "sg_uf_estabelecimento")

REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "co_documento",
    "co_paciente",
    "co_cnes_estabelecimento",
    "co_municipio_estabelecimento",
    "sg_uf_estabelecimento",
    "co_vacina",
    "dt_vacina",
    "co_dose_vacina",
    "dt_entrada_rnds",
    "st_documento",
)

ST_DOCUMENTO_VALUES: Final[tuple[str, ...]] = ("final", "entered-in-error")

UNKNOWN_MUNICIPIO: Final = "999999"
UNKNOWN_UF: Final = "XX"

# The staging (canonical) schema: what a validated record is.
SCHEMA: Final[dict[str, pl.DataType]] = {name: (pl.Date() if name in DATE_COLUMNS else pl.String()) for name in SOURCE_COLUMNS}
FILE_SCHEMA: Final[dict[str, pl.DataType]] = {**SCHEMA, TERRITORY_COLUMN: pl.String()}

# A raw record, as a source hands it over before normalisation: every column text.
RAW_SCHEMA: Final[dict[str, pl.DataType]] = {name: pl.String() for name in SOURCE_COLUMNS}

# Quarantine: the original values, where the record came from, and why it failed.
QUARANTINE_REASONS_COLUMN: Final = "motivos_quarentena"
QUARANTINE_ORIGIN_COLUMN: Final = "origem_registro"
QUARANTINE_SCHEMA: Final[dict[str, pl.DataType]] = {
    **RAW_SCHEMA,
    QUARANTINE_ORIGIN_COLUMN: pl.String(),
    QUARANTINE_REASONS_COLUMN: pl.List(pl.String()),
}


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def conform_raw(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a source's frame exactly the raw layout: missing columns become null text,
    extra columns other than the origin column are refused (they would be lost silently)."""
    extra = set(frame.columns) - set(SOURCE_COLUMNS) - {QUARANTINE_ORIGIN_COLUMN}
    if extra:
        raise ValueError(f"colunas fora do layout: {sorted(extra)}")
    exprs = [
        (pl.col(name).cast(pl.String) if name in frame.columns else pl.lit(None, pl.String)).alias(name)
        for name in SOURCE_COLUMNS
    ]
    if QUARANTINE_ORIGIN_COLUMN in frame.columns:
        exprs.append(pl.col(QUARANTINE_ORIGIN_COLUMN).cast(pl.String))
    return frame.select(exprs)


def file_name(operation: str, day: "object", *, compressed: bool = True) -> str:
    """The published file's name: the operation and the ISO date, e.g.
    ``imunizacao-total-df_2026-11-21.csv.gz``."""
    suffix = ".csv.gz" if compressed else ".csv"
    return f"{operation}_{day}{suffix}"


def state_operation(uf: str) -> str:
    return f"imunizacao-total-{uf.lower()}"


def municipality_operation(uf: str, ibge6: str) -> str:
    return f"imunizacao-total-{uf.lower()}-{ibge6}"
