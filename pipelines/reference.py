"""Reference tables shipped with the project (see NOTICE for their origins)."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from typing import Iterator

import polars as pl


def _data_path(name: str):
    return resources.files("pipelines") / "data" / name


def _read_csv_rows(name: str) -> Iterator[dict[str, str]]:
    with _data_path(name).open("r", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


@dataclass(frozen=True, slots=True)
class Municipio:
    ibge7: str
    ibge6: str
    nome: str
    uf: str
    codigo_uf: str
    capital: bool


@dataclass(frozen=True, slots=True)
class UF:
    codigo: str
    sigla: str
    nome: str


@functools.cache
def municipios() -> dict[str, Municipio]:
    """Every IBGE municipality (5,570 of the 2020 list plus Boa Esperança do Norte/MT),
    keyed by the 6-digit code the vaccination files use."""
    result = {}
    for row in _read_csv_rows("municipios_ibge.csv"):
        m = Municipio(
            ibge7=row["codigo_ibge7"],
            ibge6=row["codigo_ibge6"],
            nome=row["nome"],
            uf=row["uf"],
            codigo_uf=row["codigo_uf"],
            capital=row["capital"] == "1",
        )
        result[m.ibge6] = m
    return result


@functools.cache
def ufs() -> dict[str, UF]:
    """The 27 federative units keyed by their two-letter code."""
    return {row["uf"]: UF(row["codigo_uf"], row["uf"], row["nome"]) for row in _read_csv_rows("ufs.csv")}


@functools.cache
def municipios_frame() -> pl.DataFrame:
    """Municipalities as a frame: ibge6, ibge7, nome, uf, capital (for joins)."""
    rows = municipios().values()
    return pl.DataFrame(
        {
            "ibge6": [m.ibge6 for m in rows],
            "ibge7": [m.ibge7 for m in rows],
            "nome": [m.nome for m in rows],
            "uf": [m.uf for m in rows],
            "capital": [m.capital for m in rows],
        }
    )


@functools.cache
def populacao() -> dict[str, int]:
    """Population per municipality keyed by ibge6 (for population-skewed synthetic data)."""
    result = {}
    for row in _read_csv_rows("populacao_municipios.csv"):
        result[row["codigo_ibge7"][:6]] = int(row["populacao"])
    return result


@functools.cache
def codesystem(name: str) -> dict[str, str]:
    """An RNDS code system (e.g. ``BRImunobiologico``) as ``{code: display}``."""
    result = {
        row["code"]: row["display"] for row in _read_csv_rows("rnds_codesystems_imunizacao.csv") if row["codesystem"] == name
    }
    if not result:
        raise KeyError(f"sistema de códigos desconhecido: {name}")
    return result


def uf_nome_maiusculo(uf: str) -> str:
    """The state's name as the public files write it (``no_uf_paciente``): upper case."""
    return ufs()[uf].nome.upper()
