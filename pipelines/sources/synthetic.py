"""The synthetic source: a realistic RNDS entry day, the embedded default.

``SyntheticSource(day, records, seed)`` yields raw frames (``contract.RAW_SCHEMA``)
for one entry day: every record has ``dt_entrada_rnds == day``. The same
(day, records, seed) gives the same records, whatever ``batch_size``: records are
made in fixed blocks of ``BLOCK_SIZE``, each from its own random stream, and the
per-record facts the tests need to recompute (document id, deliberate
corruption, repairable defect) are pure hash functions of the record's index.

What a day looks like:

- residents of all 5,571 municipalities, weighted by the IBGE Censo 2022
  population (``reference.populacao()``); about 10% vaccinated outside their
  municipality (about 2% outside their UF: a neighbour or a popular
  destination), 0.5% with unknown residence (``999999``/``XX``);
- synthetic CNES establishments per municipality (``synthetic_establishments``),
  more of them where more people live: UBS, UPA, hospitals, private clinics,
  the state CRIE in capitals, the municipal health secretariat;
- real RNDS codes (vaccine, dose, site, route, strategy, attendance group),
  vaccines and groups consistent with the patient's age, patients with
  several doses in the same visit, lots clustered by UF;
- late records (``dt_vacina`` days to years before the entry day), corrections
  (``co_troca_documento`` naming a document of an earlier day as this
  generator makes it with the same records and seed), ``entered-in-error`` and
  deleted records;
- about 0.4% deliberately invalid records (``invalid_records``), which
  validation must quarantine, and 3% valid records carrying the public files'
  defects (``defective_records``: codes written as floats, lost leading zeros
  (with the age as a float),
  7-digit IBGE codes, stray case/space/line breaks, dd/mm/yyyy dates), which
  validation must repair.

``co_documento`` is strictly ascending over the whole day (its first 48 bits
are the record's slice of the id space), so the staging file is canonical as
written.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, ClassVar, Final, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines import contract, reference
from pipelines.cnes import NATUREZAS, TIPOS_UNIDADE, public_name
from pipelines.sources.base import Source

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

# The unit records are made in: fixed, so that batch_size never changes the data.
BLOCK_SIZE: Final = 1 << 16

P_INVALID: Final = 0.004
P_DEFECT: Final = 0.03
P_UNKNOWN_RESIDENCE: Final = 0.005
P_OUTSIDE_MUNICIPALITY: Final = 0.10  # includes the ones outside their UF
P_OUTSIDE_UF: Final = 0.02
P_CORRECTION: Final = 0.01
P_ENTERED_IN_ERROR: Final = 0.003
P_DELETED: Final = 0.002
P_FOREIGN: Final = 0.003
# Patients living abroad (co_pais_paciente other than 10): residence unknown here.
P_ABROAD: Final = 0.002
# Doses whose origin system recorded neither site nor route: the public files write
# 0 / "Sem registro no sistema de informação de origem" for both (real row of
# tests/fixtures/sample_pni_rotina_rows.csv, ESUS APS offline).
P_NOT_RECORDED: Final = 0.04
NOT_RECORDED_CODE: Final = "0"
NOT_RECORDED_NAME: Final = "Sem registro no sistema de informação de origem"
# Countries of residence abroad. Only 10 = BRASIL is attested in the public rows;
# these codes are illustrative (the public dictionary does not list the code system).
_COUNTRIES_ABROAD: Final[tuple[tuple[str, str], ...]] = (
    ("45", "ARGENTINA"),
    ("200", "PARAGUAI"),
    ("239", "URUGUAI"),
    ("81", "BOLIVIA"),
    ("249", "VENEZUELA"),
    ("190", "PORTUGAL"),
    ("77", "ESTADOS UNIDOS"),
)
MAX_LAG_DAYS: Final = 1095

# Deliberate corruptions: each must send its record to quarantine.
INVALID_KINDS: Final[tuple[str, ...]] = (
    "municipio_estabelecimento_inexistente",
    "municipio_estabelecimento_desconhecido",
    "uf_estabelecimento_trocada",
    "municipio_paciente_inexistente",
    "uf_paciente_trocada",
    "uf_paciente_inexistente",
    "cnes_malformado",
    "dt_vacina_ilegivel",
    "dt_vacina_futura",
    "dt_vacina_antiga",
    "st_documento_desconhecido",
    "campo_obrigatorio_vazio",
    "dt_deletado_ilegivel",
)
# The required fields a corruption may empty (co_documento and dt_entrada_rnds
# stay: the day's order and the day itself are not the point of these records).
EMPTIED_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in contract.REQUIRED_COLUMNS if name not in ("co_documento", "dt_entrada_rnds")
)
# The public files' defects: each record carrying one must come out repaired.
DEFECT_KINDS: Final[tuple[str, ...]] = (
    "codigos_float",
    "zeros_perdidos",
    "ibge7",
    "texto_sujo",
    "data_brasileira",
)

_MASK64: Final = (1 << 64) - 1
_ALMOST_ONE: Final = 1.0 - 1e-12


# ---------------------------------------------------------------- hashing


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 in, uint64 out, wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Independent hash streams of a record index.
_DOC_SLICE, _DOC_VERSION, _DOC_TAIL, _FATE, _VARIANT = range(5)


def _counter_hash(seed: int, day_ordinal, stream: int, index: np.ndarray) -> np.ndarray:
    """A 64-bit hash of (seed, day, stream, record index), vectorised."""
    with np.errstate(over="ignore"):
        seed_key = _mix(np.array([seed & _MASK64], dtype=np.uint64) + _GOLDEN * np.uint64(stream + 1))
        key = _mix(seed_key ^ np.asarray(day_ordinal, dtype=np.uint64))
        return _mix(key + (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)


def _uniform(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ---------------------------------------------------------------- fixed-width text


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex(raw: np.ndarray) -> np.ndarray:
    """(n, k) bytes → (n, 2k) lower-case hex characters."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _strings(chars: np.ndarray, name: str = "") -> pl.Series:
    """(n, w) ASCII characters → a String series of n values of width w (no Python loop)."""
    n, width = chars.shape
    data = np.ascontiguousarray(chars).reshape(-1)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.Series(name, array, dtype=pl.String)


