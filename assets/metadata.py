"""Materialization metadata a person reads at a glance in the Dagster UI (labels in pt-BR)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from pipelines.extract import ExtractCounts
from pipelines.flow import PublicationRecord
from pipelines.partition import SCOPE_UF, PartitionResult
from pipelines.validation import reason_label

_ROWS_PER_UF_SCHEMA = TableSchema(
    columns=[
        TableColumn("uf", "string", description="unidade da federação"),
        TableColumn("linhas", "int", description="linhas no arquivo da UF (ocorrência ou residência)"),
        TableColumn("arquivos_municipio", "int", description="arquivos de municípios da UF com registros"),
        TableColumn("linhas_municipios", "int", description="linhas somadas dos arquivos de municípios"),
        TableColumn("bytes_csv", "int", description="tamanho sem compressão (arquivo da UF)"),
        TableColumn("bytes_gz", "int", description="tamanho comprimido (arquivo da UF)"),
    ]
)


def location(path_or_url: str) -> MetadataValue:
    """A local path or an object store URL, as a clickable/copyable value."""
    if "://" in path_or_url:
        return MetadataValue.url(path_or_url)
    return MetadataValue.path(path_or_url)


def counts_metadata(counts: ExtractCounts) -> dict[str, Any]:
    share = counts.quarantined / counts.read if counts.read else 0.0
    return {
        "lidos": counts.read,
        "válidos": counts.valid,
        "em quarentena": counts.quarantined,
        "fração em quarentena": MetadataValue.float(round(share, 6)),
        "fora do dia": counts.outside_day,
        "principais motivos da quarentena": reasons_markdown(counts),
    }


def reasons_markdown(counts: ExtractCounts, n: int = 5) -> MetadataValue:
    top = counts.top_reasons(n)
    if not top:
        return MetadataValue.md("nenhum registro em quarentena")
    lines = ["| motivo | registros |", "|---|---:|"]
    lines += [f"| `{code}` — {reason_label(code)} | {count} |" for code, count in top]
    return MetadataValue.md("\n".join(lines))


def rows_per_uf(result: PartitionResult) -> MetadataValue:
    by_uf: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in result.files:
        entry = by_uf[f.uf]
        if f.scope_kind == SCOPE_UF:
            entry["linhas"] += f.rows
            entry["bytes_csv"] += f.bytes_csv
            entry["bytes_gz"] += f.bytes_stored
        else:
            entry["arquivos_municipio"] += 1
            entry["linhas_municipios"] += f.rows
    records = [
        TableRecord(
            {
                "uf": uf,
                "linhas": values["linhas"],
                "arquivos_municipio": values["arquivos_municipio"],
                "linhas_municipios": values["linhas_municipios"],
                "bytes_csv": values["bytes_csv"],
                "bytes_gz": values["bytes_gz"],
            }
        )
        for uf, values in sorted(by_uf.items())
    ]
    return MetadataValue.table(records, schema=_ROWS_PER_UF_SCHEMA)


def files_metadata(result: PartitionResult) -> dict[str, Any]:
    bytes_csv, bytes_gz = result.bytes_csv, result.bytes_stored
    return {
        "linhas por UF": rows_per_uf(result),
        "arquivos": len(result.files),
        "arquivos de UF": sum(1 for f in result.files if f.scope_kind == SCOPE_UF),
        "arquivos de município": sum(1 for f in result.files if f.scope_kind != SCOPE_UF),
        "linhas": result.rows,
        "registros válidos": result.records,
        "bytes antes da compressão": MetadataValue.int(bytes_csv),
        "bytes comprimidos (gzip)": MetadataValue.int(bytes_gz),
        "taxa de compressão": MetadataValue.float(round(bytes_gz / bytes_csv, 4) if bytes_csv else 0.0),
        "segundos do particionamento": MetadataValue.float(result.seconds),
    }


def publication_metadata(record: PublicationRecord, catalog_url: str) -> dict[str, Any]:
    if record.publication_version is not None:
        outcome = f"nova versão {record.publication_version} ({record.changed} arquivo(s) alterado(s))"
    else:
        outcome = f"nada mudou: a versão {record.current_version} continua valendo (republicação idempotente)"
    return {
        "resultado": outcome,
        "versão publicada": record.publication_version if record.publication_version is not None else 0,
        "versão corrente": record.current_version,
        "arquivos alterados": record.changed,
        "arquivos inalterados": record.unchanged,
        "arquivos": record.files,
        "linhas": record.rows,
        "bytes antes da compressão": MetadataValue.int(record.bytes_csv),
        "bytes comprimidos (gzip)": MetadataValue.int(record.bytes_stored),
        "manifesto": location(record.manifest_location),
        "armazenamento": location(record.storage_url),
        "catálogo": catalog_url,
        "segundos da publicação": MetadataValue.float(record.seconds),
    }
