"""``vacina-d1 publish``: partition a canonical staging file and publish it.

It chains ``pipelines.partition`` and ``serving.publish``, so it lives here, above
``serving`` (which never imports ``pipelines``). The Dagster assets compose the
same two steps through ``pipelines.flow`` so checks can run between them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.catalog import Catalog
    from serving.storage import Storage


def run_publish(
    input_path: str | Path,
    day: dt.date,
    *,
    storage: Storage,
    catalog: Catalog,
    uf: str | None = None,
    staging_root: str | Path,
    threads: int = 8,
) -> dict[str, Any]:
    """Partition a canonical staging file and publish it; the summary the CLI prints."""
    import sqlalchemy as sa

    from pipelines import contract
    from pipelines.partition import inspect_input, partition_day
    from pipelines.validation import REASON_LABELS
    from serving.cli import ServingFailure
    from serving.publish import SCOPE_ALL, Publisher, PublishError, staged_day_from
    from serving.storage import StorageError, sha256_file

    started = time.perf_counter()
    input_path = Path(input_path)
    inspect_input(input_path, day)
    scope = uf.strip().upper() if uf else SCOPE_ALL
    summary: dict[str, Any] = {"command": "publish", "date": day.isoformat(), "scope": scope}
    try:
        if catalog.already_published(
            day, sha256_file(input_path), contract.LAYOUT_VERSION, None if uf is None else scope
        ) and not _damaged_current(storage, catalog, day, None if uf is None else scope):
            current = [r for r in catalog.current_files_of_day(day) if uf is None or r.uf == scope]
            latest = catalog.latest_publication(day)
            summary.update(
                files=len(current),
                changed=0,
                unchanged=len(current),
                rows=sum(r.rows for r in current),
                bytes_csv=sum(r.bytes_csv for r in current),
                bytes_stored=sum(r.bytes_stored for r in current),
                version=None,
                current_version=latest.version if latest else None,
                manifest_key=latest.manifest_key if latest else None,
                partitioned=False,
                seconds=round(time.perf_counter() - started, 3),
            )
            return summary
        staging = Path(staging_root) / f"{day.isoformat()}-{scope}-{uuid.uuid4().hex[:8]}"
        try:
            partition = partition_day(input_path, staging, day=day, uf=uf)
            staged = staged_day_from(partition, reason_labels=REASON_LABELS)
            outcome = Publisher(storage, catalog, threads=threads).publish(staged)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except (StorageError, PublishError) as exc:
        raise ServingFailure(str(exc)) from exc
    except sa.exc.SQLAlchemyError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ServingFailure(f"falha no catálogo: {detail}") from exc
    latest = catalog.latest_publication(day)
    summary.update(
        files=outcome.files,
        changed=outcome.changed,
        unchanged=outcome.unchanged,
        records=partition.records,
        rows=outcome.rows,
        bytes_csv=outcome.bytes_csv,
        bytes_stored=outcome.bytes_stored,
        version=outcome.publication_version,
        current_version=latest.version if latest else None,
        manifest_key=outcome.manifest_key or (latest.manifest_key if latest else None),
        partitioned=True,
        partition_seconds=partition.seconds,
        publish_seconds=outcome.seconds,
        seconds=round(time.perf_counter() - started, 3),
    )
    return summary


def cmd_publish(args: argparse.Namespace) -> None:
    from pipelines import dates
    from pipelines.cli import emit
    from pipelines.partition import inspect_input
    from serving.cli import hide_password, open_serving

    day = dates.parse_day(args.date)
    if args.uf is not None and not args.uf.strip():
        raise ValueError("--uf vazio: informe a sigla (ex.: SP)")
    input_path = Path(args.input)
    inspect_input(input_path, day)  # bad input is refused before anything is created
    settings, storage, catalog = open_serving(args)
    try:
        summary = run_publish(
            input_path, day, storage=storage, catalog=catalog, uf=args.uf, staging_root=settings.home / "staging"
        )
    finally:
        catalog.engine.dispose()
    summary.update(storage=storage.url, catalog=hide_password(catalog.url))
    emit(summary)


def register(subparsers: Any) -> None:
    publish = subparsers.add_parser(
        "publish", help="particiona um dia em arquivos por UF e município e publica (atômico, versionado)"
    )
    publish.add_argument("--date", required=True, help="dia de entrada na RNDS (AAAA-MM-DD, yesterday)")
    publish.add_argument("--input", required=True, help="Parquet canônico do dia (saída de generate/import)")
    publish.add_argument("--storage", help="diretório, file:// ou s3://bucket/prefixo (padrão: var/storage)")
    publish.add_argument("--catalog", help="URL SQLAlchemy do catálogo (padrão: sqlite var/catalog.db)")
    publish.add_argument("--uf", help="publica só esta UF (o arquivo da UF e os dos seus municípios)")
    publish.set_defaults(handler=cmd_publish)


def _damaged_current(storage: Storage, catalog: Catalog, day: dt.date, uf: str | None) -> bool:
    """Whether a current object of the day no longer matches the catalog: the day is then
    partitioned and published again even though its input did not change (issue 11)."""
    from serving.verify import damaged

    current = [r for r in catalog.current_files_of_day(day) if uf is None or r.uf == uf]
    return bool(damaged(storage, current))
