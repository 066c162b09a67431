"""``vacina-d1 publish``, ``vacina-d1 db upgrade`` and ``vacina-d1 gc``.

Registered into ``pipelines.cli`` (which turns any failure into one stderr line
and a non-zero exit). Publishing needs the partitioner, so ``publish`` is the one
place in ``serving`` that imports ``pipelines`` (lazily, inside the command).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from serving import db
from serving.catalog import Catalog
from serving.settings import ServingSettings
from serving.storage import Storage, StorageError, open_storage, sha256_file


class ServingFailure(OSError):
    """Storage, catalog or publication failure, reported as one line (an OSError so
    the CLI treats it as an expected, explained failure)."""


def _emit(payload: dict[str, Any]) -> None:
    from pipelines.cli import emit

    emit(payload)


def _hide_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as given
        return url


def _open(args: argparse.Namespace) -> tuple[ServingSettings, Storage, Catalog]:
    settings = ServingSettings()
    storage_url = getattr(args, "storage", None) or settings.resolved_storage_url
    catalog_url = getattr(args, "catalog", None) or settings.resolved_catalog_url
    try:
        storage = open_storage(storage_url)
    except StorageError as exc:
        raise ServingFailure(str(exc)) from exc
    try:
        catalog = Catalog(catalog_url).upgrade()
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ServingFailure(f"catálogo inacessível em {_hide_password(catalog_url)}: {detail}") from exc
    return settings, storage, catalog


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
    """Partition a canonical staging file and publish it; the summary the CLI prints.
    Reusable by the orchestrator (the Dagster assets call the same function)."""
    from pipelines import contract
    from pipelines.partition import inspect_input, partition_day
    from pipelines.validation import REASON_LABELS
    from serving.publish import SCOPE_ALL, PublishError, Publisher, staged_day_from

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


def _damaged_current(storage: Storage, catalog: Catalog, day: dt.date, uf: str | None) -> bool:
    """Whether a current object of the day no longer matches the catalog: the day is then
    partitioned and published again even though its input did not change."""
    from serving.verify import damaged

    current = [r for r in catalog.current_files_of_day(day) if uf is None or r.uf == uf]
    return bool(damaged(storage, current))


def cmd_publish(args: argparse.Namespace) -> None:
    from pipelines import dates

    day = dates.parse_day(args.date)
    if args.uf is not None and not args.uf.strip():
        raise ValueError("--uf vazio: informe a sigla (ex.: SP)")
    from pipelines.partition import inspect_input

    input_path = Path(args.input)
    inspect_input(input_path, day)  # bad input is refused before anything is created
    settings, storage, catalog = _open(args)
    try:
        summary = run_publish(
            input_path, day, storage=storage, catalog=catalog, uf=args.uf, staging_root=settings.home / "staging"
        )
    finally:
        catalog.engine.dispose()
    summary.update(storage=storage.url, catalog=_hide_password(catalog.url))
    _emit(summary)


def upgrade_all(url: str) -> list[str]:
    """Run serving's migrations, and the portal's when that package has them."""
    packages = ["serving"]
    db.upgrade("serving", url)
    if db.migrations_dir("portal_api") is not None:
        db.upgrade("portal_api", url)
        packages.append("portal_api")
    return packages


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    url = args.catalog or ServingSettings().resolved_catalog_url
    try:
        packages = upgrade_all(url)
    except sa.exc.SQLAlchemyError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ServingFailure(f"catálogo inacessível em {_hide_password(url)}: {detail}") from exc
    _emit({"command": "db upgrade", "catalog": _hide_password(url), "packages": packages})


def cmd_gc(args: argparse.Namespace) -> None:
    from pipelines import dates
    from serving.publish import collect_garbage, collect_leftovers

    if args.older_than_hours < 0:
        raise ValueError("--older-than-hours não pode ser negativo")
    day = dates.parse_day(args.date) if args.date else None
    settings, storage, catalog = _open(args)
    try:
        removed = collect_garbage(
            storage, catalog, older_than_hours=args.older_than_hours, day=day, dry_run=args.dry_run
        )
        leftovers = collect_leftovers(storage, settings.home, older_than_hours=args.older_than_hours, dry_run=args.dry_run)
    except StorageError as exc:
        raise ServingFailure(str(exc)) from exc
    finally:
        catalog.engine.dispose()
    _emit(
        {
            "command": "gc",
            "date": day.isoformat() if day else None,
            "removed": len(removed),
            "dry_run": args.dry_run,
            "keys": removed[:20],
            "tmp_removed": len(leftovers.tmp_objects),
            "staging_removed": len(leftovers.staging_dirs),
            "bytes_freed": leftovers.bytes_freed,
            "leftovers": (leftovers.tmp_objects + leftovers.staging_dirs)[:20],
            "storage": storage.url,
        }
    )


def cmd_verify(args: argparse.Namespace) -> None:
    from pipelines import dates
    from serving.verify import record_incidents, verify_days

    _settings, storage, catalog = _open(args)
    try:
        if args.date:
            days = [dates.parse_day(args.date)]
        else:
            days = catalog.published_days(dates.parse_day(args.since) if args.since else None)
        report = verify_days(storage, catalog, days, threads=args.threads)
        record_incidents(catalog, report, detected_by="verify")  # the portal stops serving them
    finally:
        catalog.engine.dispose()
    _emit({"command": "verify", **report.as_dict(), "storage": storage.url})
    if not report.ok:
        keys = sorted({p.key for p in report.problems})
        more = f" e mais {len(keys) - 10}" if len(keys) > 10 else ""
        raise ServingFailure(f"{len(keys)} objeto(s) não conferem com o catálogo: {', '.join(keys[:10])}{more}")


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

    database = subparsers.add_parser("db", help="banco do catálogo e do portal")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="AÇÃO")
    upgrade = database_commands.add_parser("upgrade", help="cria ou migra as tabelas (idempotente)")
    upgrade.add_argument("--catalog", help="URL SQLAlchemy (padrão: sqlite var/catalog.db)")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    gc = subparsers.add_parser(
        "gc", help="remove objetos, temporários (.tmp) e áreas de preparação de publicações não concluídas"
    )
    gc.add_argument("--storage", help="diretório, file:// ou s3://bucket/prefixo (padrão: var/storage)")
    gc.add_argument("--catalog", help="URL SQLAlchemy do catálogo (padrão: sqlite var/catalog.db)")
    gc.add_argument("--date", help="só este dia (padrão: todos)")
    gc.add_argument("--older-than-hours", type=float, default=24.0, help="idade mínima de um órfão (padrão 24)")
    gc.add_argument("--dry-run", action="store_true", help="só lista, não remove")
    gc.set_defaults(handler=cmd_gc)

    verify = subparsers.add_parser(
        "verify", help="relê os objetos publicados e confere tamanho e SHA-256 com o catálogo e os manifestos"
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--date", help="só este dia (AAAA-MM-DD, yesterday)")
    which.add_argument("--since", help="deste dia em diante")
    which.add_argument("--all", action="store_true", help="todos os dias publicados")
    verify.add_argument("--storage", help="diretório, file:// ou s3://bucket/prefixo (padrão: var/storage)")
    verify.add_argument("--catalog", help="URL SQLAlchemy do catálogo (padrão: sqlite var/catalog.db)")
    verify.add_argument("--threads", type=int, default=4, choices=range(1, 33), metavar="1-32", help="leituras em paralelo")
    verify.set_defaults(handler=cmd_verify)
