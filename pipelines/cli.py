"""``vacina-d1``: the operators' front door.

Every command prints one JSON line on stdout when it succeeds. When it cannot,
it prints one line on stderr saying why and exits non-zero — never a traceback
(set ``VACINA_D1_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 1


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str), flush=True)


def _default_rejects(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".parquet") + ".rejects.parquet")


def cmd_generate(args: argparse.Namespace) -> None:
    from pipelines import dates
    from pipelines.extract import extract
    from pipelines.sources import open_source

    day = dates.parse_day(args.date)
    today = dates.today()
    if day > today:
        raise ValueError(f"a data {day} está no futuro: a RNDS ainda não recebeu esse dia")
    if args.records < 0:
        raise ValueError("--records não pode ser negativo")
    source = open_source("synthetic", day=day, records=args.records, seed=args.seed)
    out = Path(args.out)
    rejects = Path(args.rejects) if args.rejects else _default_rejects(out)
    counts = extract(source.batches(), out, rejects, today=today, day=day, source=source)
    emit(
        {
            "command": "generate",
            "date": day.isoformat(),
            "read": counts.read,
            "valid": counts.valid,
            "quarantined": counts.quarantined,
            "out": str(out),
            "rejects": str(rejects),
            "seconds": counts.seconds,
        }
    )


def cmd_import(args: argparse.Namespace) -> None:
    from pipelines import dates
    from pipelines.extract import NO_ENTRY_DAY, extract, split_by_entry_day
    from pipelines.sources import open_source

    if not Path(args.input).exists():
        raise FileNotFoundError(f"arquivo de entrada não encontrado: {args.input}")
    if args.split_days and (args.out or args.rejects or args.date):
        raise ValueError("--split-days grava um arquivo por dia: não use junto com --out, --rejects ou --date")
    if not args.split_days and not args.out:
        raise ValueError("diga onde gravar: --out ARQUIVO.parquet (um arquivo) ou --split-days DIRETÓRIO (um por dia)")
    if args.entry_date and args.format != "covid-csv":
        raise ValueError("--entry-date só vale para --format covid-csv (os outros formatos trazem a data de entrada)")
    options: dict[str, Any] = {}
    if args.encoding and args.format != "fhir":
        options["encoding"] = args.encoding
    if args.entry_date:
        options["entry_date"] = dates.parse_day(args.entry_date)
    source = open_source(args.format, args.input, **options)
    today = dates.today()
    if args.split_days:
        started = time.perf_counter()
        days = split_by_entry_day(source, args.split_days, today=today)
        ordered = sorted(day for day in days if day is not None) + ([None] if None in days else [])
        summary = {
            (day.isoformat() if day is not None else NO_ENTRY_DAY): {
                "read": days[day].read,
                "valid": days[day].valid,
                "quarantined": days[day].quarantined,
            }
            for day in ordered
        }
        emit(
            {
                "command": "import",
                "format": args.format,
                "split_days": str(args.split_days),
                "read": sum(c.read for c in days.values()),
                "valid": sum(c.valid for c in days.values()),
                "quarantined": sum(c.quarantined for c in days.values()),
                "days": summary,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        return
    day = dates.parse_day(args.date) if args.date else None
    out = Path(args.out)
    rejects = Path(args.rejects) if args.rejects else _default_rejects(out)
    counts = extract(source.batches(), out, rejects, today=today, day=day, source=source)
    emit(
        {
            "command": "import",
            "format": args.format,
            "date": day.isoformat() if day else None,
            "read": counts.read,
            "valid": counts.valid,
            "quarantined": counts.quarantined,
            "outside_day": counts.outside_day,
            "out": str(out),
            "rejects": str(rejects),
            "seconds": counts.seconds,
        }
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vacina-d1",
        description="Registros de vacinação D-1 da RNDS em arquivos CSV por UF e município.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMANDO")

    generate = commands.add_parser("generate", help="gera um dia sintético (a fonte padrão)")
    generate.add_argument("--date", required=True, help="dia de entrada na RNDS (AAAA-MM-DD, yesterday)")
    generate.add_argument("--records", type=int, default=20_000, help="quantos registros gerar")
    generate.add_argument("--seed", type=int, default=2026, help="semente: a mesma semente dá o mesmo dia")
    generate.add_argument("--out", required=True, help="arquivo Parquet de saída (registros válidos)")
    generate.add_argument("--rejects", help="arquivo Parquet da quarentena (padrão: <out>.rejects.parquet)")
    generate.set_defaults(handler=cmd_generate)

    imp = commands.add_parser("import", help="importa exportações do OpenDataSUS ou documentos FHIR da RNDS")
    imp.add_argument("--format", required=True, choices=["pni-csv", "covid-csv", "fhir"])
    imp.add_argument("--input", required=True, help="arquivo CSV, zip, JSON, NDJSON ou diretório")
    imp.add_argument("--out", help="arquivo Parquet de saída (registros válidos)")
    imp.add_argument("--rejects", help="arquivo Parquet da quarentena (padrão: <out>.rejects.parquet)")
    imp.add_argument("--date", help="só os registros deste dia de entrada na RNDS")
    imp.add_argument("--encoding", choices=["auto", "utf-8", "latin-1"], default="auto", help="codificação do CSV")
    imp.add_argument(
        "--split-days",
        metavar="DIRETÓRIO",
        help="lê a entrada uma vez e grava um par <AAAA-MM-DD>.parquet/.rejects.parquet por dia de entrada "
        "(e sem-data.rejects.parquet para datas ilegíveis), em vez de --out",
    )
    imp.add_argument(
        "--entry-date",
        metavar="AAAA-MM-DD",
        help="covid-csv: data de entrada na RNDS de todos os registros (padrão: a data de aplicação)",
    )
    imp.set_defaults(handler=cmd_import)

    from pipelines import publish_day

    publish_day.register(commands)
    for register in _extensions():
        register(commands)
    # Listed for --help only: main() hands `sync` to the municipalities' client before parsing.
    commands.add_parser(
        "sync", add_help=False, help="mantém uma pasta (e um banco) em dia com os arquivos do portal (vacina-d1 sync --help)"
    )
    return parser


def _extensions() -> list[Callable[[Any], None]]:
    """Commands of the other packages (db/gc, run, serve, admin), when installed. Looked
    up by name (a plugin registry, not a dependency of this room); each module is
    light to import — its command loads SQLAlchemy, Dagster or FastAPI when it runs."""
    registers = []
    for module_name in ("serving.cli", "assets.cli", "portal_api.cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        registers.append(module.register)
    return registers


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else exc.__class__.__name__
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)) and exc.filename:
        message = f"{exc.strerror or message}: {exc.filename}"
    return message


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sync"]:  # the municipalities' client (client/), its own distribution
        from vacina_d1_client.cli import main as sync_main

        return sync_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("vacina-d1: interrompido", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into one line
        if os.environ.get("VACINA_D1_DEBUG"):
            raise
        from pipelines.sources.base import SourceError

        expected = isinstance(exc, (SourceError, ValueError, OSError, LookupError))
        prefix = "erro" if expected else f"erro inesperado ({exc.__class__.__name__})"
        print(f"vacina-d1: {prefix}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR if expected else EXIT_UNEXPECTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