def _document_ids(seed: int, day_ordinal, index: np.ndarray, records: int) -> pl.Series:
    """``<uuid4>-i0b0`` ids, strictly ascending in ``index`` for a day: the first 48 bits
    are the index's own slice of the id space, the rest is hash noise."""
    index = np.asarray(index, dtype=np.int64)
    width = np.uint64((1 << 48) // max(records, 1))
    with np.errstate(over="ignore"):
        start = index.astype(np.uint64) * width
        high48: np.ndarray = start + _counter_hash(seed, day_ordinal, _DOC_SLICE, index) % width
        version = _counter_hash(seed, day_ordinal, _DOC_VERSION, index) & np.uint64(0x0FFF)
        word0 = (high48 << np.uint64(16)) | np.uint64(0x4000) | version
        word1 = np.uint64(0x8000000000000000) | (_counter_hash(seed, day_ordinal, _DOC_TAIL, index) >> np.uint64(2))
    raw = np.stack([word0, word1], axis=1).astype(">u8").view(np.uint8).reshape(-1, 16)
    hexed = _hex(raw)
    out = np.empty((len(index), 41), dtype=np.uint8)
    out[:, 0:8] = hexed[:, 0:8]
    out[:, 9:13] = hexed[:, 8:12]
    out[:, 14:18] = hexed[:, 12:16]
    out[:, 19:23] = hexed[:, 16:20]
    out[:, 24:36] = hexed[:, 20:32]
    out[:, [8, 13, 18, 23]] = ord("-")
    out[:, 36:41] = np.frombuffer(b"-i0b0", dtype=np.uint8)
    return _strings(out, "co_documento")


def _fates(seed: int, day_ordinal: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record: invalid kind (-1 none), defect kind (-1 none), variant (0..23).
    A record is never both invalid and defective."""
    u = _uniform(_counter_hash(seed, day_ordinal, _FATE, index))
    invalid = np.where(
        u < P_INVALID, np.minimum((u / P_INVALID * len(INVALID_KINDS)).astype(np.int64), len(INVALID_KINDS) - 1), -1
    )
    v = (u - P_INVALID) / P_DEFECT
    defect = np.where(
        (u >= P_INVALID) & (v < 1.0), np.minimum((v * len(DEFECT_KINDS)).astype(np.int64), len(DEFECT_KINDS) - 1), -1
    )
    variant = (_counter_hash(seed, day_ordinal, _VARIANT, index) % np.uint64(24)).astype(np.int64)
    return invalid.astype(np.int8), defect.astype(np.int8), variant


def _invalid_label(kind: int, variant: int) -> str:
    name = INVALID_KINDS[kind]
    if name == "campo_obrigatorio_vazio":
        return f"{name}:{EMPTIED_FIELDS[variant % len(EMPTIED_FIELDS)]}"
    return name


def _flagged(seed: int, day: dt.date, records: int, which: str) -> pl.DataFrame:
    chunks = []
    labels_invalid = np.array([[_invalid_label(k, v) for v in range(24)] for k in range(len(INVALID_KINDS))], dtype=object)
    for start in range(0, records, BLOCK_SIZE):
        index = np.arange(start, min(start + BLOCK_SIZE, records), dtype=np.int64)
        invalid, defect, variant = _fates(seed, day.toordinal(), index)
        kind = invalid if which == "invalid" else defect
        chosen = np.flatnonzero(kind >= 0)
        if not len(chosen):
            continue
        if which == "invalid":
            labels = labels_invalid[kind[chosen], variant[chosen]].tolist()
        else:
            labels = [DEFECT_KINDS[k] for k in kind[chosen]]
        chunks.append(
            pl.DataFrame(
                {
                    "co_documento": _document_ids(seed, day.toordinal(), index[chosen], records),
                    "tipo": pl.Series(labels, dtype=pl.String),
                }
            )
        )
    if not chunks:
        return pl.DataFrame(schema={"co_documento": pl.String, "tipo": pl.String})
    return pl.concat(chunks)


def invalid_records(day: dt.date, records: int, seed: int = 2026) -> pl.DataFrame:
    """The records the synthetic day corrupts on purpose (``co_documento``, ``tipo``),
    recomputed from the hashes alone (no record is generated). Validation must
    quarantine exactly these."""
    return _flagged(seed, day, records, "invalid")


def defective_records(day: dt.date, records: int, seed: int = 2026) -> pl.DataFrame:
    """The valid records carrying one of the public files' defects (``co_documento``,
    ``tipo`` in ``DEFECT_KINDS``); validation must repair them."""
    return _flagged(seed, day, records, "defect")


# ---------------------------------------------------------------- weighted choice


class _Choice:
    """Vectorised weighted choice among K options, one weight row per context."""

    def __init__(self, weights) -> None:
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if (w < 0).any() or not (w.sum(axis=1) > 0).all():
            raise ValueError("pesos inválidos na geração sintética")
        cum = np.cumsum(w, axis=1)
        cum /= cum[:, -1:]
        cum[:, -1] = 1.0
        self.rows, self.k = w.shape
        self._flat = (cum + np.arange(self.rows)[:, None]).ravel()

    def sample(self, u: np.ndarray, rows: np.ndarray | int = 0) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        x = rows + np.minimum(u, _ALMOST_ONE)
        index = np.searchsorted(self._flat, x, side="right") - rows * self.k
        return np.minimum(index, self.k - 1)


def _gather(values: pl.Series, index: np.ndarray, name: str) -> pl.Series:
    return values.gather(index).alias(name)


# ---------------------------------------------------------------- geography

# The main CEP range of each UF (first 5 digits).
_CEP_RANGES: Final[dict[str, tuple[int, int]]] = {
    "SP": (1000, 19999), "RJ": (20000, 28999), "ES": (29000, 29999), "MG": (30000, 39999),
    "BA": (40000, 48999), "SE": (49000, 49999), "PE": (50000, 56999), "AL": (57000, 57999),
    "PB": (58000, 58999), "RN": (59000, 59999), "CE": (60000, 63999), "PI": (64000, 64999),
    "MA": (65000, 65999), "PA": (66000, 68899), "AP": (68900, 68999), "AM": (69000, 69299),
    "RR": (69300, 69399), "AC": (69900, 69999), "DF": (70000, 72799), "GO": (74000, 76799),
    "TO": (77000, 77999), "MT": (78000, 78899), "RO": (76800, 76999), "MS": (79000, 79999),
    "PR": (80000, 87999), "SC": (88000, 89999), "RS": (90000, 99999),
}  # fmt: skip

_NEIGHBOURS: Final[dict[str, tuple[str, ...]]] = {
    "AC": ("AM", "RO"), "AL": ("PE", "SE", "BA"), "AP": ("PA",), "AM": ("AC", "RO", "MT", "PA", "RR"),
    "BA": ("SE", "AL", "PE", "PI", "TO", "GO", "MG", "ES"), "CE": ("RN", "PB", "PE", "PI"),
    "DF": ("GO", "MG"), "ES": ("BA", "MG", "RJ"), "GO": ("DF", "MG", "BA", "TO", "MT", "MS"),
    "MA": ("PI", "TO", "PA"), "MT": ("RO", "AM", "PA", "TO", "GO", "MS"), "MS": ("MT", "GO", "MG", "SP", "PR"),
    "MG": ("SP", "RJ", "ES", "BA", "GO", "DF", "MS"), "PA": ("AP", "AM", "RR", "MT", "TO", "MA"),
    "PB": ("RN", "CE", "PE"), "PR": ("SP", "MS", "SC"), "PE": ("PB", "CE", "PI", "BA", "AL"),
    "PI": ("MA", "CE", "PE", "BA", "TO"), "RJ": ("ES", "MG", "SP"), "RN": ("CE", "PB"), "RS": ("SC",),
    "RO": ("AC", "AM", "MT"), "RR": ("AM", "PA"), "SC": ("PR", "RS"), "SP": ("MG", "RJ", "PR", "MS"),
    "SE": ("AL", "BA"), "TO": ("MA", "PI", "BA", "GO", "MT", "PA"),
}  # fmt: skip
# Where people travel to get vaccinated besides the neighbours (work, study, holidays).
_POPULAR_DESTINATIONS: Final[dict[str, float]] = {
    "SP": 1.5,
    "RJ": 0.8,
    "DF": 0.6,
    "SC": 0.6,
    "MG": 0.4,
    "GO": 0.3,
    "BA": 0.3,
    "PE": 0.2,
    "CE": 0.2,
}


@dataclass(frozen=True)
class _Geography:
    count: int  # municipalities; index ``count`` is "unknown residence"
    ibge6: pl.Series
    ibge7_by_ibge6: dict[str, str]
    nome: pl.Series
    uf: pl.Series
    uf_nome: pl.Series
    uf_index: np.ndarray
    uf_codes: tuple[str, ...]
    uf_first: np.ndarray
    uf_last: np.ndarray
    residence: _Choice
    hub_cum: np.ndarray
    uf_hub_low: np.ndarray
    uf_hub_high: np.ndarray
    uf_largest: np.ndarray
    uf_second: np.ndarray
    destination: _Choice
    cep_start: np.ndarray
    cep_span: np.ndarray
    population: np.ndarray
    capital: np.ndarray


@functools.cache
def _geography() -> _Geography:
    munis = sorted(reference.municipios().values(), key=lambda m: m.ibge6)
    populacao = reference.populacao()
    missing = [m.ibge6 for m in munis if m.ibge6 not in populacao]
    if missing:
        raise LookupError(f"população ausente para {len(missing)} municípios (ex.: {missing[0]})")
    population = np.array([populacao[m.ibge6] for m in munis], dtype=np.float64)
    capital = np.array([m.capital for m in munis])
    uf_codes = tuple(sorted(reference.ufs(), key=lambda uf: reference.ufs()[uf].codigo))
    uf_position = {uf: i for i, uf in enumerate(uf_codes)}
    uf_index = np.array([uf_position[m.uf] for m in munis], dtype=np.int64)
    count = len(munis)
    uf_first = np.array([np.flatnonzero(uf_index == u)[0] for u in range(len(uf_codes))])
    uf_last = np.array([np.flatnonzero(uf_index == u)[-1] for u in range(len(uf_codes))])

    # Destinations inside a UF favour its hubs (the capital, regional centres).
    hub_cum = np.cumsum(population**1.3)
    hub_before = np.concatenate([[0.0], hub_cum])
    uf_hub_low = hub_before[uf_first]
    uf_hub_high = hub_cum[uf_last]
    uf_largest = np.empty(len(uf_codes), dtype=np.int64)
    uf_second = np.empty(len(uf_codes), dtype=np.int64)
    for u in range(len(uf_codes)):
        members = np.flatnonzero(uf_index == u)
        ranked = members[np.argsort(-population[members], kind="stable")]
        uf_largest[u] = ranked[0]
        uf_second[u] = ranked[1] if len(ranked) > 1 else ranked[0]

    uf_population = np.bincount(uf_index, weights=population, minlength=len(uf_codes))
    dest = np.zeros((len(uf_codes), len(uf_codes)))
    for origin, u in uf_position.items():
        for neighbour in _NEIGHBOURS[origin]:
            dest[u, uf_position[neighbour]] += math.sqrt(uf_population[uf_position[neighbour]] / 1e6)
        for popular, weight in _POPULAR_DESTINATIONS.items():
            dest[u, uf_position[popular]] += weight
        dest[u, u] = 0.0

    # CEPs: each UF's range split among its municipalities (capital first), by sqrt(population).
    cep_start = np.zeros(count, dtype=np.int64)
    cep_span = np.ones(count, dtype=np.int64)
    for uf, u in uf_position.items():
        members = np.flatnonzero(uf_index == u)
        members = members[np.lexsort((members, ~capital[members]))]
        low, high = _CEP_RANGES[uf]
        share = np.sqrt(population[members])
        bounds = low + np.floor(np.concatenate([[0.0], np.cumsum(share)]) / share.sum() * (high - low + 1)).astype(np.int64)
        cep_start[members] = bounds[:-1]
        cep_span[members] = np.maximum(bounds[1:] - bounds[:-1], 1)

    def with_unknown(values: list, unknown) -> pl.Series:
        return pl.Series([*values, unknown], dtype=pl.String)

    return _Geography(
        count=count,
        ibge6=with_unknown([m.ibge6 for m in munis], contract.UNKNOWN_MUNICIPIO),
        ibge7_by_ibge6={m.ibge6: m.ibge7 for m in munis},
        nome=with_unknown([public_name(m.nome) for m in munis], None),
        uf=with_unknown([m.uf for m in munis], contract.UNKNOWN_UF),
        # Place names as the public files write them, UF names included: upper case
        # without accents (SAQUAREMA, CHAPECO, RIO DE JANEIRO in the real rows).
        uf_nome=with_unknown([public_name(reference.uf_nome_maiusculo(m.uf)) for m in munis], None),
        uf_index=uf_index,
        uf_codes=uf_codes,
        uf_first=uf_first,
        uf_last=uf_last,
        residence=_Choice(population),
        hub_cum=hub_cum,
        uf_hub_low=uf_hub_low,
        uf_hub_high=uf_hub_high,
        uf_largest=uf_largest,
        uf_second=uf_second,
        destination=_Choice(dest),
        cep_start=cep_start,
        cep_span=cep_span,
        population=population,
        capital=capital,
    )


def _hub_in_uf(geo: _Geography, uf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A municipality of each UF, weighted towards its hubs."""
    x = geo.uf_hub_low[uf] + u * (geo.uf_hub_high[uf] - geo.uf_hub_low[uf])
    index = np.searchsorted(geo.hub_cum, x, side="right")
    return np.clip(index, geo.uf_first[uf], geo.uf_last[uf])


# ---------------------------------------------------------------- establishments

# Profiles: what kind of place vaccinates; the vaccine mix depends on it.
_SECRETARIA, _UBS, _UPA, _HOSPITAL, _CLINICA, _CRIE = range(6)
# Vaccine-mix class of each profile: public primary care, emergency, hospital, CRIE, private.
_PROFILE_CLASS: Final = np.array([0, 0, 1, 2, 4, 3])
_PROFILE_WEIGHT: Final = np.array([0.3, 1.0, 0.35, 0.4, 0.5, 1.0])

_BAIRROS: Final[tuple[str, ...]] = (
    "CENTRO", "VILA NOVA", "JARDIM AMERICA", "SAO JOSE", "SANTA LUCIA", "BELA VISTA", "PARQUE DAS FLORES",
    "SAO FRANCISCO", "NOSSA SENHORA APARECIDA", "SANTO ANTONIO", "VILA MARIA", "JARDIM PRIMAVERA",
    "CIDADE NOVA", "ALTO DA BOA VISTA", "BOM JESUS", "SAO CRISTOVAO", "SANTA CRUZ", "PLANALTO",
    "INDUSTRIAL", "ESPLANADA", "VILA OPERARIA", "JARDIM EUROPA", "PROGRESSO", "LIBERDADE",
    "NOVO HORIZONTE", "BOA ESPERANCA", "SAO PEDRO", "SAO JOAO", "SANTA RITA", "VILA RICA", "JACONE",
    "MORADA DO SOL", "SOL NASCENTE", "DOM BOSCO", "VILA ESPERANCA", "CRUZEIRO", "PARAISO", "ALVORADA",
    "PRIMEIRO DE MAIO", "25 DE AGOSTO", "JARDIM DAS PALMEIRAS", "MARIA DAS DORES DE PAULA",
    "DR JOSE CARLOS DE OLIVEIRA", "ANTONIO RODRIGUES DOURADO", "TUFIC MIZAEL SAADY", "ZONA RURAL",
    "DISTRITO DE SANTA LUZIA", "VILA DOS PESCADORES", "CONJUNTO HABITACIONAL", "JARDIM SAO PAULO",
    "VILA MILITAR", "SANTA TEREZINHA", "NOVA BRASILIA", "ITAPUA", "MONTE CASTELO", "PONTE ALTA",
    "RIO BRANCO", "BARRA", "LAGOA SECA", "VARZEA",
)  # fmt: skip
_CLINICAS: Final[tuple[str, ...]] = (
    "IMUNIZAR", "VACINAR", "PROTEGER", "SAUDE PLENA", "BEM ESTAR", "VIDA", "IMUNOCENTER", "IMUNE",
    "PREVINE", "CUIDAR", "CRESCER", "PEDIATRICA", "FAMILIA", "IMUNOLIFE", "VACCINI",
)  # fmt: skip
_UBS_PREFIXES: Final[tuple[str, ...]] = ("UBS", "UNIDADE BASICA DE SAUDE", "ESF", "USF", "CENTRO DE SAUDE", "POSTO DE SAUDE")
_UBS_PREFIX_WEIGHTS: Final = (0.35, 0.15, 0.2, 0.12, 0.1, 0.08)
_RAZAO_MUNICIPAL: Final[tuple[str, ...]] = (
    "SECRETARIA MUNICIPAL DE SAUDE DE ",
    "PREFEITURA MUNICIPAL DE ",
    "MUNICIPIO DE ",
    "FUNDO MUNICIPAL DE SAUDE DE ",
)

# Source systems: 18602 and 40114 as in the public files; the other codes are illustrative.
_SISTEMAS: Final[tuple[tuple[str, str], ...]] = (
    ("18602", "ESUS APS - NACIONAL (OFFLINE)"),
    ("18601", "ESUS APS - NACIONAL (ONLINE)"),
    ("40114", "IDS Saude"),
    ("40120", "CELK SAUDE"),
    ("40133", "G-MUS"),
    ("15580", "Novo PNI"),
    ("29320", "VACIVIDA"),  # the São Paulo state system
)
# Weights per vaccine-mix class (public, emergency, hospital, CRIE, private).
_SISTEMA_WEIGHTS: Final = (
    (0.45, 0.2, 0.08, 0.08, 0.07, 0.12, 0.0),
    (0.3, 0.1, 0.05, 0.05, 0.0, 0.5, 0.0),
    (0.2, 0.1, 0.05, 0.05, 0.0, 0.6, 0.0),
    (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    (0.0, 0.0, 0.3, 0.0, 0.0, 0.7, 0.0),
)


@dataclass(frozen=True)
class _Establishments:
    frame: pl.DataFrame  # the public table (pipelines.cnes layout)
    municipio: np.ndarray  # municipality index of each establishment
    profile: np.ndarray
    cum: np.ndarray  # cumulative selection weight, grouped by municipality
    muni_low: np.ndarray
    muni_high: np.ndarray
    muni_first: np.ndarray
    muni_last: np.ndarray
    columns: dict[str, pl.Series]  # raw-record columns, one value per establishment


def _cnpj(rng: np.random.Generator, n: int) -> pl.Series:
    """n CNPJs (head office, valid check digits)."""
    digits = np.zeros((n, 14), dtype=np.int64)
    digits[:, :8] = rng.integers(0, 10, size=(n, 8))
    digits[:, 8:12] = (0, 0, 0, 1)
    for position, weights in ((12, (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)), (13, (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))):
        rest = (digits[:, :position] * np.array(weights)).sum(axis=1) % 11
        digits[:, position] = np.where(rest < 2, 0, 11 - rest)
    return _strings((digits + ord("0")).astype(np.uint8))


def _roman(n: int) -> str:
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, letters in numerals:
        while n >= value:
            out += letters
            n -= value
    return out


@functools.cache
def _shipped_cnes_codes() -> frozenset[str]:
    """Real CNES codes of the shipped table: synthetic codes never reuse them."""
    path = resources.files("pipelines") / "data" / "cnes_estabelecimentos.csv"
    if not path.is_file():
        return frozenset()
    with path.open("r", encoding="utf-8") as handle:
        frame = pl.read_csv(handle.read().encode(), separator=";", infer_schema=False, columns=["CO_CNES"])
    return frozenset(frame["CO_CNES"].to_list())


@functools.cache
def _establishments(seed: int) -> _Establishments:
    geo = _geography()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & _MASK64, 0xE57AB])))
    pop = geo.population
    counts = np.stack(
        [
            np.ones(geo.count, dtype=np.int64),
            np.maximum(1, np.round((pop / 3500) ** 0.85)).astype(np.int64),
            np.where(pop >= 50_000, 1 + pop // 400_000, 0).astype(np.int64),
            np.where(pop >= 15_000, 1 + pop // 300_000, 0).astype(np.int64),
            np.where(pop >= 80_000, np.maximum(1, pop // 120_000), 0).astype(np.int64),
            geo.capital.astype(np.int64),
        ]
    )
    municipio = np.concatenate([np.repeat(np.arange(geo.count), counts[p]) for p in range(6)])
    profile = np.concatenate([np.full(counts[p].sum(), p) for p in range(6)])
    ordinal = np.concatenate(
        [np.arange(counts[p].sum()) - np.repeat(np.cumsum(counts[p]) - counts[p], counts[p]) for p in range(6)]
    )
    order = np.lexsort((ordinal, profile, municipio))
    municipio, profile, ordinal = municipio[order], profile[order], ordinal[order]
    n = len(municipio)

    # Unique 7-digit CNES codes, leading digit distributed like the real ones.
    first = rng.choice(np.array([0, 2, 3, 5, 6, 7, 9]), size=3 * n, p=[0.1, 0.3, 0.1, 0.1, 0.12, 0.18, 0.1])
    candidates = first * 1_000_000 + rng.integers(0, 1_000_000, size=3 * n)
    _, first_seen = np.unique(candidates, return_index=True)
    candidates = candidates[np.sort(first_seen)]
    shipped = np.array([int(code) for code in _shipped_cnes_codes()], dtype=np.int64)
    candidates = candidates[~np.isin(candidates, shipped)][:n]
    cnes = pl.Series(candidates).cast(pl.String).str.zfill(7)

    muni_style = rng.integers(0, len(_RAZAO_MUNICIPAL), size=geo.count)
    muni_name = geo.nome.gather(municipio)
    uf_idx = geo.uf_index[municipio]
    uf_name_ascii = pl.Series([public_name(reference.ufs()[uf].nome) for uf in geo.uf_codes]).gather(uf_idx)
    bairro_index = (ordinal * 7 + municipio) % len(_BAIRROS)
    suffix = pl.Series(["" if k == 0 else " " + _roman(k + 1) for k in range(n // len(_BAIRROS) + 2)]).gather(
        ordinal // len(_BAIRROS)
    )
    bairro = pl.Series(_BAIRROS).gather(bairro_index) + suffix
    ubs_prefix_index = rng.choice(len(_UBS_PREFIXES), size=n, p=_UBS_PREFIX_WEIGHTS)
    hospital_santa_casa = rng.random(n) < 0.5
    clinic = pl.Series(_CLINICAS).gather((ordinal * 5 + municipio) % len(_CLINICAS)) + suffix

    frame = pl.DataFrame(
        {
            "profile": profile,
            "ordinal": ordinal,
            "muni": muni_name,
            "uf_nome_ascii": uf_name_ascii,
            "razao_municipal": pl.Series(_RAZAO_MUNICIPAL).gather(muni_style[municipio]) + muni_name,
            "bairro": bairro,
            "ubs_prefix": pl.Series(_UBS_PREFIXES).gather(ubs_prefix_index),
            "santa_casa": hospital_santa_casa,
            "clinica": clinic,
        }
    )
    p, c = pl.col("profile"), pl.col
    secretaria = pl.lit("SECRETARIA MUNICIPAL DE SAUDE DE ") + c("muni")
    frame = frame.with_columns(
        pl.when(p == _SECRETARIA).then(secretaria)
        .when(p == _UBS).then(c("ubs_prefix") + " " + c("bairro"))
        .when(p == _UPA).then(pl.lit("UNIDADE DE PRONTO ATENDIMENTO UPA 24H") + pl.when(c("ordinal") > 0).then(" " + c("bairro")).otherwise(pl.lit("")))
        .when((p == _HOSPITAL) & c("santa_casa") & (c("ordinal") == 0)).then(pl.lit("SANTA CASA DE MISERICORDIA DE ") + c("muni"))
        .when((p == _HOSPITAL) & (c("ordinal") == 0)).then(pl.lit("HOSPITAL MUNICIPAL DE ") + c("muni"))
        .when(p == _HOSPITAL).then(pl.lit("HOSPITAL ") + c("bairro"))
        .when(p == _CLINICA).then(pl.lit("CLINICA DE VACINAS ") + c("clinica"))
        .otherwise(pl.lit("CRIE CENTRO DE REFERENCIA PARA IMUNOBIOLOGICOS ESPECIAIS DE ") + c("muni"))
        .alias("fantasia"),
        pl.when(p == _SECRETARIA).then(secretaria)
        .when((p == _HOSPITAL) & c("santa_casa") & (c("ordinal") == 0)).then(pl.lit("IRMANDADE DA SANTA CASA DE MISERICORDIA DE ") + c("muni"))
        .when(p == _CLINICA).then(c("clinica") + " IMUNIZACOES LTDA")
        .when(p == _CRIE).then(pl.lit("SECRETARIA DE ESTADO DA SAUDE DE ") + c("uf_nome_ascii"))
        .otherwise(c("razao_municipal"))
        .alias("razao_social"),
        pl.when(p == _SECRETARIA).then(pl.lit("68"))
        .when((p == _UBS) & (c("ubs_prefix") == "POSTO DE SAUDE")).then(pl.lit("01"))
        .when(p == _UBS).then(pl.lit("02"))
        .when(p == _UPA).then(pl.lit("73"))
        .when(p == _HOSPITAL).then(pl.lit("05"))
        .otherwise(pl.lit("36"))
        .alias("tipo_unidade"),
        pl.when((p == _HOSPITAL) & c("santa_casa") & (c("ordinal") == 0)).then(pl.lit("3999"))
        .when(p == _CLINICA).then(pl.lit("2062"))
        .when(p == _CRIE).then(pl.lit("1023"))
        .otherwise(pl.lit("1244"))
        .alias("natureza_juridica"),
    )  # fmt: skip
    private = frame["natureza_juridica"].is_in(["3999", "2062"]).to_numpy()
    municipal_cnpj = _cnpj(rng, geo.count)
    state_cnpj = _cnpj(rng, len(geo.uf_codes))
    own_cnpj = _cnpj(rng, n)
    mantenedora = pl.Series(
        np.where(profile == _CRIE, state_cnpj.gather(uf_idx).to_numpy(), municipal_cnpj.gather(municipio).to_numpy()),
        dtype=pl.String,
    )
    table = pl.DataFrame(
        {
            "cnes": cnes,
            "razao_social": frame["razao_social"],
            "fantasia": frame["fantasia"],
            "ibge6": geo.ibge6.gather(municipio),
            "municipio_nome": muni_name,
            "uf": geo.uf.gather(municipio),
            "uf_nome": geo.uf_nome.gather(municipio),
            "tipo_unidade": frame["tipo_unidade"],
        }
    ).with_columns(
        pl.col("tipo_unidade").replace_strict(TIPOS_UNIDADE, return_dtype=pl.String).alias("tipo_unidade_descricao"),
        frame["natureza_juridica"],
        frame["natureza_juridica"].str.slice(0, 1).alias("natureza_grupo"),
        frame["natureza_juridica"].str.slice(0, 1).replace_strict(NATUREZAS, return_dtype=pl.String).alias("natureza_descricao"),
        pl.when(pl.Series(private) | pl.Series(profile == _SECRETARIA))
        .then(pl.when(pl.Series(private)).then(own_cnpj).otherwise(mantenedora))
        .alias("cnpj"),
        pl.when(pl.Series(private)).then(pl.lit(None, pl.String)).otherwise(mantenedora).alias("cnpj_mantenedora"),
        pl.lit(None, pl.String).alias("telefone"),
        pl.lit(None, pl.String).alias("email"),
    )

    # The system each establishment records with.
    klass = _PROFILE_CLASS[profile]
    sistema = _Choice(_SISTEMA_WEIGHTS).sample(rng.random(n), klass)
    in_sp = (geo.uf.gather(municipio) == "SP").to_numpy()
    sistema = np.where(in_sp & (klass == 0) & (rng.random(n) < 0.5), len(_SISTEMAS) - 1, sistema)

    weight = _PROFILE_WEIGHT[profile]
    cum = np.cumsum(weight)
    before = np.concatenate([[0.0], cum])
    muni_first = np.searchsorted(municipio, np.arange(geo.count), side="left")
    muni_last = np.searchsorted(municipio, np.arange(geo.count), side="right") - 1
    columns = {
        "co_cnes_estabelecimento": table["cnes"],
        "no_razao_social_estabelecimento": table["razao_social"],
        "no_fantasia_estalecimento": table["fantasia"],
        "co_municipio_estabelecimento": table["ibge6"],
        "no_municipio_estabelecimento": table["municipio_nome"],
        "sg_uf_estabelecimento": table["uf"],
        "no_uf_estabelecimento": table["uf_nome"],
        "co_tipo_estabelecimento": table["tipo_unidade"],
        "ds_tipo_estabelecimento": table["tipo_unidade_descricao"],
        "co_natureza_estabelecimento": table["natureza_grupo"],
        "ds_natureza_estabelecimento": table["natureza_descricao"],
        "co_sistema_origem": pl.Series([s[0] for s in _SISTEMAS]).gather(sistema),
        "ds_sistema_origem": pl.Series([s[1] for s in _SISTEMAS]).gather(sistema),
    }
    return _Establishments(
        frame=table,
        municipio=municipio,
        profile=profile,
        cum=cum,
        muni_low=before[muni_first],
        muni_high=cum[muni_last],
        muni_first=muni_first,
        muni_last=muni_last,
        columns=columns,
    )


def synthetic_establishments(seed: int = 2026) -> pl.DataFrame:
    """The synthetic CNES establishments of a seed, in the layout of
    ``pipelines.cnes`` (``CnesTable(synthetic_establishments(seed), "sintetico")``
    works): cnes, razao_social, fantasia, ibge6, municipio_nome, uf, uf_nome,
    tipo_unidade(_descricao), natureza_juridica/grupo/descricao, cnpj,
    cnpj_mantenedora, telefone, email. Every municipality has at least its
    health secretariat and one UBS; bigger ones have many more."""
    return _establishments(seed).frame


def _establishment_in(est: _Establishments, municipio: np.ndarray, u: np.ndarray) -> np.ndarray:
    x = est.muni_low[municipio] + u * (est.muni_high[municipio] - est.muni_low[municipio])
    index = np.searchsorted(est.cum, x, side="right")
    return np.clip(index, est.muni_first[municipio], est.muni_last[municipio])


# ---------------------------------------------------------------- vaccines

# Age bands: <1, 1-4, 5-9, 10-14, 15-19, 20-49, 50-59, 60+.
_AGE_LOW: Final = np.array([0, 1, 5, 10, 15, 20, 50, 60])
_AGE_HIGH: Final = np.array([0, 4, 9, 14, 19, 49, 59, 60])
_AGE_BAND_WEIGHTS: Final = (0.22, 0.16, 0.05, 0.09, 0.04, 0.22, 0.08, 0.14)

_VIA_ORAL, _VIA_IM, _VIA_SC, _VIA_ID, _VIA_IV = "1", "2", "3", "4", "6"


@dataclass(frozen=True)
class _Vaccine:
    code: str  # BRImunobiologico
    sigla: str
    via: str  # BRViaAdministracao
    kind: str  # vacina | imunoglobulina | soro
    ages: tuple[float, ...]  # weight per age band
    places: tuple[float, ...]  # multiplier per class: public, emergency, hospital, CRIE, private
    doses: dict[str, float]  # BRDose code → weight
    fabricantes: dict[str, float]


_VACCINES: Final[tuple[_Vaccine, ...]] = (
    _Vaccine("15", "BCG", _VIA_ID, "vacina", (30, 0.5, 0, 0, 0, 0, 0, 0), (1, 0, 3, 0.2, 0.2), {"9": 1}, {"FUNDACAO ATAULPHO DE PAIVA": 0.7, "SERUM INSTITUTE OF INDIA": 0.3}),
    _Vaccine("9", "HB", _VIA_IM, "vacina", (30, 0, 0.5, 1, 2, 10, 4, 3), (1, 0.2, 3, 1, 0.5), {"1": 4, "2": 2, "3": 2, "8": 1}, {"FUNDACAO BUTANTAN": 0.6, "LG CHEM": 0.4}),
    _Vaccine("42", "PENTA", _VIA_IM, "vacina", (40, 2, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0), {"1": 1, "2": 1, "3": 1}, {"SERUM INSTITUTE OF INDIA": 0.7, "BIOLOGICAL E. LIMITED": 0.3}),
    _Vaccine("22", "VIP", _VIA_IM, "vacina", (40, 3, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0.5, 0), {"1": 1, "2": 1, "3": 1}, {"SANOFI PASTEUR": 0.6, "SERUM INSTITUTE OF INDIA": 0.4}),
    _Vaccine("28", "VOPB", _VIA_ORAL, "vacina", (0, 25, 2, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0), {"6": 1, "7": 1}, {"FIOCRUZ/BIO-MANGUINHOS": 1}),
    _Vaccine("45", "VRH", _VIA_ORAL, "vacina", (35, 0, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0.3), {"1": 1, "2": 1}, {"GSK": 1}),
    _Vaccine("26", "PNM10V", _VIA_IM, "vacina", (40, 15, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0), {"1": 1, "2": 1, "6": 1}, {"FIOCRUZ/BIO-MANGUINHOS": 1}),
    _Vaccine("41", "MNGC", _VIA_IM, "vacina", (35, 15, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0), {"1": 1, "2": 1, "6": 1}, {"FUNDACAO EZEQUIEL DIAS": 1}),
    _Vaccine("14", "FA", _VIA_SC, "vacina", (15, 15, 2, 1, 2, 6, 2, 0.5), (1, 0, 0, 0.2, 0.2), {"1": 1, "6": 1, "9": 2}, {"FIOCRUZ/BIO-MANGUINHOS": 1}),
    _Vaccine("24", "SCR", _VIA_SC, "vacina", (5, 35, 3, 2, 3, 8, 1, 0), (1, 0, 0, 0.2, 0.2), {"1": 2, "2": 2}, {"FIOCRUZ/BIO-MANGUINHOS": 0.6, "SERUM INSTITUTE OF INDIA": 0.4}),
    _Vaccine("56", "SCRV", _VIA_SC, "vacina", (0, 15, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0.5), {"9": 1}, {"GSK": 1}),
    _Vaccine("34", "VZ", _VIA_SC, "vacina", (0, 12, 3, 1, 0, 0, 0, 0), (1, 0, 0, 1, 0.5), {"1": 1, "2": 1}, {"MSD": 0.5, "GSK": 0.5}),
    _Vaccine("46", "DTP", _VIA_IM, "vacina", (0, 25, 6, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0), {"6": 1, "7": 1}, {"SERUM INSTITUTE OF INDIA": 0.6, "FUNDACAO BUTANTAN": 0.4}),
    _Vaccine("55", "HA", _VIA_IM, "vacina", (0, 15, 1, 0, 0, 0, 0, 0), (1, 0, 0, 0.5, 0), {"9": 1}, {"MSD": 1}),
    _Vaccine("67", "HPV4", _VIA_IM, "vacina", (0, 0, 5, 40, 15, 1, 0, 0), (1, 0, 0, 1, 1), {"9": 3, "1": 1, "2": 1}, {"MSD": 0.7, "FUNDACAO BUTANTAN": 0.3}),
    _Vaccine("74", "MENACWY", _VIA_IM, "vacina", (0, 0, 0, 30, 5, 0, 0, 0), (1, 0, 0, 0.5, 1), {"9": 2, "38": 1}, {"PFIZER": 0.5, "GSK": 0.5}),
    _Vaccine("82", "DENGUE", _VIA_SC, "vacina", (0, 0, 0, 20, 2, 0, 0, 0), (1, 0, 0, 0, 0.5), {"1": 1, "2": 1}, {"SANOFI PASTEUR": 1}),
    _Vaccine("25", "DT", _VIA_IM, "vacina", (0, 0, 2, 8, 15, 25, 18, 12), (1, 3, 1, 0.5, 0.5), {"1": 2, "2": 1, "3": 1, "38": 3}, {"FUNDACAO BUTANTAN": 0.6, "SERUM INSTITUTE OF INDIA": 0.4}),
    _Vaccine("57", "DTPA", _VIA_IM, "vacina", (0, 0, 0, 0, 3, 8, 0, 0), (1, 0, 1, 1, 1), {"8": 3, "38": 1}, {"GSK": 0.5, "SANOFI PASTEUR": 0.3, "FUNDACAO BUTANTAN": 0.2}),
    _Vaccine("33", "INF3", _VIA_IM, "vacina", (3, 10, 6, 4, 3, 12, 10, 25), (1, 0.2, 0.5, 0.5, 0), {"1": 1, "2": 1, "8": 6}, {"FUNDACAO BUTANTAN": 1}),
    _Vaccine("77", "INF4", _VIA_IM, "vacina", (0, 2, 1, 1, 1, 3, 2, 2), (0, 0, 0, 0, 1), {"8": 1}, {"SANOFI PASTEUR": 0.5, "ABBOTT": 0.5}),
    _Vaccine("87", "COV19-PFZ", _VIA_IM, "vacina", (2, 4, 1, 0.5, 0.5, 3, 3, 12), (1, 0, 0.2, 0.5, 0), {"1": 1, "2": 1, "38": 3}, {"PFIZER": 1}),
    _Vaccine("21", "PNM23", _VIA_IM, "vacina", (0, 0, 0, 0, 0, 0, 1, 6), (1, 0, 0, 2, 0.5), {"8": 2, "38": 1}, {"MSD": 1}),
    _Vaccine("59", "PNM13", _VIA_IM, "vacina", (4, 1, 0, 0, 0, 0, 1, 2), (0, 0, 0, 1, 1), {"1": 1, "2": 1, "8": 1}, {"PFIZER": 1}),
    _Vaccine("76", "HZ", _VIA_IM, "vacina", (0, 0, 0, 0, 0, 0, 3, 5), (0, 0, 0, 0.5, 1), {"1": 1, "2": 1}, {"GSK": 1}),
    _Vaccine("78", "MENB", _VIA_IM, "vacina", (6, 3, 1, 1, 0, 0, 0, 0), (0, 0, 0, 0.3, 1), {"1": 1, "2": 1, "6": 1}, {"GSK": 1}),
    _Vaccine("43", "HEXA", _VIA_IM, "vacina", (6, 1, 0, 0, 0, 0, 0, 0), (0, 0, 0, 1, 1), {"1": 1, "2": 1, "3": 1, "6": 1}, {"GSK": 0.5, "SANOFI PASTEUR": 0.5}),
    _Vaccine("37", "VRC", _VIA_IM, "vacina", (0.2, 2, 3, 3, 2, 4, 2, 2), (1, 4, 2, 1, 0.2), {"1": 3, "2": 2, "3": 1, "4": 1}, {"SANOFI PASTEUR": 0.5, "FUNDACAO BUTANTAN": 0.5}),
    _Vaccine("1", "IGHAT", _VIA_IM, "imunoglobulina", (0, 0.5, 1, 1, 1, 3, 2, 2), (0, 3, 2, 2, 0), {"11": 1}, {"SERUM INSTITUTE OF INDIA": 0.5, "FUNDACAO BUTANTAN": 0.5}),
    _Vaccine("23", "IGHAR", _VIA_IM, "imunoglobulina", (0, 0.3, 0.5, 0.5, 0.5, 1, 0.5, 0.5), (0, 1, 1, 3, 0), {"11": 1}, {"INSTITUTO VITAL BRAZIL": 1}),
    _Vaccine("19", "VZIG", _VIA_IM, "imunoglobulina", (0.5, 0.3, 0.2, 0.1, 0.1, 0.3, 0.1, 0.1), (0, 0, 0.5, 3, 0), {"11": 1}, {"CSL BEHRING": 1}),
    _Vaccine("20", "IGHAHB", _VIA_IM, "imunoglobulina", (1, 0, 0, 0, 0, 0.2, 0, 0), (0, 0, 3, 2, 0), {"11": 1}, {"CSL BEHRING": 1}),
    _Vaccine("8", "SAB", _VIA_IV, "soro", (0, 0.2, 0.3, 0.3, 0.3, 1, 0.7, 0.6), (0, 0.5, 3, 0, 0), {"12": 1, "13": 1, "14": 1, "15": 0.5}, {"FUNDACAO BUTANTAN": 0.5, "FUNDACAO EZEQUIEL DIAS": 0.3, "INSTITUTO VITAL BRAZIL": 0.2}),
    _Vaccine("4", "SAESC", _VIA_IV, "soro", (0, 0.3, 0.3, 0.2, 0.1, 0.3, 0.2, 0.1), (0, 0.5, 3, 0, 0), {"11": 1, "12": 1, "13": 1}, {"FUNDACAO BUTANTAN": 0.6, "FUNDACAO EZEQUIEL DIAS": 0.4}),
)  # fmt: skip

# co_vacina_fabricante: 152 (Butantan) as in the public files; the others are illustrative.
_FABRICANTE_CODES: Final[dict[str, str]] = {
    "FUNDACAO BUTANTAN": "152", "SERUM INSTITUTE OF INDIA": "201", "FIOCRUZ/BIO-MANGUINHOS": "167",
    "FUNDACAO ATAULPHO DE PAIVA": "160", "FUNDACAO EZEQUIEL DIAS": "161", "INSTITUTO VITAL BRAZIL": "171",
    "SANOFI PASTEUR": "211", "GSK": "176", "MSD": "193", "PFIZER": "205", "LG CHEM": "189",
    "BIOLOGICAL E. LIMITED": "153", "ABBOTT": "149", "CSL BEHRING": "158",
}  # fmt: skip

_LOTS_PER_FABRICANTE: Final = 8

# Attendance-group families: a code prefix of BRGrupoAtendimento, weight per age band.
_GROUP_FAMILIES: Final[tuple[tuple[str, tuple[float, ...]], ...]] = (
    ("", (1, 1, 1, 1, 0.95, 0.75, 0.70, 0.30)),  # no group
    ("0002", (0, 0, 0, 0, 0, 0, 0, 0.50)),  # age band, chosen by age
    ("0001", (0, 0.005, 0.01, 0.01, 0.02, 0.05, 0.12, 0.15)),
    ("0003", (0, 0, 0, 0, 0, 0, 0, 0.03)),
    ("0004", (0, 0, 0, 0, 0.005, 0.01, 0.002, 0)),
    ("0005", (0, 0, 0, 0, 0, 0.015, 0.01, 0.002)),
    ("0006", (0.005, 0.005, 0.005, 0.005, 0.005, 0.01, 0.01, 0.01)),
    ("0007", (0.005, 0.005, 0.005, 0.005, 0.005, 0.005, 0.005, 0.005)),
    ("0008", (0, 0, 0, 0, 0, 0.03, 0.02, 0.002)),
    ("0009", (0, 0, 0, 0, 0.002, 0.07, 0.05, 0.005)),
    ("0010", (0, 0, 0, 0, 0, 0.01, 0.008, 0.001)),
    ("0011", (0.001, 0.002, 0.002, 0.002, 0.002, 0.003, 0.003, 0.005)),
    ("0012", (0, 0, 0, 0, 0.001, 0.003, 0.002, 0.001)),
    ("0013", (0, 0, 0, 0, 0, 0.002, 0.001, 0)),
    ("0014", (0, 0, 0, 0, 0, 0.003, 0.001, 0)),
    ("0015", (0, 0, 0, 0, 0.002, 0.004, 0.001, 0)),
    ("0016", (0, 0, 0, 0, 0.002, 0.015, 0.01, 0)),
)
# co/ds_vacina_categoria_atendimento by group prefix, as in the public campaign files.
_CATEGORIAS: Final[dict[str, tuple[str, str]]] = {
    "0001": ("1", "Comorbidades"), "0002": ("2", "Faixa Etária"),
    "0003": ("3", "Pessoas de 60 anos ou mais institucionalizadas"), "0004": ("4", "Forças Armadas"),
    "0005": ("5", "Forças de Segurança e Salvamento"), "0006": ("6", "Povos e Comunidades Tradicionais"),
    "0007": ("7", "Povos Indígenas"), "0008": ("8", "Trabalhadores da Educação"),
    "0009": ("9", "Trabalhadores de Saúde"), "0010": ("10", "Trabalhadores de Transporte"),
    "0011": ("11", "Pessoas com Deficiência"), "0012": ("12", "Pessoas em Situação de Rua"),
    "0013": ("13", "Trabalhadores Portuários"), "0014": ("14", "Funcionário do Sistema de Privação de Liberdade"),
    "0015": ("15", "População Privada de Liberdade"), "0016": ("16", "Trabalhadores Industriais"),
}  # fmt: skip

_RACAS: Final = (
    ("01", "BRANCA"),
    ("02", "PRETA"),
    ("03", "PARDA"),
    ("04", "AMARELA"),
    ("05", "INDIGENA"),
    ("99", "SEM INFORMACAO"),
)
_RACA_WEIGHTS: Final = (0.38, 0.08, 0.33, 0.015, 0.005, 0.19)
_INDIGENA: Final = 4
_SEXOS: Final = ("F", "M", "I")
_SEXO_WEIGHTS: Final = (0.53, 0.469, 0.001)
_CONDICOES: Final = (("1", "Nenhuma"), ("2", "Gestante"), ("3", "Puérpera"))
# BREstrategiaVacinacao weights per class (public, emergency, hospital, CRIE, private).
_ESTRATEGIA_WEIGHTS: Final = (
    (0.88, 0, 0.01, 0.04, 0.02, 0.04, 0, 0, 0.01),
    (0.6, 0.3, 0, 0.05, 0, 0.05, 0, 0, 0),
    (0.75, 0.2, 0, 0.05, 0, 0, 0, 0, 0),
    (0, 1, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 1, 0),
)


@dataclass(frozen=True)
class _Catalog:
    vaccine: _Choice  # rows: class * 8 + age band
    code: pl.Series
    sigla: pl.Series
    nome: pl.Series
    via: np.ndarray
    kind: np.ndarray
    dose: _Choice  # rows: vaccine
    dose_codes: pl.Series
    dose_names: pl.Series
    fabricante: _Choice  # rows: vaccine; options: that vaccine's fabricantes
    fabricante_of: np.ndarray  # (vaccine, option) → index in fabricante tables
    fabricante_code: pl.Series
    fabricante_name: pl.Series
    lots: pl.Series  # (vaccine, option, slot) flattened
    options: int
    dtpa: int
    group: _Choice  # rows: age band; options: families
    family_first: np.ndarray
    family_size: np.ndarray
    group_codes: pl.Series  # with a trailing None
    group_names: pl.Series
    categoria_codes: pl.Series
    categoria_names: pl.Series
    age_band_group: np.ndarray  # index in group_codes for 60-64 … 80+
    no_group: int
    estrategia: _Choice
    estrategia_codes: pl.Series
    estrategia_names: pl.Series
    via_codes: pl.Series
    via_names: pl.Series
    local_codes: pl.Series
    local_names: pl.Series


def _lot_code(rng: np.random.Generator, fabricante: str) -> str:
    digits = "".join(str(d) for d in rng.integers(0, 10, size=10))
    letters = "".join(chr(ord("A") + int(x)) for x in rng.integers(0, 26, size=3))
    if fabricante in ("PFIZER", "SANOFI PASTEUR", "MSD"):
        return f"{letters[:2]}{digits[:4]}"
    if fabricante == "FUNDACAO BUTANTAN":
        return f"{digits[:6]}"
    if fabricante == "SERUM INSTITUTE OF INDIA":
        return f"0{digits[:6]}"
    if fabricante == "FIOCRUZ/BIO-MANGUINHOS":
        return f"{digits[:3]}{letters}{digits[3:6]}Z"
    if fabricante == "GSK":
        return f"A{letters[:2]}{digits[:3]}{letters[2]}"
    return f"p{digits[:9]}"


@functools.cache
def _catalog(seed: int) -> _Catalog:
    immuno = reference.codesystem("BRImunobiologico")
    doses = reference.codesystem("BRDose")
    vias = reference.codesystem("BRViaAdministracao")
    locais = reference.codesystem("BRLocalAplicacao")
    estrategias = reference.codesystem("BREstrategiaVacinacao")
    grupos = reference.codesystem("BRGrupoAtendimento")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & _MASK64, 0x107E5])))

    weights = np.array([[v.ages[band] * v.places[klass] for v in _VACCINES] for klass in range(5) for band in range(8)])
    dose_list = sorted({code for v in _VACCINES for code in v.doses}, key=int)
    dose_weights = np.array([[v.doses.get(code, 0.0) for code in dose_list] for v in _VACCINES])
    fabricantes = sorted({name for v in _VACCINES for name in v.fabricantes})
    options = max(len(v.fabricantes) for v in _VACCINES)
    fabricante_weights = np.zeros((len(_VACCINES), options))
    fabricante_of = np.zeros((len(_VACCINES), options), dtype=np.int64)
    lots: list[str] = []
    for i, v in enumerate(_VACCINES):
        names = list(v.fabricantes)
        for j in range(options):
            name = names[j] if j < len(names) else names[0]
            fabricante_weights[i, j] = v.fabricantes[name] if j < len(names) else 0.0
            fabricante_of[i, j] = fabricantes.index(name)
            lots.extend(_lot_code(rng, name) for _ in range(_LOTS_PER_FABRICANTE))

    group_list = sorted(grupos)
    family_first = np.array(
        [next((k for k, code in enumerate(group_list) if code.startswith(prefix)), 0) for prefix, _ in _GROUP_FAMILIES]
    )
    family_size = np.array(
        [sum(code.startswith(prefix) for code in group_list) if prefix else 0 for prefix, _ in _GROUP_FAMILIES]
    )
    no_group = len(group_list)
    categorias = [_CATEGORIAS.get(code[:4], (None, None)) for code in group_list]

    return _Catalog(
        vaccine=_Choice(weights),
        code=pl.Series([v.code for v in _VACCINES]),
        sigla=pl.Series([v.sigla for v in _VACCINES]),
        nome=pl.Series([immuno[v.code] for v in _VACCINES]),
        via=np.array([v.via for v in _VACCINES]),
        kind=np.array([v.kind for v in _VACCINES]),
        dose=_Choice(dose_weights),
        dose_codes=pl.Series(dose_list),
        dose_names=pl.Series([doses[code] for code in dose_list]),
        fabricante=_Choice(fabricante_weights),
        fabricante_of=fabricante_of,
        fabricante_code=pl.Series([_FABRICANTE_CODES[name] for name in fabricantes]),
        fabricante_name=pl.Series(fabricantes),
        lots=pl.Series(lots),
        options=options,
        dtpa=next(i for i, v in enumerate(_VACCINES) if v.code == "57"),
        group=_Choice(np.array([weights for _, weights in _GROUP_FAMILIES]).T),
        family_first=family_first,
        family_size=family_size,
        group_codes=pl.Series([*group_list, None], dtype=pl.String),
        group_names=pl.Series([*(grupos[code] for code in group_list), None], dtype=pl.String),
        categoria_codes=pl.Series([*(c for c, _ in categorias), None], dtype=pl.String),
        categoria_names=pl.Series([*(n for _, n in categorias), None], dtype=pl.String),
        age_band_group=np.array([group_list.index(code) for code in ("000201", "000202", "000203", "000204", "000205")]),
        no_group=no_group,
        estrategia=_Choice(_ESTRATEGIA_WEIGHTS),
        estrategia_codes=pl.Series([str(k) for k in range(1, 10)]),
        estrategia_names=pl.Series([estrategias[str(k)] for k in range(1, 10)]),
        # The last entry: not recorded by the origin system (what the public files write).
        via_codes=pl.Series([*vias, NOT_RECORDED_CODE], dtype=pl.String),
        via_names=pl.Series([*vias.values(), NOT_RECORDED_NAME], dtype=pl.String),
        local_codes=pl.Series([*locais, NOT_RECORDED_CODE], dtype=pl.String),
        local_names=pl.Series([*locais.values(), NOT_RECORDED_NAME], dtype=pl.String),
    )


# ---------------------------------------------------------------- the source


class SyntheticSource(Source):
    """A synthetic RNDS entry day: ``records`` records with ``dt_entrada_rnds == day``.

    Deterministic for (day, records, seed), whatever ``batch_size``. With
    ``invalid=False`` or ``defects=False`` the deliberately invalid records, or the
    repairable defects, are left out (the records are otherwise the same), which
    is what lets tests prove that validation repairs exactly what was damaged.
    """

    kind: ClassVar[str] = "synthetic"

    def __init__(
        self,
        day: dt.date,
        records: int,
        seed: int = 2026,
        batch_size: int = 250_000,
        *,
        invalid: bool = True,
        defects: bool = True,
    ) -> None:
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise ValueError(f"dia inválido para a fonte sintética: {day!r}")
        if isinstance(records, bool) or not isinstance(records, int) or records < 0:
            raise ValueError(f"número de registros inválido: {records!r} (use um inteiro >= 0)")
        if records >= 1 << 40:
            raise ValueError(f"número de registros grande demais: {records}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"tamanho de lote inválido: {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"semente inválida: {seed!r}")
        self.day = day
        self.records = records
        self.seed = seed
        self.batch_size = batch_size
        self.invalid = invalid
        self.defects = defects

    def invalid_records(self) -> pl.DataFrame:
        """The records corrupted on purpose (``co_documento``, ``tipo``)."""
        if not self.invalid:
            return pl.DataFrame(schema={"co_documento": pl.String, "tipo": pl.String})
        return invalid_records(self.day, self.records, self.seed)

    def defective_records(self) -> pl.DataFrame:
        """The valid records carrying a repairable defect (``co_documento``, ``tipo``)."""
        if not self.defects:
            return pl.DataFrame(schema={"co_documento": pl.String, "tipo": pl.String})
        return defective_records(self.day, self.records, self.seed)

    def batches(self) -> Iterator[pl.DataFrame]:
        pending: list[pl.DataFrame] = []
        pending_rows = 0
        for block in range((self.records + BLOCK_SIZE - 1) // BLOCK_SIZE):
            frame = self._block(block)
            while frame.height:
                take = min(self.batch_size - pending_rows, frame.height)
                pending.append(frame.slice(0, take))
                pending_rows += take
                frame = frame.slice(take)
                if pending_rows == self.batch_size:
                    yield pl.concat(pending, rechunk=False)
                    pending, pending_rows = [], 0
        if pending:
            yield pl.concat(pending, rechunk=False)

    # -------------------------------------------------------------- one block

    def _block(self, block: int) -> pl.DataFrame:
        start = block * BLOCK_SIZE
        stop = min(start + BLOCK_SIZE, self.records)
        n = stop - start
        ordinal = self.day.toordinal()
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed & _MASK64, ordinal, block, 0xB10C])))
        geo, est, cat = _geography(), _establishments(self.seed), _catalog(self.seed)

        # Patients: most get one dose, some several in the same visit.
        doses = rng.choice(4, size=n, p=[0.86, 0.11, 0.025, 0.005]) + 1
        cum = np.cumsum(doses)
        patients = int(np.searchsorted(cum, n)) + 1
        doses = doses[:patients]
        doses[-1] -= cum[patients - 1] - n
        patient = np.repeat(np.arange(patients), doses)[rng.permutation(n)]

        unknown = rng.random(patients) < P_UNKNOWN_RESIDENCE
        residence = geo.residence.sample(rng.random(patients))
        sexo = rng.choice(len(_SEXOS), size=patients, p=_SEXO_WEIGHTS)
        raca = rng.choice(len(_RACAS), size=patients, p=_RACA_WEIGHTS)
        band = rng.choice(8, size=patients, p=_AGE_BAND_WEIGHTS)
        age = _AGE_LOW[band] + np.floor(rng.random(patients) * (_AGE_HIGH[band] - _AGE_LOW[band] + 1)).astype(np.int64)
        age = np.where(band == 7, 60 + np.minimum(rng.exponential(9.0, size=patients), 45).astype(np.int64), age)
        foreign = rng.random(patients) < P_FOREIGN
        cep = geo.cep_start[residence] + np.floor(rng.random(patients) * geo.cep_span[residence]).astype(np.int64)

        # Attendance group, consistent with age; indigenous groups are indigenous people.
        family = cat.group.sample(rng.random(patients), band)
        group = cat.family_first[family] + np.floor(rng.random(patients) * np.maximum(cat.family_size[family], 1)).astype(
            np.int64
        )
        age_band = cat.age_band_group[np.clip((age - 60) // 5, 0, 4)]
        group = np.where(family == 0, cat.no_group, np.where(family == 1, age_band, group))
        raca = np.where(family == 7, _INDIGENA, raca)

        fertile = (sexo == 0) & (age >= 15) & (age <= 49)
        condition_u = rng.random(patients)
        condicao = np.where(fertile & (condition_u < 0.06), 1, np.where(fertile & (condition_u < 0.075), 2, 0))
        condicao = np.where((condicao == 0) & (rng.random(patients) < 0.5), 3, condicao)  # 3 = not informed

        # Where the visit happened: home, another municipality of the UF, another UF.
        move = rng.random(patients)
        single_muni_uf = geo.uf_first[geo.uf_index[residence]] == geo.uf_last[geo.uf_index[residence]]
        outside_uf = (move < P_OUTSIDE_UF) | ((move < P_OUTSIDE_MUNICIPALITY) & single_muni_uf)
        other_muni = (move < P_OUTSIDE_MUNICIPALITY) & ~outside_uf
        occurrence = residence.copy()
        movers = np.flatnonzero(other_muni)
        home, home_uf = residence[movers], geo.uf_index[residence[movers]]
        same_uf = _hub_in_uf(geo, home_uf, rng.random(len(movers)))
        retry = _hub_in_uf(geo, home_uf, rng.random(len(movers)))
        same_uf = np.where(same_uf == home, retry, same_uf)
        fallback = np.where(geo.uf_largest[home_uf] == home, geo.uf_second[home_uf], geo.uf_largest[home_uf])
        occurrence[movers] = np.where(same_uf == home, fallback, same_uf)
        travellers = np.flatnonzero(outside_uf)
        away_uf = geo.destination.sample(rng.random(len(travellers)), geo.uf_index[residence[travellers]])
        occurrence[travellers] = _hub_in_uf(geo, away_uf, rng.random(len(travellers)))
        unknown_at = np.flatnonzero(unknown)
        occurrence[unknown_at] = geo.residence.sample(rng.random(len(unknown_at)))
        residence[unknown_at] = geo.count
        place = _establishment_in(est, occurrence, rng.random(patients))

        # How late the record reached the RNDS: most the same day, a long tail.
        component = rng.choice(5, size=patients, p=[0.55, 0.22, 0.15, 0.07, 0.01])
        lag_u = rng.random(patients)
        lag = np.select(
            [component == 0, component == 1, component == 2, component == 3],
            [0, 1 + np.floor(lag_u * 3), 4 + np.floor(lag_u * 27), np.floor(31 * np.exp(lag_u * math.log(366 / 31)))],
            366 + np.floor(lag_u * (MAX_LAG_DAYS - 366 + 1)),
        ).astype(np.int64)
        lag = np.minimum(lag, MAX_LAG_DAYS)

        # Per dose: the vaccine for that age and place, its dose, maker, lot, route, site.
        p = patient
        place_r = place[p]
        klass = _PROFILE_CLASS[est.profile[place_r]]
        band_r = band[p]
        vaccine = cat.vaccine.sample(rng.random(n), klass * 8 + band_r)
        pregnant = (condicao[p] == 1) & (klass != 4)
        vaccine = np.where(pregnant & (rng.random(n) < 0.5), cat.dtpa, vaccine)
        dose = cat.dose.sample(rng.random(n), vaccine)
        option = cat.fabricante.sample(rng.random(n), vaccine)
        fabricante = cat.fabricante_of[vaccine, option]
        uf_of_place = geo.uf_index[est.municipio[place_r]]
        slot = (uf_of_place * 3 + rng.integers(0, 4, size=n)) % _LOTS_PER_FABRICANTE
        lot = (vaccine * cat.options + option) * _LOTS_PER_FABRICANTE + slot

        via = cat.via[vaccine]
        via_index = via.astype(np.int64) - 1
        site_u = rng.random(n)
        age_r = age[p]
        infant_site = np.where(site_u < 0.5, 2, 3)  # vasto lateral da coxa D/E
        arm_site = np.where(site_u < 0.45, 0, np.where(site_u < 0.9, 1, np.where(site_u < 0.95, 4, 5)))
        site = np.where(age_r < 2, infant_site, arm_site)
        site = np.where(cat.kind[vaccine] == "imunoglobulina", np.where(site_u < 0.6, 6, np.where(site_u < 0.8, 7, 0)), site)
        site = np.where(via == _VIA_ID, 0, site)
        no_site = len(cat.local_codes) - 1
        site = np.where((via == _VIA_ORAL) | (via == _VIA_IV), no_site, site)

        estrategia = cat.estrategia.sample(rng.random(n), klass)
        special = np.isin(cat.kind[vaccine], ["imunoglobulina", "soro"]) & (klass != 4)
        estrategia = np.where(special, np.where(cat.kind[vaccine] == "soro", 6, 1), estrategia)

        status_u = rng.random(n)
        correction = status_u < P_CORRECTION
        entered_in_error = (status_u >= P_CORRECTION) & (status_u < P_CORRECTION + P_ENTERED_IN_ERROR)
        deleted = rng.random(n) < P_DELETED
        transcription = rng.random(n) < 0.1

        index = np.arange(start, stop, dtype=np.int64)
        # A correction names a document of an earlier day (mostly the day before).
        chosen = np.flatnonzero(correction)
        troca = pl.repeat(None, n, dtype=pl.String, eager=True).alias("co_troca_documento")
        if len(chosen):
            corrected_day = ordinal - np.minimum(rng.geometric(0.5, size=len(chosen)), 60)
            corrected_index = rng.integers(0, self.records, size=len(chosen))
            troca = troca.scatter(chosen, _document_ids(self.seed, corrected_day, corrected_index, self.records))

        # Drawn last, so everything above stays what it was for a seed.
        unrecorded = rng.random(n) < P_NOT_RECORDED
        site = np.where(unrecorded, len(cat.local_codes) - 1, site)
        via_index = np.where(unrecorded, len(cat.via_codes) - 1, via_index)
        abroad = rng.random(patients) < P_ABROAD
        country = rng.integers(0, len(_COUNTRIES_ABROAD), size=patients)
        residence = np.where(abroad, geo.count, residence)
        pais = np.where(abroad, country + 1, 0)[p]
        pais_codes = pl.Series(["10", *(c for c, _ in _COUNTRIES_ABROAD)])
        pais_names = pl.Series(["BRASIL", *(name for _, name in _COUNTRIES_ABROAD)])

        dates = self._dates
        residence_r = residence[p]
        columns: dict[str, pl.Series] = {
            "co_documento": _document_ids(self.seed, ordinal, index, self.records),
            "co_paciente": _strings(_hex(np.frombuffer(rng.bytes(patients * 32), dtype=np.uint8).reshape(patients, 32))).gather(
                p
            ),
            "tp_sexo_paciente": _gather(pl.Series(_SEXOS), sexo[p], "tp_sexo_paciente"),
            "co_raca_cor_paciente": _gather(pl.Series([r[0] for r in _RACAS]), raca[p], "co_raca_cor_paciente"),
            "no_raca_cor_paciente": _gather(pl.Series([r[1] for r in _RACAS]), raca[p], "no_raca_cor_paciente"),
            "co_municipio_paciente": _gather(geo.ibge6, residence_r, "co_municipio_paciente"),
            "co_pais_paciente": _gather(pais_codes, pais, "co_pais_paciente"),
            "no_municipio_paciente": _gather(geo.nome, residence_r, "no_municipio_paciente"),
            "no_pais_paciente": _gather(pais_names, pais, "no_pais_paciente"),
            "sg_uf_paciente": _gather(geo.uf, residence_r, "sg_uf_paciente"),
            "nu_cep_paciente": pl.Series("nu_cep_paciente", cep[p])
            .cast(pl.String)
            .str.zfill(5)
            .zip_with(pl.Series(~(unknown | abroad)[p]), pl.repeat(None, n, dtype=pl.String, eager=True)),
            "ds_nacionalidade_paciente": _gather(pl.Series(["B", "E"]), foreign[p].astype(np.int64), "ds_nacionalidade_paciente"),
            "co_troca_documento": troca,
            "co_vacina": _gather(cat.code, vaccine, "co_vacina"),
            "sg_vacina": _gather(cat.sigla, vaccine, "sg_vacina"),
            "dt_vacina": _gather(dates, lag[p], "dt_vacina"),
            "co_dose_vacina": _gather(cat.dose_codes, dose, "co_dose_vacina"),
            "ds_dose_vacina": _gather(cat.dose_names, dose, "ds_dose_vacina"),
            "co_local_aplicacao": _gather(cat.local_codes, site, "co_local_aplicacao"),
            "ds_local_aplicacao": _gather(cat.local_names, site, "ds_local_aplicacao"),
            "co_via_administracao": _gather(cat.via_codes, via_index, "co_via_administracao"),
            "ds_via_administracao": _gather(cat.via_names, via_index, "ds_via_administracao"),
            "co_lote_vacina": _gather(cat.lots, lot, "co_lote_vacina"),
            "ds_vacina_fabricante": _gather(cat.fabricante_name, fabricante, "ds_vacina_fabricante"),
            "dt_entrada_rnds": pl.repeat(self.day.isoformat(), n, eager=True).alias("dt_entrada_rnds"),
            "st_documento": _gather(
                pl.Series(list(contract.ST_DOCUMENTO_VALUES)), entered_in_error.astype(np.int64), "st_documento"
            ),
            "co_estrategia_vacinacao": _gather(cat.estrategia_codes, estrategia, "co_estrategia_vacinacao"),
            "ds_estrategia_vacinacao": _gather(cat.estrategia_names, estrategia, "ds_estrategia_vacinacao"),
            "co_origem_registro": _gather(
                pl.Series([None, "99"], dtype=pl.String), transcription.astype(np.int64), "co_origem_registro"
            ),
            "co_vacina_grupo_atendimento": _gather(cat.group_codes, group[p], "co_vacina_grupo_atendimento"),
            "ds_vacina_grupo_atendimento": _gather(cat.group_names, group[p], "ds_vacina_grupo_atendimento"),
            "co_vacina_categoria_atendimento": _gather(cat.categoria_codes, group[p], "co_vacina_categoria_atendimento"),
            "ds_vacina_categoria_atendimento": _gather(cat.categoria_names, group[p], "ds_vacina_categoria_atendimento"),
            "co_vacina_fabricante": _gather(cat.fabricante_code, fabricante, "co_vacina_fabricante"),
            "ds_vacina": _gather(cat.nome, vaccine, "ds_vacina"),
            "ds_condicao_maternal": _gather(
                pl.Series([*(c[1] for c in _CONDICOES), None], dtype=pl.String), condicao[p], "ds_condicao_maternal"
            ),
            "co_condicao_maternal": _gather(
                pl.Series([*(c[0] for c in _CONDICOES), None], dtype=pl.String), condicao[p], "co_condicao_maternal"
            ),
            "nu_idade_paciente": pl.Series("nu_idade_paciente", age[p]).cast(pl.String),
            "no_uf_paciente": _gather(geo.uf_nome, residence_r, "no_uf_paciente"),
            "dt_deletado_rnds": _gather(
                pl.Series([None, self.day.isoformat()], dtype=pl.String), deleted.astype(np.int64), "dt_deletado_rnds"
            ),
        }
        for name, values in est.columns.items():
            columns[name] = _gather(values, place_r, name)
        frame = contract.conform_raw(pl.DataFrame(columns))
        return self._damage(frame, index)

    @functools.cached_property
    def _dates(self) -> pl.Series:
        """ISO text of ``day - lag`` for every lag."""
        return pl.Series([(self.day - dt.timedelta(days=lag)).isoformat() for lag in range(MAX_LAG_DAYS + 1)], dtype=pl.String)

    # -------------------------------------------------------------- damage

    def _damage(self, frame: pl.DataFrame, index: np.ndarray) -> pl.DataFrame:
        invalid, defect, variant = _fates(self.seed, self.day.toordinal(), index)
        if not self.invalid:
            invalid = np.full_like(invalid, -1)
        if not self.defects:
            defect = np.full_like(defect, -1)
        present_invalid = set(np.unique(invalid[invalid >= 0]).tolist())
        present_defect = set(np.unique(defect[defect >= 0]).tolist())
        if not present_invalid and not present_defect:
            return frame

        col, lit = pl.col, pl.lit
        inv, dfc, var = col("_invalido"), col("_defeito"), col("_variante")
        year = str(self.day.year)
        uf_codes = _geography().uf_codes
        other_uf = {uf: uf_codes[(i + 1) % len(uf_codes)] for i, uf in enumerate(uf_codes)}
        changes: dict[str, list[tuple[pl.Expr, pl.Expr]]] = {}

        def change(column: str, when: pl.Expr, value: pl.Expr) -> None:
            changes.setdefault(column, []).append((when, value))

        def variants(*values: pl.Expr, selector: pl.Expr = var) -> pl.Expr:
            expr: Then | ChainedThen = pl.when(selector % len(values) == 0).then(values[0])
            for k, value in enumerate(values[1:], start=1):
                expr = expr.when(selector % len(values) == k).then(value)
            return expr.otherwise(values[0])

        def kind(name: str) -> pl.Expr | None:
            k = INVALID_KINDS.index(name)
            return (inv == k) if k in present_invalid else None

        est_muni = col("co_municipio_estabelecimento")
        bad_muni = variants(est_muni.str.slice(0, 2) + lit("9999"), est_muni.str.slice(0, 5) + lit("X"), lit("0"))
        if (k := kind("municipio_estabelecimento_inexistente")) is not None:
            change("co_municipio_estabelecimento", k, bad_muni)
        if (k := kind("municipio_estabelecimento_desconhecido")) is not None:
            change("co_municipio_estabelecimento", k, lit(contract.UNKNOWN_MUNICIPIO))
        if (k := kind("uf_estabelecimento_trocada")) is not None:
            change("sg_uf_estabelecimento", k, col("sg_uf_estabelecimento").replace(other_uf))
        if (k := kind("municipio_paciente_inexistente")) is not None:
            change("co_municipio_paciente", k, bad_muni)
        if (k := kind("uf_paciente_trocada")) is not None:
            change("co_municipio_paciente", k, est_muni)
            change("sg_uf_paciente", k, col("sg_uf_estabelecimento").replace(other_uf))
        if (k := kind("uf_paciente_inexistente")) is not None:
            change("sg_uf_paciente", k, variants(lit("ZZ"), lit("BR"), lit("S P")))
        if (k := kind("cnes_malformado")) is not None:
            cnes = col("co_cnes_estabelecimento")
            change(
                "co_cnes_estabelecimento",
                k,
                variants(cnes.str.slice(1, 6) + lit("X"), cnes.str.slice(0, 6) + lit("A"), cnes + lit("1")),
            )
        if (k := kind("dt_vacina_ilegivel")) is not None:
            change(
                "dt_vacina",
                k,
                variants(lit(f"{year}-02-30"), lit(f"31/04/{year}"), lit("ontem"), lit(self.day.isoformat().replace("-", "/"))),
            )
        if (k := kind("dt_vacina_futura")) is not None:
            future = [lit((self.day + dt.timedelta(days=d)).isoformat()) for d in (1, 7, 30, 400)]
            change("dt_vacina", k, variants(*future))
        if (k := kind("dt_vacina_antiga")) is not None:
            vacina = col("dt_vacina")
            change("dt_vacina", k, variants(lit("1") + vacina.str.slice(1), lit("1899-12-31"), lit("0") + vacina.str.slice(1)))
        if (k := kind("st_documento_desconhecido")) is not None:
            change("st_documento", k, variants(lit("rascunho"), lit("pendente"), lit("amended"), lit("finalizado")))
        if (k := kind("campo_obrigatorio_vazio")) is not None:
            for position, name in enumerate(EMPTIED_FIELDS):
                emptied = k & (var % len(EMPTIED_FIELDS) == position)
                empty = variants(lit(None, pl.String), lit(""), lit("  "), lit("\t"), selector=var // len(EMPTIED_FIELDS))
                change(name, emptied, empty)
        if (k := kind("dt_deletado_ilegivel")) is not None:
            change("dt_deletado_rnds", k, variants(lit("99/99/9999"), lit("deletado"), lit(f"{year}-13-01")))

        def defect_kind(name: str) -> pl.Expr | None:
            k = DEFECT_KINDS.index(name)
            return (dfc == k) if k in present_defect else None

        if (k := defect_kind("codigos_float")) is not None:
            for name in contract.NUMERIC_CODE_COLUMNS:
                value = col(name)
                change(name, k & value.str.contains(r"^\d+$"), value.str.replace(r"^0+(\d)", "${1}") + lit(".0"))
        if (k := defect_kind("zeros_perdidos")) is not None:
            # As an integer-typed export writes them: no leading zeros, and the age
            # (never zero-padded) as a float, so every such record shows a defect.
            for name in contract.CODE_WIDTHS:
                value = col(name)
                change(name, k & value.str.contains(r"^\d+$"), value.str.replace(r"^0+(\d)", "${1}"))
            change("nu_idade_paciente", k, col("nu_idade_paciente") + lit(".0"))
        if (k := defect_kind("ibge7")) is not None:
            ibge7 = _geography().ibge7_by_ibge6
            for name in ("co_municipio_paciente", "co_municipio_estabelecimento"):
                change(name, k, col(name).replace(ibge7))
        if (k := defect_kind("texto_sujo")) is not None:
            change("sg_uf_paciente", k, col("sg_uf_paciente").str.to_lowercase() + lit(" "))
            change("sg_uf_estabelecimento", k, lit(" ") + col("sg_uf_estabelecimento").str.to_lowercase())
            change("st_documento", k, col("st_documento").str.to_uppercase())
            change("tp_sexo_paciente", k, col("tp_sexo_paciente").str.to_lowercase())
            change("no_fantasia_estalecimento", k, col("no_fantasia_estalecimento").str.replace(" ", "\r\n", literal=True))
            change("no_municipio_paciente", k, col("no_municipio_paciente") + lit("  "))
        if (k := defect_kind("data_brasileira")) is not None:
            for name in ("dt_vacina", "dt_deletado_rnds"):
                value = col(name)
                change(name, k, value.str.slice(8, 2) + lit("/") + value.str.slice(5, 2) + lit("/") + value.str.slice(0, 4))

        exprs = []
        for name, rules in changes.items():
            expr: Then | ChainedThen = pl.when(rules[0][0]).then(rules[0][1])
            for when, value in rules[1:]:
                expr = expr.when(when).then(value)
            exprs.append(expr.otherwise(col(name)).alias(name))
        # Only the few touched rows are rewritten, then put back in place.
        rows = np.flatnonzero((invalid >= 0) | (defect >= 0))
        touched = (
            frame[rows]
            .with_columns(
                pl.Series("_invalido", invalid[rows]), pl.Series("_defeito", defect[rows]), pl.Series("_variante", variant[rows])
            )
            .select(exprs)
        )
        positions = pl.Series(rows)
        return frame.with_columns(frame.get_column(name).clone().scatter(positions, touched.get_column(name)) for name in changes)


__all__ = [
    "BLOCK_SIZE",
    "DEFECT_KINDS",
    "EMPTIED_FIELDS",
    "INVALID_KINDS",
    "SyntheticSource",
    "defective_records",
    "invalid_records",
    "synthetic_establishments",
]
