"""A backfill of history through the production shape, measured.

Starts Dagster as in production on this machine (tests/dagster_stack.py: instance in
PostgreSQL, gRPC code server, daemon, webserver, N Celery workers on RabbitMQ), launches a
backfill of ``--days`` consecutive days of ``--records`` synthetic records each through
GraphQL, lets the daemon run it with ``--concurrent-runs`` runs at a time, and reports:

- days/hour and records/s overall and per worker;
- how busy the workers were (sum of step durations / (wall × workers)) and the time per
  day spent in each step;
- the baseline measured in the same run: the same day size through ``vacina-d1 run``
  (one process, in-process executor), days/hour;
- the projection for the RNDS's 1.1 billion records at the measured records/s per worker.

    .venv/bin/python bench/backfill.py --days 365 --records 5000 --workers 2 --concurrent-runs 4

Needs PostgreSQL (VACINA_D1_TEST_POSTGRES_URL or 127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dagster_stack import (  # noqa: E402 - the repository root first on the path
    FINISHED,
    instance_of,
    launch_daily_backfill,
    production_stack,
    runs_tagged,
    wait,
)

RNDS_RECORDS = 1_100_000_000
POSTGRES = os.environ.get("VACINA_D1_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def baseline(tmp: Path, days: list[str], records: int) -> float:
    """Seconds per day through `vacina-d1 run` (one process), the same day size."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    env.update(
        VACINA_D1_HOME=str(tmp / "baseline"),
        VACINA_D1_SYNTHETIC_RECORDS=str(records),
        PYTHONPATH=str(ROOT),
        VACINA_D1_PARTITIONS_START=days[0],
    )
    started = time.perf_counter()
    for day in days:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "vacina-d1"), "run", "--date", day],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise SystemExit(f"vacina-d1 run falhou: {done.stderr[-2000:]}")
    return (time.perf_counter() - started) / len(days)


def step_times(instance, run_ids: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per step name and per worker, summed over the runs."""
    from dagster import DagsterEventType

    by_step: dict[str, float] = defaultdict(float)
    by_worker: dict[str, float] = defaultdict(float)
    for run_id in run_ids:
        starts: dict[str, float] = {}
        workers: dict[str, str] = {}
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and "in celery worker" in (event.message or ""):
                worker = event.engine_event_data.metadata.get("Celery worker")
                workers[event.step_key] = str(getattr(worker, "value", worker)).split("@")[0]
            elif event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                if event.step_key in starts:
                    seconds = record.timestamp - starts.pop(event.step_key)
                    by_step[event.step_key] += seconds
                    by_worker[workers.get(event.step_key, "?")] += seconds
    return dict(by_step), dict(by_worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--records", type=int, default=20_000, help="registros por dia")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrent-runs", type=int, default=2)
    parser.add_argument("--first-day", default="2025-01-01")
    parser.add_argument("--baseline-days", type=int, default=2)
    parser.add_argument("--timeout-hours", type=float, default=6)
    args = parser.parse_args()

    first = dt.date.fromisoformat(args.first_day)
    days = [(first + dt.timedelta(days=n)).isoformat() for n in range(args.days)]
    workers = tuple(f"w{n + 1}" for n in range(args.workers))
    # Kept until the end of the process (deleting a year of files is slow): the figures come first.
    tmp = Path(tempfile.mkdtemp(prefix="vacina-d1-backfill-"))
    try:
        per_day_baseline = baseline(tmp, days[: args.baseline_days], args.records)
        env = {
            "VACINA_D1_SYNTHETIC_RECORDS": str(args.records),
            "VACINA_D1_MAX_CONCURRENT_RUNS": str(args.concurrent_runs),
            "VACINA_D1_PARTITIONS_START": first.isoformat(),
        }
        with production_stack(tmp / "stack", POSTGRES, workers=workers, env_extra=env) as stack:
            url = stack["url"]
            started = time.time()
            backfill_id = launch_daily_backfill(url, days)
            runs: list[dict] = []
            progress = [-1]

            def done() -> bool:
                nonlocal runs
                runs = runs_tagged(url, "dagster/backfill", backfill_id)
                finished = sum(r["status"] in FINISHED for r in runs)
                if finished != progress[0]:
                    progress[0] = finished
                    print(f"{finished}/{len(days)} dias", file=sys.stderr, flush=True)
                return len(runs) == len(days) and finished == len(days)

            wait(done, args.timeout_hours * 3600, stack["procs"], "o backfill não terminou")
            print(file=sys.stderr)
            wall = max(r["endTime"] for r in runs) - started
            with instance_of(stack) as instance:
                by_step, by_worker = step_times(instance, [r["runId"] for r in runs])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ok = sum(r["status"] == "SUCCESS" for r in runs)
    total = args.records * ok
    per_worker = total / wall / args.workers
    result = {
        "dias": args.days,
        "registros_por_dia": args.records,
        "workers": args.workers,
        "execucoes_simultaneas": args.concurrent_runs,
        "sucesso": ok,
        "parede_s": round(wall, 1),
        "dias_por_hora": round(ok / wall * 3600, 1),
        "registros_por_s": round(total / wall, 1),
        "registros_por_s_por_worker": round(per_worker, 1),
        "ocupacao_dos_workers": round(sum(by_worker.values()) / (wall * args.workers), 2),
        "s_por_dia_por_passo": {k: round(v / max(ok, 1), 2) for k, v in sorted(by_step.items(), key=lambda kv: -kv[1])},
        "s_por_worker": {k: round(v, 1) for k, v in sorted(by_worker.items())},
        "linha_de_base_vacina_d1_run_s_por_dia": round(per_day_baseline, 1),
        "linha_de_base_dias_por_hora": round(3600 / per_day_baseline, 1),
        "razao_contra_linha_de_base": round((ok / wall * 3600) / (3600 / per_day_baseline), 2),
        "projecao_1_1_bilhao_horas_com_estes_workers": round(RNDS_RECORDS / (per_worker * args.workers) / 3600, 1),
        "projecao_1_1_bilhao_horas_com_16_workers": round(RNDS_RECORDS / (per_worker * 16) / 3600, 1),
        "carga": os.getloadavg(),
    }
    print(json.dumps(result, ensure_ascii=False))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backfill.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
