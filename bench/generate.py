"""How fast, and in how much memory, a synthetic day is generated and extracted.

    .venv/bin/python bench/generate.py --records 1000000 5000000

For each size, three stages, each in its own process so its peak RSS is its own:

  source     SyntheticSource.batches() iterated to the end (generation only: the baseline)
  validate   the same batches through validation.validate (no file written)
  generate   ``vacina-d1 generate --date D --records N --seed 1 --out ...``: generation,
             validation and the staging + quarantine Parquet files (the real command)

Wall time, records/s, peak RSS (``os.wait4`` of that child) and the ratio of each
stage's time to ``source`` of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-11-21"
SEED = 1

STAGE_CODE = {
    "source": """
import datetime as dt, sys
from pipelines.sources.synthetic import SyntheticSource
n = 0
for batch in SyntheticSource(dt.date.fromisoformat(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])).batches():
    n += batch.height
assert n == int(sys.argv[2])
""",
    "validate": """
import datetime as dt, sys
from pipelines import dates
from pipelines.sources.synthetic import SyntheticSource
from pipelines.validation import validate
n = 0
for batch in SyntheticSource(dt.date.fromisoformat(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])).batches():
    result = validate(batch, today=dates.today())
    n += result.valid.height + result.quarantine.height
assert n == int(sys.argv[2])
""",
}


def run_measured(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process, from its own rusage."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise SystemExit(f"falhou: {' '.join(argv)}\n{err.read()}")
        return seconds, usage.ru_maxrss // 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--stages", nargs="+", default=["source", "validate", "generate"], choices=["source", "validate", "generate"]
    )
    args = parser.parse_args()
    python = sys.executable
    cli = str(Path(python).with_name("vacina-d1"))
    print(f"máquina: {os.cpu_count()} CPUs, carga média {os.getloadavg()[0]:.1f}")
    print(f"{'registros':>10} {'etapa':>9} {'segundos':>9} {'registros/s':>12} {'RSS pico MiB':>13} {'× source':>9}")
    for records in args.records:
        baseline = None
        for stage in args.stages:
            if stage == "generate":
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / "d.parquet"
                    seconds, rss, stdout = run_measured(
                        [cli, "generate", "--date", DAY, "--records", str(records), "--seed", str(SEED), "--out", str(out)]
                    )
                    report = json.loads(stdout)
                    assert report["read"] == records == report["valid"] + report["quarantined"]
                    size = out.stat().st_size
            else:
                seconds, rss, _ = run_measured([python, "-c", STAGE_CODE[stage], DAY, str(records), str(SEED)])
            if stage == args.stages[0]:
                baseline = seconds
            ratio = f"{seconds / baseline:9.2f}" if baseline else f"{'-':>9}"
            print(f"{records:>10,} {stage:>9} {seconds:9.1f} {records / seconds:12,.0f} {rss:13,} {ratio}", flush=True)
        if "generate" in args.stages:
            print(
                f"{'':>10} staging: {size / 2**20:,.0f} MiB ({size / records:.0f} bytes/registro), quarentena: {report['quarantined']:,}"
            )


if __name__ == "__main__":
    main()
