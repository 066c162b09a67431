"""How fast, and in how much memory, a zipped monthly national PNI CSV is imported.

    .venv/bin/python bench/import_pni.py --days 31 --records-per-day 90000

Writes a zip holding one PNI CSV (``;``, unquoted, the routine file's 56 columns,
rows ending in ``;``) of ``--days`` entry days made by the synthetic source
(about 550 bytes a row: 31 x 90,000 rows is about 1.5 GB uncompressed), then
measures, each stage in its own process so its peak RSS is its own:

  unzip     reading the zip member stream to the end (the floor: decompression)
  source    PniCsvSource.batches(): decompression + decoding + parsing + raw frames
  one-day   ``import --date D``: every record read and filtered, one day validated
  split     ``import --split-days``: every record validated, one staging file per day

Ratios are against ``unzip`` of the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_DAY = dt.date(2025, 1, 1)


def write_month(path: Path, days: int, records_per_day: int, encoding: str) -> tuple[int, int]:
    """The zipped month; returns (rows, uncompressed bytes)."""
    import polars as pl

    from pipelines import contract
    from pipelines.sources.synthetic import SyntheticSource

    rows = size = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("vacinacao_jan_2025.csv", "w", force_zip64=True) as member:
            header = ";".join(contract.SOURCE_COLUMNS) + "\n"
            member.write(header.encode(encoding))
            size += len(header)
            for offset in range(days):
                day = FIRST_DAY + dt.timedelta(days=offset)
                for batch in SyntheticSource(day, records_per_day, seed=offset).batches():
                    # The routine file is unquoted: no separator or line break can live in a value.
                    text = batch.select(
                        pl.col(name).str.replace_all(r"[;\r\n\"]", " ") for name in contract.SOURCE_COLUMNS
                    )  # an empty dt_deletado_rnds gives the public rows' trailing ';'
                    data = text.write_csv(separator=";", quote_style="never", include_header=False, null_value="")
                    encoded = data.encode(encoding, errors="replace")
                    member.write(encoded)
                    rows += batch.height
                    size += len(encoded)
    return rows, size


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, because ru_maxrss can carry the parent's peak across fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage(name: str, path: Path, work: Path, days: int) -> dict:
    """One measurement, run in this (fresh) process."""
    from pipelines.extract import extract, split_by_entry_day
    from pipelines.sources.opendatasus import PniCsvSource

    today = dt.date(2026, 1, 1)
    started = time.perf_counter()
    if name == "unzip":
        rows = 0
        with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as member:
            while block := member.read(8 << 20):
                rows += block.count(b"\n")
        rows -= 1  # the header
        result = {"rows": rows}
    elif name == "source":
        result = {"rows": sum(batch.height for batch in PniCsvSource(path).batches())}
    elif name == "one-day":
        source = PniCsvSource(path)
        counts = extract(
            source.batches(),
            work / "dia.parquet",
            work / "dia.rejects.parquet",
            today=today,
            day=FIRST_DAY + dt.timedelta(days=days // 2),
            source=source,
        )
        result = {"rows": counts.read + counts.outside_day, "valid": counts.valid, "quarantined": counts.quarantined}
    elif name == "split":
        days = split_by_entry_day(PniCsvSource(path), work / "dias", today=today)
        result = {
            "rows": sum(c.read for c in days.values()),
            "valid": sum(c.valid for c in days.values()),
            "quarantined": sum(c.quarantined for c in days.values()),
            "days": len(days),
        }
    else:
        raise SystemExit(f"etapa desconhecida: {name}")
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu"] = round(usage.ru_utime + usage.ru_stime, 2)  # the whole process, imports included
    return {
        **result,
        "stage": name,
        "seconds": round(seconds, 2),
        "rows_per_s": int(result["rows"] / seconds),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--records-per-day", type=int, default=90_000)
    parser.add_argument("--encoding", choices=["utf-8", "latin-1"], default="latin-1")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, Path(args.input), Path(args.work), args.days)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-import-pni-") as tmp:
        tmp_path = Path(tmp)
        path = tmp_path / "vacinacao_jan_2025.zip"
        started = time.perf_counter()
        rows, size = write_month(path, args.days, args.records_per_day, args.encoding)
        print(
            f"entrada: {rows:,} linhas, {size / 1e9:.2f} GB sem compressão, {path.stat().st_size / 1e6:.0f} MB zipado, "
            f"{args.encoding} (gerada em {time.perf_counter() - started:.0f} s)"
        )
        results = {}
        for name in ("unzip", "source", "one-day", "split"):
            work = tmp_path / name
            work.mkdir()
            done = subprocess.run(
                [sys.executable, __file__, "--stage", name, "--input", str(path), "--work", str(work), "--days", str(args.days)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        base = results["unzip"]
        print(
            f"{'etapa':<8} {'s':>8} {'linhas/s':>11} {'MB/s':>7} {'x unzip':>8} {'CPU s':>7} {'CPU x unzip':>12} {'pico RSS MB':>12}"
        )
        for name, r in results.items():
            print(
                f"{name:<8} {r['seconds']:>8.1f} {r['rows_per_s']:>11,} {size / 1e6 / r['seconds']:>7.0f} "
                f"{r['seconds'] / base['seconds']:>8.1f} {r['cpu']:>7.1f} {r['cpu'] / base['cpu']:>12.1f} {r['peak_rss_mb']:>12.0f}"
            )
        assert results["source"]["rows"] == base["rows"] == rows, results
        assert results["split"]["rows"] == rows and results["one-day"]["rows"] == rows, results
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
