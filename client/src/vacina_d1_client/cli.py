"""``vacina-d1 sync``.

Prints log lines (or a progress bar on a terminal) on stderr and one final JSON
line on stdout. Exit codes: 0 everything up to date, 1 partial (some file failed
after every retry), 2 usage or authorization (bad option, token refused, terms
not accepted, operation outside the credential).

The same ``vacina-d1`` script name is installed by the server distribution; both
entry points behave alike: ``sync`` runs here, every other command runs in the
server's ``pipelines.cli`` when it is installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import re
import sys
import time
from pathlib import Path

from vacina_d1_client import __version__, config, schedule
from vacina_d1_client.errors import EXIT_PARTIAL, EXIT_UP_TO_DATE, EXIT_USAGE, SyncError, TransferFailed, UsageError

OPERATION = re.compile(r"^imunizacao-total-[a-z]{2}(-[0-9]{6})?$")


def _log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} vacina-d1 sync: {message}", file=sys.stderr, flush=True)


def _show(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _emit(payload: dict) -> None:
    print(json.dumps(payload, ensure_ascii=False, sort_keys=True), flush=True)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"data inválida {text!r}: use AAAA-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vacina-d1 sync",
        description=(
            "Mantém uma pasta (e, com --into, uma tabela DuckDB ou PostgreSQL) em dia com os arquivos D-1 de "
            "vacinação que a sua credencial pode ver. O token pessoal vem de VACINA_D1_TOKEN ou do arquivo de "
            "configuração (vacina-d1 sync --configure), nunca da linha de comando."
        ),
    )
    parser.add_argument("--operation", action="append", default=[], metavar="OPERAÇÃO",
                        help="imunizacao-total-<uf> ou imunizacao-total-<uf>-<ibge6> (repetível)")
    parser.add_argument("--since", type=_day, metavar="AAAA-MM-DD", help="primeiro dia (padrão: 30 dias atrás)")
    parser.add_argument("--dest", default="dados", metavar="PASTA", help="pasta dos arquivos (padrão: ./dados)")
    parser.add_argument("--url", help="endereço do portal (padrão: VACINA_D1_URL ou o arquivo de configuração)")
    parser.add_argument("--into", metavar="BANCO",
                        help="carrega em um banco: arquivo DuckDB (dados.duckdb) ou postgresql://usuario@servidor/banco")
    parser.add_argument("--accept-terms", action="store_true",
                        help="aceita os termos de uso vigentes (o texto e a versão são exibidos)")
    parser.add_argument("--config", type=Path, metavar="ARQUIVO", help="arquivo de configuração (URL, CPF, token)")
    parser.add_argument("--ca-bundle", metavar="ARQUIVO",
                        help="certificados de CA adicionais da rede (PEM); também VACINA_D1_CA_BUNDLE ou SSL_CERT_FILE")
    parser.add_argument("--retries", type=int, default=6, metavar="N", help="tentativas por requisição (padrão 6)")
    parser.add_argument("--max-wait", type=float, default=900, metavar="SEGUNDOS",
                        help="maior espera pedida pelo portal (Retry-After) que se aceita (padrão 900)")
    parser.add_argument("--print-schedule", action="store_true",
                        help="mostra a linha do cron / timer do systemd / comando schtasks que roda este mesmo sync todo dia")
    parser.add_argument("--os", choices=["linux", "macos", "windows"], help=argparse.SUPPRESS)
    parser.add_argument("--configure", action="store_true",
                        help="guarda URL, CPF e token pessoal no arquivo de configuração (pergunta o token sem exibi-lo)")
    parser.add_argument("--version", action="version", version=f"vacina-d1-client {__version__}")
    return parser


def _schedule_args(args: argparse.Namespace) -> list[str]:
    """The same sync, with absolute paths (the scheduler starts elsewhere)."""
    out: list[str] = []
    for operation in args.operation:
        out += ["--operation", operation]
    if args.since:
        out += ["--since", args.since.isoformat()]
    out += ["--dest", str(Path(args.dest).resolve())]
    if args.url:
        out += ["--url", args.url]
    if args.into:
        out += ["--into", args.into if "://" in args.into else str(Path(args.into).resolve())]
    if args.config:
        out += ["--config", str(args.config.resolve())]
    if args.ca_bundle:
        out += ["--ca-bundle", str(Path(args.ca_bundle).resolve())]
    return out


def _configure(args: argparse.Namespace) -> int:
    path = args.config or config.default_config_path()
    current = config.load(path, args.url) if path.exists() else config.Settings(url=args.url)
    interactive = sys.stdin.isatty()

    def ask(prompt: str, default: str | None, secret: bool = False) -> str:
        if interactive:
            shown = f" [{default}]" if default and not secret else ""
            answer = (getpass.getpass(f"{prompt}: ") if secret else input(f"{prompt}{shown}: ")).strip()
        else:
            answer = sys.stdin.readline().strip()
        return answer or (default or "")

    url = ask("Endereço do portal (https://…)", args.url or current.url)
    cpf = ask("CPF", current.cpf)
    token = ask("Token pessoal (não aparece na tela)", current.token, secret=True)
    settings = config.Settings(url=url, cpf=re.sub(r"\D", "", cpf), token=token, ca_bundle=args.ca_bundle or current.ca_bundle)
    config.require(settings)
    config.write(path, settings)
    _emit({"command": "sync --configure", "config": str(path)})
    return EXIT_UP_TO_DATE


def sync(args: argparse.Namespace) -> int:
    from vacina_d1_client import portal as portal_module
    from vacina_d1_client import sync as sync_module

    started = time.perf_counter()
    operations = list(dict.fromkeys(op.strip().lower() for op in args.operation))
    if not operations:
        raise UsageError("diga quais operações sincronizar: --operation imunizacao-total-<uf>[-<ibge6>] (repetível)")
    bad = [op for op in operations if not OPERATION.match(op)]
    if bad:
        raise UsageError(f"operação inválida: {bad[0]} (formato imunizacao-total-sp ou imunizacao-total-sp-355030)")
    if args.retries < 1:
        raise UsageError("--retries precisa ser 1 ou mais")
    since = args.since or (dt.date.today() - dt.timedelta(days=30))
    settings = config.load(args.config, args.url)
    config.require(settings)
    dest = Path(args.dest)
    sync_module.check_dest(dest)
    target = None
    if args.into:
        from vacina_d1_client import into

        target = into.open_target(args.into)

    retry = portal_module.RetryPolicy(
        attempts=args.retries, max_wait_seconds=args.max_wait,
        base_seconds=float(os.environ.get("VACINA_D1_BACKOFF_SECONDS", "1")),
    )
    terminal = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    portal = portal_module.Portal(settings.url, settings.cpf, settings.token, ca_bundle=args.ca_bundle or settings.ca_bundle, retry=retry, log=_log)
    summary: dict = {"command": "sync", "operations": operations, "since": since.isoformat(), "dest": str(dest)}
    from vacina_d1_client.state import FolderLock

    lock = FolderLock(dest)
    try:
        lock.__enter__()
    except BaseException:
        portal.close()
        if target is not None:
            target.close()
        raise
    try:
        portal.authenticate()
        progress = sync_module.Progress(terminal, _log)
        outcome, state = sync_module.run(
            portal, dest, operations, since, accept_terms=args.accept_terms, progress=progress, log=_log, show=_show
        )
        loaded = []
        if target is not None:
            from vacina_d1_client import into

            for applied in into.load(target, state, operations):
                loaded.append(applied.as_dict())
                if not applied.skipped:
                    _log(
                        f"{applied.operation} {applied.day} versão {applied.version} no banco: {applied.inserted} inseridos, "
                        f"{applied.updated} atualizados, {applied.removed} removidos ({applied.current} registros atuais)"
                    )
    finally:
        lock.__exit__(None, None, None)
        portal.close()
        if target is not None:
            target.close()
    partial = bool(outcome.failed)
    summary.update({
        "status": "parcial" if partial else "atualizado",
        "listed": outcome.listed,
        "unchanged": outcome.unchanged,
        "downloaded": len(outcome.downloaded),
        "bytes": outcome.bytes_downloaded,
        "failed": outcome.failed,
        "per_operation": outcome.operations,
        "requests": portal.requests,
        "seconds": round(time.perf_counter() - started, 3),
    })
    if target is not None:
        summary["into"] = target.description
        summary["loaded"] = [entry for entry in loaded if not entry["ja_aplicado"]]
    _emit(summary)
    return EXIT_PARTIAL if partial else EXIT_UP_TO_DATE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["sync"]:
        return _delegate(argv)
    parser = build_parser()
    args = parser.parse_args(argv[1:])  # argparse exits 2 on a usage error
    try:
        if args.configure:
            return _configure(args)
        if args.print_schedule:
            if not args.operation:
                raise UsageError("--print-schedule precisa das mesmas opções do sync (ao menos --operation)")
            log_file = Path(args.dest).resolve() / "vacina-d1-sync.log"
            print(schedule.render(args.os or schedule.current_os(), _schedule_args(args), args.operation, log_file))
            return EXIT_UP_TO_DATE
        return sync(args)
    except KeyboardInterrupt:
        print("vacina-d1 sync: interrompido", file=sys.stderr)
        return 130
    except SyncError as exc:
        print(f"vacina-d1 sync: erro: {exc}", file=sys.stderr)
        _emit({"command": "sync", "status": "erro", "error": str(exc), "kind": exc.__class__.__name__})
        return exc.exit_code
    except TransferFailed as exc:  # the listing itself could not be fetched
        print(f"vacina-d1 sync: erro: {exc}", file=sys.stderr)
        _emit({"command": "sync", "status": "parcial", "error": str(exc)})
        return EXIT_PARTIAL
    except OSError as exc:
        print(f"vacina-d1 sync: erro: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        _emit({"command": "sync", "status": "parcial", "error": str(exc)})
        return EXIT_PARTIAL


def _delegate(argv: list[str]) -> int:
    """Every command but sync belongs to the server distribution."""
    try:
        from pipelines.cli import main as server_main
    except ModuleNotFoundError:
        print(
            "vacina-d1: este computador tem só o cliente (vacina-d1-client); o comando disponível é "
            "'vacina-d1 sync' (veja 'vacina-d1 sync --help')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return server_main(argv)
