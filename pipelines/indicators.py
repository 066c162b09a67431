"""Daily indicators per territory, computed while a day is partitioned.

One table per UF and day: doses counted once per record, by municipality of
occurrence (``perspectiva = ocorrencia``: the establishment's municipality) and
by municipality of residence (``perspectiva = residencia``; empty municipality
when only the UF of residence is known), × vaccine × dose × age band × sex.
Records ``entered-in-error`` or deleted (``dt_deletado_rnds`` filled) are not
doses and are left out. A municipality's indicators are its rows of its UF's
table (the portal filters them), so the territories' figures add up by
construction.

The places come from the same routing that puts the records in the files
(``pipelines.partition``), so "occurrence in SP" here is exactly "``ocorrencia``
or ``ambos`` in SP's file" there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from pipelines import csv_format, reference

OCORRENCIA = "ocorrencia"
RESIDENCIA = "residencia"
IGNORADA = "ignorada"

# Age bands (years): the lower bound of each band, and its label.
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "<1"),
    (1, "1-4"),
    (5, "5-9"),
    (10, "10-14"),
    (15, "15-19"),
    (20, "20-29"),
    (30, "30-39"),
    (40, "40-49"),
    (50, "50-59"),
    (60, "60-69"),
    (70, "70-79"),
    (80, "80+"),
)

KEY_COLUMNS = ("co_vacina", "sg_vacina", "co_dose_vacina", "ds_dose_vacina", "faixa_etaria", "tp_sexo_paciente")
COLUMNS = (
    "dt_entrada_rnds",
    "sg_uf",
    "perspectiva",
    "co_municipio",
    "no_municipio",
    *KEY_COLUMNS,
    "qt_doses",
)
SCHEMA: dict[str, pl.DataType] = {
    "dt_entrada_rnds": pl.Date(),
    "sg_uf": pl.String(),
    "perspectiva": pl.String(),
    "co_municipio": pl.String(),
    "no_municipio": pl.String(),
    **{name: pl.String() for name in KEY_COLUMNS},
    "qt_doses": pl.Int64(),
}
DESCRIPTIONS = {
    "dt_entrada_rnds": "Dia de entrada dos registros na RNDS (o dia do arquivo)",
    "sg_uf": "UF do território da tabela",
    "perspectiva": "ocorrencia: contado no município do estabelecimento; residencia: no município de residência do paciente",
    "co_municipio": "Código IBGE (6 dígitos) do município; vazio na residência quando só a UF é conhecida",
    "no_municipio": "Nome do município",
    "co_vacina": "Código do imunobiológico",
    "sg_vacina": "Sigla do imunobiológico",
    "co_dose_vacina": "Código da dose",
    "ds_dose_vacina": "Descrição da dose",
    "faixa_etaria": "Faixa de idade do paciente em anos (<1, 1-4, ..., 80+; ignorada quando a idade não é legível)",
    "tp_sexo_paciente": "Sexo biológico do paciente (M, F, I; vazio quando não informado)",
    "qt_doses": "Doses aplicadas: registros final não excluídos, cada um contado uma vez por perspectiva",
}

_BAND_BOUNDS = np.array([lower for lower, _ in AGE_BANDS[1:]], dtype=np.int64)
_BAND_LABELS = [label for _, label in AGE_BANDS]


def age_band(ages: pl.Series) -> pl.Series:
    """The age band label of each ``nu_idade_paciente`` (``ignorada`` when unreadable)."""
    years = ages.cast(pl.Int64, strict=False)
    valid = (years.is_not_null() & (years >= 0) & (years < 200)).fill_null(False).to_numpy()
    values = years.fill_null(-1).to_numpy()
    labels = np.array(_BAND_LABELS + [IGNORADA], dtype=object)
    index = np.where(valid, np.searchsorted(_BAND_BOUNDS, values, side="right"), len(_BAND_LABELS))
    return pl.Series("faixa_etaria", labels[index], dtype=pl.String)


class Accumulator:
    """Counts of a day's doses by (place of occurrence, place of residence, keys),
    added batch by batch. Places are partition target ids (``-1``: none)."""

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame, est_t: np.ndarray, res_t: np.ndarray, est_u: np.ndarray, res_u: np.ndarray) -> None:
        doses = ((frame["st_documento"] == "final").fill_null(False) & frame["dt_deletado_rnds"].is_null()).to_numpy()
        if not doses.any():
            return
        keys = pl.DataFrame(
            {
                "est_t": est_t,
                "res_t": res_t,
                "est_u": est_u,
                "res_u": res_u,
                **{name: frame[name] for name in KEY_COLUMNS if name != "faixa_etaria"},
                "faixa_etaria": age_band(frame["nu_idade_paciente"]),
            }
        ).filter(pl.Series(doses))
        self.parts.append(keys.group_by(keys.columns, maintain_order=False).agg(pl.len().cast(pl.Int64).alias("n")))
        if len(self.parts) >= 32:
            self.parts = [self._merged()]

    def _merged(self) -> pl.DataFrame:
        if not self.parts:
            return pl.DataFrame(
                schema={
                    "est_t": pl.Int64,
                    "res_t": pl.Int64,
                    "est_u": pl.Int64,
                    "res_u": pl.Int64,
                    **{name: pl.String for name in KEY_COLUMNS},
                    "n": pl.Int64,
                }
            )
        frame = pl.concat(self.parts, how="vertical_relaxed")
        return frame.group_by([c for c in frame.columns if c != "n"]).agg(pl.col("n").sum())

    def tables(self, day: dt.date, targets, ufs: list[str]) -> dict[str, pl.DataFrame]:
        """The indicator table of each UF in ``ufs`` (``targets``: partition targets, by index)."""
        merged = self._merged()
        ibge6 = {t.index: t.ibge6 for t in targets if t.ibge6 is not None}
        uf_of_index = {t.index: t.uf for t in targets if t.ibge6 is None}
        names = {m.ibge6: m.nome for m in reference.municipios().values()}
        result = {}
        for uf in ufs:
            uf_index = next(i for i, u in uf_of_index.items() if u == uf)
            occurrence = (
                merged.filter(pl.col("est_u") == uf_index)
                .group_by(["est_t", *KEY_COLUMNS])
                .agg(pl.col("n").sum())
                .rename({"est_t": "place"})
                .with_columns(pl.lit(OCORRENCIA).alias("perspectiva"))
            )
            residence = (
                merged.filter(pl.col("res_u") == uf_index)
                .group_by(["res_t", *KEY_COLUMNS])
                .agg(pl.col("n").sum())
                .rename({"res_t": "place"})
                .with_columns(pl.lit(RESIDENCIA).alias("perspectiva"))
            )
            table = pl.concat([occurrence, residence], how="vertical_relaxed")
            codes = table["place"].replace_strict(ibge6, default=None, return_dtype=pl.String)
            table = table.with_columns(
                pl.lit(day).alias("dt_entrada_rnds"),
                pl.lit(uf).alias("sg_uf"),
                codes.alias("co_municipio"),
                codes.replace_strict(names, default=None, return_dtype=pl.String).alias("no_municipio"),
                pl.col("n").alias("qt_doses"),
            )
            result[uf] = table.select(COLUMNS).sort(["perspectiva", "co_municipio", *KEY_COLUMNS], nulls_last=True)
        return result


@dataclass(frozen=True)
class WrittenTable:
    kind: str
    file_name: str
    path: Path
    rows: int
    bytes: int
    sha256: str
    content_type: str


def write(table: pl.DataFrame, directory: Path, stem: str) -> list[WrittenTable]:
    """The table as CSV (the published CSV conventions: BOM, ``;``) and as Parquet (zstd)."""
    csv_path = directory / f"{stem}.csv"
    with open(csv_path, "wb") as out:
        out.write(csv_format.BOM)
        table.write_csv(out, separator=csv_format.SEPARATOR, line_terminator="\n", date_format=csv_format.DATE_FORMAT)
    parquet_path = directory / f"{stem}.parquet"
    pq.write_table(table.to_arrow(), parquet_path, compression="zstd")
    return [
        _written("indicadores.csv", csv_path, table.height, csv_format.CONTENT_TYPE_CSV),
        _written("indicadores.parquet", parquet_path, table.height, PARQUET_CONTENT_TYPE),
    ]


PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def _written(kind: str, path: Path, rows: int, content_type: str) -> WrittenTable:
    data = path.read_bytes()
    return WrittenTable(kind, path.name, path, rows, len(data), hashlib.sha256(data).hexdigest(), content_type)
