"""``vacina-d1 run``: the whole D-1 flow of one day (or of one UF of a day), in this
process, with the very assets, checks and jobs the Dagster UI runs
(``assets.definitions``). Registered into ``pipelines.cli``.

The run is recorded in the project's Dagster instance (``DAGSTER_HOME`` when set;
else ``dagster.yaml`` of the current directory, as ``dagster dev`` reads it; else
``<VACINA_D1_HOME>/dagster``), so it shows in the UI afterwards.

stdout's first (and only) line is the JSON summary; where the files are and how to
open the UI and the portal API go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

EXIT_RUN_FAILED = 1


class RunFailed(Exception):
    """The run ended without publishing: one line saying which step or check stopped it."""


def _settings():
    from pydantic import ValidationError

    from pipelines.flow import FlowSettings

    try:
        return FlowSettings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "VACINA_D1_" + "_".join(str(part) for part in error["loc"]).upper()
        raise ValueError(f"configuração inválida em {name}: {error['msg']}") from None


@contextlib.contextmanager
def open_instance(home: Path) -> Iterator[tuple[Any, str]]:
    """The Dagster instance runs are recorded in, and how to open its UI."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    if os.environ.get("DAGSTER_HOME"):
        with DagsterInstance.get() as instance:
            yield instance, f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev  (na raiz do repositório)"
        return
    cwd = Path.cwd()
    if (cwd / "dagster.yaml").is_file():
        base = cwd / "var" / "dagster"
        base.mkdir(parents=True, exist_ok=True)
        ref = InstanceRef.from_dir(str(base), config_dir=str(cwd))
        how = ".venv/bin/dagster dev  (na raiz do repositório)"
    else:
        base = (home / "dagster").absolute()
        base.mkdir(parents=True, exist_ok=True)
        config = base / "dagster.yaml"
        if not config.exists():
            config.write_text(
                "# Instância do Dagster de `vacina-d1 run` fora da raiz do repositório.\ntelemetry:\n  enabled: false\n"
            )
        ref = InstanceRef.from_dir(str(base))
        how = f"DAGSTER_HOME={base} dagster dev -m assets.definitions"
    with DagsterInstance.from_ref(ref) as instance:
        yield instance, how


def _failure_reason(result) -> str:
    failed_checks = []
    step_errors = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            failed_checks.append(
                f"verificação {data.asset_key.to_user_string()}/{data.check_name} não passou: {data.description}"
            )
        elif event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            failure = getattr(data, "user_failure_data", None)
            if failure is not None and failure.description:
                text = failure.description
            elif data.error is not None:
                text = data.error.message.split(f"{data.error.cls_name}: ", 1)[-1]
            else:
                text = event.message or ""
            message = text.strip().splitlines()
            step_errors.append(f"passo {event.step_key}: {message[0] if message else 'falhou'}")
    reasons = failed_checks or step_errors or ["motivo desconhecido (rode com --verbose)"]
    extra = f" (e mais {len(reasons) - 1})" if len(reasons) > 1 else ""
    return reasons[0] + extra


def _portal_url() -> str:
    try:
        from portal_api.core.config import PortalSettings

        settings = PortalSettings()
        return f"http://{settings.host}:{settings.port}/docs"
    except Exception:  # noqa: BLE001 - only a hint
        return "http://127.0.0.1:8000/docs"


