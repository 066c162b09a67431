"""How fast the RNDS FHIR source reads RIA documents, against parsing alone.

    .venv/bin/python bench/bench_fhir.py --records 50000

Writes an NDJSON of ``--records`` RIA documents (the routine fixture, one
identifier and lot per document) and measures, in the same run:
  baseline    json.loads of every line (the floor: parsing the input at all)
  source      FhirSource.batches(): parsing + mapping + CNES lookup + raw frames
  extract     source → validation (CPF check digits, HMAC) → staging Parquet
Ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.extract import extract  # noqa: E402
from pipelines.sources.fhir import FhirSource  # noqa: E402

TEMPLATE = ROOT / "tests" / "fixtures" / "fhir" / "ria_rotina_bundle.json"


def write_input(path: Path, records: int) -> None:
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    with path.open("w", encoding="utf-8") as handle:
        for i in range(records):
            template["identifier"]["value"] = f"bench-{i:08d}"
            template["entry"][1]["resource"]["lotNumber"] = f"L{i % 997:04d}"
            handle.write(json.dumps(template, ensure_ascii=False) + "\n")


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        path = tmp_path / "Bundle.ndjson"
        write_input(path, args.records)
        size_mb = path.stat().st_size / 1e6

        def baseline() -> int:
            with path.open("rb") as handle:
                return sum(1 for line in handle if json.loads(line))

        def source() -> int:
            src = FhirSource(path, key="chave-de-benchmark-0123456789")
            return sum(batch.height for batch in src.batches())

        def full() -> int:
            src = FhirSource(path, key="chave-de-benchmark-0123456789")
            counts = extract(src.batches(), tmp_path / "d.parquet", tmp_path / "q.parquet", today=dt.date.today(), source=src)
            assert counts.valid == args.records, counts
            return counts.read

        t_base, _ = timed(baseline)
        t_source, n_source = timed(source)
        t_full, n_full = timed(full)
        assert n_source == n_full == args.records
        print(f"input: {args.records} documents, {size_mb:.1f} MB NDJSON")
        for name, seconds in (
            ("baseline json.loads", t_base),
            ("FhirSource.batches", t_source),
            ("extract (validate+hash+parquet)", t_full),
        ):
            print(f"{name:34s} {seconds:7.2f} s  {args.records / seconds:10,.0f} docs/s  x{seconds / t_base:5.1f} baseline")


if __name__ == "__main__":
    main()
