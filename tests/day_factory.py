"""Small synthetic days for the partition/publish tests, built from the real sample
rows of the public file and varied with polars: establishments all over Brazil,
residents of the same municipality, of another municipality, of another UF, of
unknown residence (null, 999999/XX), foreigners, and residents whose UF is known
but whose municipality is not. Text with accents, ``;`` and ``"`` included, so
the CSV writer's quoting and encoding are exercised.

The days go through the real ``pipelines.extract.extract`` so the staging file is
exactly what the pipeline hands to partitioning (canonical order, counts in the
Parquet metadata).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from pipelines import contract, reference
from pipelines.extract import ExtractCounts, extract
from pipelines.sources.base import Source
from tests.conftest import FIXTURES

# Residence kinds and their shares of a day.
RESIDENCE_KINDS = {
    "same_municipio": 0.62,
    "other_municipio_same_uf": 0.16,
    "other_uf": 0.10,
    "unknown_999999": 0.03,
    "null": 0.03,
    "foreign": 0.02,
    "uf_only": 0.03,  # 999999 municipality but a real UF
    "uf_only_null_municipio": 0.01,
}

FANCY_NAMES = (
    'UBS "SÃO JOSÉ"; ANEXO',
    "POSTO DE SAÚDE JOÃO PESSOA",
    "CENTRO DE SAÚDE Nº 1",
    "UNIDADE BÁSICA D'ÁGUA",
)


def sample_rows() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "sample_pni_rotina_rows.csv", separator=";", infer_schema=False)


class FrameSource(Source):
    kind = "teste"

    def __init__(self, frames):
        self.frames = list(frames)

    def batches(self):
        yield from self.frames


def raw_day(day: dt.date, records: int, seed: int, *, invalid_share: float = 0.01) -> pl.DataFrame:
    """A raw day (contract.RAW_SCHEMA) of ``records`` rows."""
    rng = np.random.default_rng(seed)
    munis = sorted(reference.municipios().values(), key=lambda m: m.ibge6)
    ibge6 = np.array([m.ibge6 for m in munis])
    names = np.array([m.nome for m in munis])
    uf_of = np.array([m.uf for m in munis])
    # Skewed like population: a few big municipalities, a long tail.
    order = rng.permutation(len(munis))
    weights = 1.0 / (np.arange(len(munis)) + 8.0)
    weights = weights[np.argsort(order)]
    weights /= weights.sum()
    est = rng.choice(len(munis), size=records, p=weights)

    kinds = list(RESIDENCE_KINDS)
    kind = rng.choice(len(kinds), size=records, p=np.array(list(RESIDENCE_KINDS.values())))
    res = est.copy()
    by_uf: dict[str, np.ndarray] = {uf: np.flatnonzero(uf_of == uf) for uf in np.unique(uf_of)}
    other_same_uf = np.array([rng.choice(by_uf[uf_of[i]]) for i in est[kind == 1]], dtype=np.int64)
    res[kind == 1] = other_same_uf
    res[kind == 2] = rng.choice(len(munis), size=int((kind == 2).sum()), p=weights)

    ufs_ = sorted(reference.ufs())
    uf_names = {uf: reference.uf_nome_maiusculo(uf) for uf in ufs_}
    res_muni = ibge6[res].astype(object)
    res_name = names[res].astype(object)
    res_uf = uf_of[res].astype(object)
    res_pais = np.full(records, "10", dtype=object)
    res_pais_name = np.full(records, "BRASIL", dtype=object)
    unknown = kind == 3
    res_muni[unknown], res_uf[unknown], res_name[unknown] = "999999", "XX", None
    null = kind == 4
    res_muni[null], res_uf[null], res_name[null], res_pais[null], res_pais_name[null] = None, None, None, None, None
    foreign = kind == 5
    res_muni[foreign], res_uf[foreign], res_name[foreign] = None, "XX", None
    res_pais[foreign], res_pais_name[foreign] = "45", "ARGENTINA"
    uf_only = kind == 6
    res_muni[uf_only], res_name[uf_only] = "999999", None
    uf_only_null = kind == 7
    res_muni[uf_only_null], res_name[uf_only_null] = None, None

    base = sample_rows().head(1)
    docs = rng.permutation(records * 3)[:records]
    dose_labels = np.array(["1ª Dose", "2ª Dose", "Reforço", "Dose única", "Tratamento com três doses"])
    frame = base.select(pl.all().repeat_by(records).explode()) if records else base.clear()
    frame = frame.with_columns(
        pl.Series("co_documento", [f"{d:08x}-{seed:04x}-i0b0" for d in docs], dtype=pl.String),
        pl.Series("co_paciente", [f"{v:016x}" for v in rng.integers(0, 2**62, size=records)], dtype=pl.String),
        pl.Series("co_municipio_estabelecimento", ibge6[est], dtype=pl.String),
        pl.Series("no_municipio_estabelecimento", names[est], dtype=pl.String),
        pl.Series("sg_uf_estabelecimento", uf_of[est], dtype=pl.String),
        pl.Series("no_uf_estabelecimento", [uf_names[u] for u in uf_of[est]], dtype=pl.String),
        pl.Series("co_municipio_paciente", res_muni.tolist(), dtype=pl.String),
        pl.Series("no_municipio_paciente", res_name.tolist(), dtype=pl.String),
        pl.Series("sg_uf_paciente", res_uf.tolist(), dtype=pl.String),
        pl.Series("no_uf_paciente", [uf_names.get(u) for u in res_uf], dtype=pl.String),
        pl.Series("co_pais_paciente", res_pais.tolist(), dtype=pl.String),
        pl.Series("no_pais_paciente", res_pais_name.tolist(), dtype=pl.String),
        pl.Series("co_cnes_estabelecimento", [f"{v:07d}" for v in rng.integers(0, 9_999_999, size=records)], dtype=pl.String),
        pl.Series("no_fantasia_estalecimento", rng.choice(np.array(FANCY_NAMES), size=records), dtype=pl.String),
        pl.Series("ds_dose_vacina", rng.choice(dose_labels, size=records), dtype=pl.String),
        pl.Series("nu_idade_paciente", rng.integers(0, 100, size=records).astype(str), dtype=pl.String),
        pl.Series(
            "dt_vacina",
            [(day - dt.timedelta(days=int(v))).isoformat() for v in rng.integers(0, 20, size=records)],
            dtype=pl.String,
        ),
        pl.lit(day.isoformat()).alias("dt_entrada_rnds"),
        pl.Series("st_documento", np.where(rng.random(records) < 0.02, "entered-in-error", "final"), dtype=pl.String),
    )
    if invalid_share and records:
        bad = rng.random(records) < invalid_share
        frame = frame.with_columns(
            pl.when(pl.Series(bad))
            .then(pl.lit("12A45"))
            .otherwise(pl.col("co_cnes_estabelecimento"))
            .alias("co_cnes_estabelecimento")
        )
    return contract.conform_raw(frame)


def write_day(out: str | Path, day: dt.date, records: int, seed: int = 1, *, frame: pl.DataFrame | None = None) -> ExtractCounts:
    """Extract a synthetic (or given raw) day into a canonical staging Parquet."""
    out = Path(out)
    raw = raw_day(day, records, seed) if frame is None else frame
    chunks = [raw.slice(i, 50_000) for i in range(0, max(raw.height, 1), 50_000)]
    return extract(
        chunks,
        out,
        out.with_name(out.stem + ".rejects.parquet"),
        today=day + dt.timedelta(days=1),
        day=day,
        source=FrameSource(chunks),
    )