def run_day(day: dt.date, uf: str | None = None, *, verbose: bool = False) -> dict[str, Any]:
    """Materialise the D-1 flow of ``day`` (``uf``: that UF alone) in process; the summary."""
    from assets.automation import DAILY_JOB, UF_JOB
    from assets.partitions import key_for
    from pipelines import dates, flow, reference
    from serving.publish import day_prefix

    today = dates.today()
    if day >= today:
        raise ValueError(
            f"o dia {day} ainda não terminou em {dates.TIMEZONE}: o D-1 mais recente é {today - dt.timedelta(days=1)}"
        )
    settings = _settings()
    if day < settings.partitions_start:
        raise ValueError(
            f"o dia {day} é anterior ao início das partições ({settings.partitions_start}): ajuste VACINA_D1_PARTITIONS_START"
        )
    if uf is not None:
        uf = uf.strip().upper()
        if uf not in reference.ufs():
            raise ValueError(f"UF desconhecida: {uf!r} (use a sigla, ex.: DF)")

    started = time.perf_counter()
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
        from assets.definitions import build_definitions

        definitions = build_definitions(settings)
        job = definitions.resolve_job_def(UF_JOB if uf else DAILY_JOB)
        key = key_for(day, uf)
        with open_instance(settings.home) as (instance, ui_hint):
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                raise_on_error=False,
                tags={"vacina_d1/origem": "vacina-d1 run"},
                run_config={"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}}},
            )
    if not result.success:
        raise RunFailed(f"a execução {result.run_id} de {key} falhou: {_failure_reason(result)}")

    work = flow.DayWork(settings.home, day, uf)  # where the pipeline_work resource (same settings) put it
    counts = flow.staging_counts(work)
    publication = flow.load_publication(work)
    checks = result.get_asset_check_evaluations()
    files_at = f"{publication.storage_url.rstrip('/')}/{day_prefix(day)}"
    return {
        "command": "run",
        "date": day.isoformat(),
        "scope": publication.scope,
        "job": job.name,
        "run_id": result.run_id,
        "read": counts.read,
        "valid": counts.valid,
        "quarantined": counts.quarantined,
        "files": publication.files,
        "changed": publication.changed,
        "rows": publication.rows,
        "bytes_csv": publication.bytes_csv,
        "bytes_stored": publication.bytes_stored,
        "version": publication.publication_version,
        "current_version": publication.current_version,
        "manifest": publication.manifest_location,
        "files_at": files_at,
        "checks": len(checks),
        "checks_passed": sum(1 for e in checks if e.passed),
        "seconds": round(time.perf_counter() - started, 3),
        "_ui_hint": ui_hint,
    }


def cmd_run(args: argparse.Namespace) -> None:
    from pipelines import dates
    from pipelines.cli import emit

    if args.uf is not None and not args.uf.strip():
        raise ValueError("--uf vazio: informe a sigla (ex.: DF)")
    day = dates.parse_day(args.date)
    try:
        summary = run_day(day, args.uf, verbose=args.verbose)
    except RunFailed as exc:
        print(f"vacina-d1: erro: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_RUN_FAILED) from None
    ui_hint = summary.pop("_ui_hint")
    emit(summary)
    outcome = (
        f"versão {summary['version']} publicada"
        if summary["version"] is not None
        else f"nada mudou, versão {summary['current_version']} continua valendo"
    )
    print(
        "\n".join(
            [
                f"D-1 de {summary['date']} ({summary['scope']}): {outcome}; {summary['checks_passed']}/{summary['checks']} verificações passaram.",
                f"  arquivos:             {summary['files_at']}",
                f"  manifesto:            {summary['manifest']}",
                f"  interface do Dagster: {ui_hint} → http://127.0.0.1:3000 (execução {summary['run_id']})",
                f"  API do portal:        .venv/bin/vacina-d1 serve → {_portal_url()}",
            ]
        ),
        file=sys.stderr,
        flush=True,
    )


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="roda o fluxo D-1 de um dia com os assets do Dagster, neste processo: extrai, verifica, particiona, publica",
    )
    run.add_argument("--date", default="yesterday", help="dia de entrada na RNDS (AAAA-MM-DD, yesterday; padrão: yesterday)")
    run.add_argument("--uf", help="só esta UF (o job d1_uf_job, como o 'Atualizar' do portal)")
    run.add_argument("--verbose", "-v", action="store_true", help="mostra os eventos do Dagster no stderr")
    run.set_defaults(handler=cmd_run)
