"""The current view of a day: a Frictionless data package listing exactly the day's
current files.

``d1/AAAA/MM/DD/datapackage.json`` (a Tabular Data Package) names every current
file of the day and its representations (the ``.csv.gz``, its typed ``.parquet``,
each UF's indicator table), each with its path relative to the day's folder, size
and SHA-256, and the column schemas (``esquema-registros.json``,
``esquema-indicadores.json`` beside it: every column's name, type and description
from the public dictionary, and how to count each record once).

The store keeps every version (``<operation>/v0003-…/``) so old versions stay
addressable for audit, which means a glob over the store reads superseded
versions too. Readers take the list of files from this package instead (README,
"Arquivos publicados"). It is rewritten after each publication's commit (the
catalog is the truth; the package mirrors it) and, when a publication finds it
missing or stale, by the next publication of the day, idempotent ones included.
It carries no ``uploaded-at`` metadata, so garbage collection never touches it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Mapping

from serving.catalog import Catalog, FileRecord, RepresentationRecord
from serving.storage import Storage, StorageError

log = logging.getLogger("vacina_d1.serving")

PACKAGE_NAME = "datapackage.json"
SCHEMA_FILES = {"registros": "esquema-registros.json", "indicadores": "esquema-indicadores.json"}
DIALECT = {"delimiter": ";", "header": True, "quoteChar": '"', "doubleQuote": True, "lineTerminator": "\n"}

COUNT_ONCE = (
    "Cada arquivo de território traz os registros que ocorreram nele E os de residentes nele vacinados fora; "
    "a coluna tp_vinculo_territorio diz qual: 'ocorrencia', 'residencia' ou 'ambos'. Para contar cada registro "
    "uma vez: doses aplicadas no território = linhas com tp_vinculo_territorio em ('ocorrencia', 'ambos'); "
    "doses de residentes = linhas em ('residencia', 'ambos'). Um registro de um residente de SP vacinado no RJ "
    "está no arquivo do RJ (ocorrencia) e no de SP (residencia): somar os arquivos das UFs sem filtrar conta-o "
    "duas vezes. Doses válidas: st_documento = 'final' e dt_deletado_rnds vazio."
)


def day_folder(day) -> str:
    return f"d1/{day:%Y/%m/%d}/"


def package_key(day) -> str:
    return day_folder(day) + PACKAGE_NAME


def is_view_key(key: str) -> bool:
    """A key of a day's current view (the package or its schemas), which no catalog row names."""
    name = key.rsplit("/", 1)[-1]
    return key.startswith("d1/") and key.count("/") == 4 and name in (PACKAGE_NAME, *SCHEMA_FILES.values())


def _resource_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text.lower())


def _resource(record: FileRecord, folder: str) -> dict[str, Any]:
    return {
        "name": _resource_name(record.file_name),
        "path": record.object_key.removeprefix(folder),
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "compression": "gz",
        "encoding": "utf-8-sig",
        "dialect": DIALECT,
        "schema": SCHEMA_FILES["registros"],
        "bytes": record.bytes_stored,
        "hash": f"sha256:{record.sha256_stored}",
        "vacina_d1": _about(record, rows=record.rows),
    }


def _about(record: FileRecord, *, rows: int, kind: str = "csv.gz") -> dict[str, Any]:
    return {
        "operation": record.operation,
        "scope": {"kind": record.scope_kind, "uf": record.uf, "ibge6": record.ibge6},
        "version": record.version,
        "representation": kind,
        "rows": rows,
    }


def _representation(record: FileRecord, rep: RepresentationRecord, folder: str) -> dict[str, Any]:
    parquet = rep.kind.endswith("parquet")
    schema = SCHEMA_FILES["indicadores" if rep.kind.startswith("indicadores") else "registros"]
    resource: dict[str, Any] = {
        "name": _resource_name(rep.file_name),
        "path": rep.object_key.removeprefix(folder),
        "profile": "tabular-data-resource",
        "format": "parquet" if parquet else "csv",
        "mediatype": rep.content_type.split(";")[0],
        "schema": schema,
        "bytes": rep.bytes,
        "hash": f"sha256:{rep.sha256}",
        "vacina_d1": _about(record, rows=rep.rows, kind=rep.kind),
    }
    if not parquet:
        resource.update({"encoding": "utf-8-sig", "dialect": DIALECT})
    return resource


def build(
    day, records: list[FileRecord], representations: Mapping[int, list[RepresentationRecord]], publication_version: int | None
) -> dict[str, Any]:
    folder = day_folder(day)
    resources = []
    for record in sorted(records, key=lambda r: r.operation):
        resources.append(_resource(record, folder))
        resources.extend(_representation(record, rep, folder) for rep in representations.get(record.id, []))
    return {
        "profile": "tabular-data-package",
        "name": f"vacina-d1-{day.isoformat()}",
        "title": f"Registros de vacinação D-1 da RNDS, entrada em {day.isoformat()} — arquivos correntes",
        "description": (
            "Os arquivos correntes do dia (a versão atual de cada um; as anteriores continuam guardadas e "
            "listadas nos manifestos de d1/AAAA/MM/DD/manifestos/). Leia a lista de arquivos daqui em vez de "
            "listar o armazenamento, que guarda todas as versões. " + COUNT_ONCE
        ),
        "version": str(publication_version or 0),
        "vacina_d1": {"date": day.isoformat(), "publication_version": publication_version, "count_once": COUNT_ONCE},
        "resources": resources,
    }


def _dumps(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def _put_if_changed(storage: Storage, key: str, data: bytes) -> bool:
    digest = hashlib.sha256(data).hexdigest()
    info = storage.head(key)
    if info is not None and info.size == len(data) and storage.sha256(key) == digest:
        return False
    storage.put_bytes(key, data, content_type="application/json", metadata={"sha256": digest})
    return True


def write_current(storage: Storage, catalog: Catalog, day, table_schemas: Mapping[str, Any]) -> str:
    """Write (when different) the day's schemas and data package from the catalog's
    current files. Returns the package's key."""
    folder = day_folder(day)
    for name, file_name in SCHEMA_FILES.items():
        if name in table_schemas:
            _put_if_changed(storage, folder + file_name, _dumps(table_schemas[name]))
    records = catalog.current_files_of_day(day)
    representations = catalog.representations([r.id for r in records])
    latest = catalog.latest_publication(day)
    document = build(day, records, representations, latest.version if latest is not None else None)
    document["sources"] = list(table_schemas.get("sources", []))
    key = package_key(day)
    _put_if_changed(storage, key, _dumps(document))
    return key


def refresh_quietly(storage: Storage, catalog: Catalog, day, table_schemas: Mapping[str, Any] | None) -> str | None:
    """``write_current`` after a commit: a failure here leaves the previous package
    (a complete, older set, still stored) and is repaired by the next publication."""
    if table_schemas is None:
        return None
    try:
        return write_current(storage, catalog, day, table_schemas)
    except StorageError as exc:
        log.warning("pacote de dados de %s não atualizado (a próxima publicação refaz): %s", day, exc)
        return None
