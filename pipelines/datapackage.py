"""The Table Schemas of the published tables (Frictionless ``tableschema``), for
the day's data package (``serving.datapackage``): every column's name, type and
description. Descriptions come from the public data dictionary shipped as package
data (``pipelines/data/pni_rotina_dicionario.csv``, the Ministério da Saúde's
``Dicionario_tb_ria_rotina.pdf``; origin in NOTICE)."""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import Any

from pipelines import contract
from pipelines import indicators as day_indicators

DICTIONARY = "pni_rotina_dicionario.csv"
DICTIONARY_SOURCE = {
    "title": "Dicionário de dados da vacinação de rotina (Dicionario_tb_ria_rotina.pdf), Ministério da Saúde",
    "path": "https://s3.sa-east-1.amazonaws.com/ckan.saude.gov.br/dbbni/Dicionario_tb_ria_rotina.pdf",
    "description": "Transcrito de SidneyBissoli/healthbr-data (docs/sipni/); origem em NOTICE do vacina-d1.",
}
# Column names in the public CSV that the dictionary calls otherwise.
_DICTIONARY_ALIASES = {"dt_deletado_rnds": "dt_deleted"}

VINCULO_DESCRIPTION = (
    "Por que o registro está no arquivo deste território: 'ocorrencia' (vacinado num estabelecimento do "
    "território), 'residencia' (o paciente mora no território e foi vacinado fora) ou 'ambos'. Para contar cada "
    "registro uma vez: ocorrência = 'ocorrencia' ou 'ambos'; residência = 'residencia' ou 'ambos'. "
    "Coluna do vacina-d1, fora do dicionário público."
)


@functools.cache
def dictionary() -> dict[str, str]:
    """Column name → description, as the public dictionary gives it."""
    with resources.files("pipelines").joinpath("data", DICTIONARY).open(encoding="utf-8") as handle:
        return {row["campo"]: row["descricao"] for row in csv.DictReader(handle)}


def _field(name: str) -> dict[str, Any]:
    text = dictionary().get(_DICTIONARY_ALIASES.get(name, name))
    if name == contract.TERRITORY_COLUMN:
        text = VINCULO_DESCRIPTION
    field: dict[str, Any] = {"name": name, "type": "date" if name in contract.DATE_COLUMNS else "string"}
    if name in contract.DATE_COLUMNS:
        field["format"] = "%Y-%m-%d"
    if name in contract.CODE_WIDTHS:
        text = f"{text}. Texto com {contract.CODE_WIDTHS[name]} dígitos: leia como texto para manter os zeros à esquerda"
    elif name in contract.NUMERIC_CODE_COLUMNS:
        text = f"{text}. Código: leia como texto"
    field["description"] = text or name
    return field


def records_schema() -> dict[str, Any]:
    return {
        "fields": [_field(name) for name in contract.FILE_COLUMNS],
        "primaryKey": None,
        "missingValues": [""],
        "vacina_d1": {"layout_version": contract.LAYOUT_VERSION, "unique_per_file": "co_documento"},
    }


def indicators_schema() -> dict[str, Any]:
    kinds = {"dt_entrada_rnds": ("date", {"format": "%Y-%m-%d"}), "qt_doses": ("integer", {})}
    fields = []
    for name in day_indicators.COLUMNS:
        kind, extra = kinds.get(name, ("string", {}))
        fields.append({"name": name, "type": kind, **extra, "description": day_indicators.DESCRIPTIONS[name]})
    return {"fields": fields, "missingValues": [""]}


def table_schemas() -> dict[str, Any]:
    """What ``serving.publish.StagedDay.table_schemas`` takes."""
    schemas: dict[str, Any] = {"registros": records_schema(), "indicadores": indicators_schema(), "sources": [DICTIONARY_SOURCE]}
    schemas["registros"].pop("primaryKey")
    return schemas
