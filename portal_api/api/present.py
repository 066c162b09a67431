"""Turning rows into the API's answers (shared by several routes)."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from pipelines import reference
from portal_api import crud, schemas
from portal_api.core import security
from portal_api.models import DownloadLogEntry, User
from serving.catalog import FileRecord

BRASILIA = ZoneInfo("America/Sao_Paulo")


def territory(operation: str) -> tuple[str, str | None, str]:
    parsed = crud.parse_operation(operation)
    if parsed.ibge6:
        return parsed.uf, parsed.ibge6, f"{reference.municipios()[parsed.ibge6].nome}/{parsed.uf}"
    return parsed.uf, None, reference.ufs()[parsed.uf].nome


def local_time(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(BRASILIA)


def download(entry: DownloadLogEntry, user: User) -> schemas.DownloadOut:
    when = local_time(entry.created_at)
    byte_range = None
    if entry.range_start is not None:
        byte_range = f"bytes={entry.range_start}-{entry.range_end if entry.range_end is not None else ''}"
    return schemas.DownloadOut(
        id=entry.id,
        user_name=user.name,
        user_cpf=security.mask_cpf(user.cpf),
        downloaded_at=when,
        downloaded_at_local=when.strftime("%d/%m/%Y %H:%M:%S"),
        file_id=entry.published_file_id,
        file_version=entry.file_version,
        representation=entry.representation,
        delivery=entry.delivery,
        range=byte_range,
    )


def file(record: FileRecord, downloads: list[tuple[DownloadLogEntry, User]], total: int) -> schemas.FileOut:
    return schemas.FileOut(
        id=record.id,
        operation=record.operation,
        day=record.day,
        version=record.version,
        is_current=record.is_current,
        name=record.file_name,
        rows=record.rows,
        size=record.bytes_stored,
        size_csv=record.bytes_csv,
        sha256=record.sha256_stored,
        sha256_csv=record.sha256_csv,
        published_at=local_time(record.published_at),
        download_url=f"/files/{record.id}/content",
        downloads=[download(entry, user) for entry, user in downloads],
        downloads_total=total,
    )


def paging(total: int, page: int, page_size: int, shown: int) -> dict:
    first = (page - 1) * page_size + 1 if shown else 0
    last = first + shown - 1 if shown else 0
    return {
        "total": total,
        "page": page,
        "page_size": page_size,
        "pages": max(1, math.ceil(total / page_size)) if total else 0,
        "first_item": first,
        "last_item": last,
        "label": f"{first}-{last} de {total} itens" if shown else f"0 de {total} itens",
    }
