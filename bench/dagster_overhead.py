"""What Dagster costs on top of the bare commands, for the same synthetic day.

    .venv/bin/python bench/dagster_overhead.py --records 100000 1000000 --repeat 2

For each size, in a fresh data home each time, each command in its own process:

  bare      ``vacina-d1 generate --date D --records N --seed S --out day.parquet``
            then ``vacina-d1 publish --date D --input day.parquet`` (the baseline)
  dagster   ``vacina-d1 run --date D`` with ``VACINA_D1_SYNTHETIC_RECORDS=N``,
            ``VACINA_D1_SYNTHETIC_SEED=S``: the same day through the Dagster job
            (extract, checks, stage, checks, publish, checks), recorded in a SQLite
            instance

Reports wall seconds (best of ``--repeat``), the ratio dagster / bare and the
difference in seconds, peak RSS, and where the Dagster run's time went, read from
its own event log: the assets' steps, the checks' steps, and the rest (process
start, imports, definitions, the instance's event writes).
"""

from __future__ import annotations

import argparse
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
BIN = Path(sys.executable).parent
DAY = "2026-11-18"
SEED = 7


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    env.update(VACINA_D1_HOME=str(home), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and the JSON line of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} falhou: {err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, json.loads(out.read().splitlines()[0])


def bare(records: int, work: Path) -> dict:
    home = work / "bare"
    env = _env(home)
    day = home / "day.parquet"
    home.mkdir(parents=True)
    gen_s, gen_rss, gen = measured(
        [str(BIN / "vacina-d1"), "generate", "--date", DAY, "--records", str(records), "--seed", str(SEED), "--out", str(day)],
        env,
        work,
    )
    pub_s, pub_rss, pub = measured([str(BIN / "vacina-d1"), "publish", "--date", DAY, "--input", str(day)], env, work)
    return {
        "seconds": gen_s + pub_s,
        "generate": gen_s,
        "publish": pub_s,
        "rss": max(gen_rss, pub_rss),
        "files": pub["files"],
        "valid": gen["valid"],
    }


def steps_of(dagster_home: Path, run_id: str) -> dict[str, float]:
    """Seconds per step of the run, from its event log."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    started: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value in ("STEP_START", "STEP_RESTARTED"):
                started[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
                spent[event.step_key] += record.timestamp - started.pop(event.step_key)
    return dict(spent)


def dagster(records: int, work: Path) -> dict:
    home = work / "dagster" / "var"
    dagster_home = work / "dagster" / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(home, VACINA_D1_SYNTHETIC_RECORDS=str(records), VACINA_D1_SYNTHETIC_SEED=str(SEED), DAGSTER_HOME=str(dagster_home))
    seconds, rss, summary = measured([str(BIN / "vacina-d1"), "run", "--date", DAY], env, work)
    steps = steps_of(dagster_home, summary["run_id"])
    assets = {k: v for k, v in steps.items() if k in ("rnds_extract", "d1_staged_files", "d1_publication")}
    checks = {k: v for k, v in steps.items() if k not in assets}
    return {
        "seconds": seconds,
        "rss": rss,
        "files": summary["files"],
        "valid": summary["valid"],
        "assets": assets,
        "checks": checks,
        "assets_s": sum(assets.values()),
        "checks_s": sum(checks.values()),
        "rest_s": seconds - sum(steps.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f} (2 núcleos compartilhados)")
    for records in args.records:
        best: dict[str, dict] = {}
        for attempt in range(args.repeat):
            for name, measure in (("bare", bare), ("dagster", dagster)):
                work = Path(tempfile.mkdtemp(prefix=f"vacina-d1-bench-{name}-"))
                try:
                    result = measure(records, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                print(f"  {records:>9,} {name:8} tentativa {attempt + 1}: {result['seconds']:.1f} s", flush=True)
                if name not in best or result["seconds"] < best[name]["seconds"]:
                    best[name] = result
        b, d = best["bare"], best["dagster"]
        assert b["files"] == d["files"] and b["valid"] == d["valid"], (b, d)
        print(
            f"{records:,} registros, {d['files']} arquivos: "
            f"bare {b['seconds']:.1f} s (generate {b['generate']:.1f} + publish {b['publish']:.1f}), "
            f"dagster {d['seconds']:.1f} s → {d['seconds'] / b['seconds']:.2f}× (+{d['seconds'] - b['seconds']:.1f} s); "
            f"no run: assets {d['assets_s']:.1f} s, verificações {d['checks_s']:.1f} s, resto {d['rest_s']:.1f} s; "
            f"pico RSS bare {b['rss']:.0f} MiB, dagster {d['rss']:.0f} MiB"
        )
        print("  passos:", json.dumps({k: round(v, 2) for k, v in {**d["assets"], **d["checks"]}.items()}, ensure_ascii=False))


if __name__ == "__main__":
    main()
