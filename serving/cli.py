"""``vacina-d1 db upgrade`` and ``vacina-d1 gc``: the commands that only need
``serving`` (storage and catalog).

Registered into ``pipelines.cli`` (which turns any failure into one stderr line
and a non-zero exit). ``publish`` chains the partitioner and the publisher, so it
lives above this room (``pipelines/publish_day.py``) and uses ``open_serving``.
Importing this module is cheap: SQLAlchemy, Alembic and the backends load only
when a command runs, so ``vacina-d1 --help`` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.catalog import Catalog
    from serving.settings import ServingSettings
    from serving.storage import Storage


class ServingFailure(OSError):
    """Storage, catalog or publication failure, reported as one line (an OSError so
    the CLI treats it as an expected, explained failure)."""


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str), flush=True)


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"data inválida: {text!r} (use AAAA-MM-DD)") from None


def hide_password(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as given
        return url


def open_serving(args: argparse.Namespace) -> tuple[ServingSettings, Storage, Catalog]:
    """Settings, store and catalog (migrated) for a command's ``--storage``/``--catalog``."""
    import sqlalchemy as sa

    from serving.catalog import Catalog
    from serving.settings import ServingSettings
    from serving.storage import StorageError
    from serving.stores import open_storage

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
        raise ServingFailure(f"catálogo inacessível em {hide_password(catalog_url)}: {detail}") from exc
    return settings, storage, catalog


def upgrade_all(url: str) -> list[str]:
    """Run serving's migrations, and the portal's when that package has them."""
    from serving import db

    packages = ["serving"]
    db.upgrade("serving", url)
    if db.migrations_dir("portal_api") is not None:
        db.upgrade("portal_api", url)
        packages.append("portal_api")
    return packages


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from serving.settings import ServingSettings

    url = args.catalog or ServingSettings().resolved_catalog_url
    try:
        packages = upgrade_all(url)
    except sa.exc.SQLAlchemyError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ServingFailure(f"catálogo inacessível em {hide_password(url)}: {detail}") from exc
    _emit({"command": "db upgrade", "catalog": hide_password(url), "packages": packages})


def cmd_gc(args: argparse.Namespace) -> None:
    from serving.publish import collect_garbage, collect_leftovers
    from serving.storage import StorageError

    if args.older_than_hours < 0:
        raise ValueError("--older-than-hours não pode ser negativo")
    day = _parse_day(args.date) if args.date else None
    settings, storage, catalog = open_serving(args)
    try:
        removed = collect_garbage(storage, catalog, older_than_hours=args.older_than_hours, day=day, dry_run=args.dry_run)
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
    from serving.verify import record_incidents, verify_days

    _settings, storage, catalog = open_serving(args)
    try:
        if args.date:
            days = [_parse_day(args.date)]
        else:
            days = catalog.published_days(_parse_day(args.since) if args.since else None)
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
