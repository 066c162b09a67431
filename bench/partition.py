"""Partitioning and publishing a day: ours against pandas, DuckDB and Polars, and the floor.

    .venv/bin/python bench/partition.py --records 1000000 5000000 --repeat 2

Input: a synthetic day made by the real command (``vacina-d1 generate --seed 1``),
cached under ``bench/out/`` (git-ignored). Every variant produces the same logical
set of files — one per UF and one per municipality with records, each row with its
``tp_vinculo_territorio`` — from the same input, in its own process (its peak RSS
is its own, from ``os.wait4``):

  ours-plain     pipelines.partition.partition_day, uncompressed (the bench target's
                 "uncompressed partitioning": serialise once, route, gather, write, SHA-256)
  ours-gzip      the same with the gzip pieces compressed by the writer thread (CSV only)
  ours-gzip-parquet  the product: ours-gzip plus each file's typed Parquet and each UF's
                 indicator table (issue 12); against ours-gzip, the extra cost of both
  ours-publish   what ``vacina-d1 publish`` runs (pipelines.publish_day.run_publish), to a fresh local
                 directory + SQLite catalog: partition, gzip, upload (fsync'd), read-back
                 verification, manifest, commit
  ours-publish-csv / ours-publish-all  partition + publish_day to a fresh local store and
                 SQLite catalog, without / with the Parquet and the indicators (the same
                 code path, so their ratio is the publication's extra cost)
  pandas         read_parquet, the routing with pandas/numpy, concat, groupby + to_csv
  duckdb         one SQL (UNION ALL of the four placements) COPY ... (PARTITION_BY (_op))
  duckdb-4gb     the same with SET memory_limit='4GB' (spilling to disk), to see whether
                 DuckDB fits the memory target at all
  polars-sink    the same as a lazy frame, sink_csv(pl.PartitionBy(key="_op"))
  polars-groups  collected, DataFrame.partition_by("_op") + write_csv per group
  floor          Polars writing the same rows (all files' rows, vínculo included) as ONE CSV
  floor-input    Polars writing the input rows once as one CSV (context only)

Baselines write plain CSV without ordering rows or hashing; ours orders rows
canonically and hashes every file. Before each variant the output directory is
removed and the page cache flushed (``sync``), so no variant pays for another's
writeback. With ``--repeat`` the best wall time of the repeats is reported.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DAY = "2026-11-21"
SEED = 1
VARIANTS = (
    "ours-plain",
    "ours-gzip",
    "ours-gzip-parquet",
    "ours-publish",
    "ours-publish-csv",
    "ours-publish-all",
    "floor",
    "floor-input",
    "duckdb",
    "duckdb-4gb",
    "polars-sink",
    "polars-groups",
    "pandas",
)


# -- children --------------------------------------------------------------------------------


def _municipios():
    from pipelines import reference

    munis = reference.municipios()
    return [m.ibge6 for m in munis.values()], [m.uf for m in munis.values()], sorted(reference.ufs())


def polars_expanded(path: Path):
    """Every line of every file as one lazy frame: the 56 columns, the vínculo, and _op."""
    import polars as pl

    from pipelines import contract

    codes, ufs_of, ufs = _municipios()
    m = pl.LazyFrame({"co_municipio_paciente": codes, "_muf": ufs_of})
    brasileiro = pl.col("co_pais_paciente").is_null() | (pl.col("co_pais_paciente") == "10")
    lf = (
        pl.scan_parquet(path)
        .join(m, on="co_municipio_paciente", how="left", maintain_order="left")
        .with_columns(
            _rm=pl.when(brasileiro & pl.col("_muf").is_not_null()).then(pl.col("co_municipio_paciente")),
            _ru=pl.when(brasileiro).then(
                pl.coalesce(pl.col("_muf"), pl.when(pl.col("sg_uf_paciente").is_in(ufs)).then(pl.col("sg_uf_paciente")))
            ),
        )
    )
    eu, em, ru, rm = pl.col("sg_uf_estabelecimento"), pl.col("co_municipio_estabelecimento"), pl.col("_ru"), pl.col("_rm")
    cols = list(contract.SOURCE_COLUMNS)
    tp = contract.TERRITORY_COLUMN
    prefix = pl.lit("imunizacao-total-")
    parts = [
        lf.select(
            *cols,
            pl.when(ru == eu).then(pl.lit("ambos")).otherwise(pl.lit("ocorrencia")).alias(tp),
            (prefix + eu.str.to_lowercase()).alias("_op"),
        ),
        lf.filter(ru.is_not_null() & (ru != eu)).select(
            *cols, pl.lit("residencia").alias(tp), (prefix + ru.str.to_lowercase()).alias("_op")
        ),
        lf.select(
            *cols,
            pl.when(rm == em).then(pl.lit("ambos")).otherwise(pl.lit("ocorrencia")).alias(tp),
            (prefix + eu.str.to_lowercase() + pl.lit("-") + em).alias("_op"),
        ),
        lf.filter(rm.is_not_null() & (rm != em)).select(
            *cols, pl.lit("residencia").alias(tp), (prefix + ru.str.to_lowercase() + pl.lit("-") + rm).alias("_op")
        ),
    ]
    return pl.concat(parts)


DUCKDB_SQL = """
with r as (
    select d.*,
           case when (co_pais_paciente is null or co_pais_paciente = '10') and m.uf is not null
                then co_municipio_paciente end as _rm,
           case when (co_pais_paciente is null or co_pais_paciente = '10')
                then coalesce(m.uf, case when sg_uf_paciente in (select uf from u) then sg_uf_paciente end) end as _ru
    from read_parquet('{path}') d left join m on m.ibge6 = d.co_municipio_paciente
)
select {cols}, case when _ru = sg_uf_estabelecimento then 'ambos' else 'ocorrencia' end as {tp},
       'imunizacao-total-' || lower(sg_uf_estabelecimento) as _op from r
union all
select {cols}, 'residencia', 'imunizacao-total-' || lower(_ru) from r
where _ru is not null and _ru <> sg_uf_estabelecimento
union all
select {cols}, case when _rm = co_municipio_estabelecimento then 'ambos' else 'ocorrencia' end,
       'imunizacao-total-' || lower(sg_uf_estabelecimento) || '-' || co_municipio_estabelecimento from r
union all
select {cols}, 'residencia', 'imunizacao-total-' || lower(_ru) || '-' || _rm from r
where _rm is not null and _rm <> co_municipio_estabelecimento
"""


def child(variant: str, path: Path, out: Path) -> dict:
    import datetime as dt

    if variant in ("ours-plain", "ours-gzip", "ours-gzip-parquet"):
        from pipelines.partition import partition_day

        extra = variant == "ours-gzip-parquet"
        result = partition_day(
            path,
            out / "staging",
            day=dt.date.fromisoformat(DAY),
            gzip_level=None if variant == "ours-plain" else 2,
            parquet=extra,
            indicators=extra,
        )
        return {
            "files": len(result.files),
            "rows": result.rows,
            "bytes_csv": result.bytes_csv,
            "bytes_stored": result.bytes_stored,
            "timings": result.timings,
            "bytes_representations": sum(r.bytes for f in result.files for r in f.representations),
        }
    if variant in ("ours-publish-csv", "ours-publish-all"):
        import time

        from pipelines.partition import partition_day
        from serving.catalog import Catalog
        from serving.publish import publish_day, staged_day_from
        from serving.storage import LocalStorage

        extra = variant == "ours-publish-all"
        catalog = Catalog(f"sqlite:///{out / 'catalog.db'}").upgrade()
        started = time.perf_counter()
        result = partition_day(path, out / "staging", day=dt.date.fromisoformat(DAY), parquet=extra, indicators=extra)
        partitioned = time.perf_counter()
        outcome = publish_day(LocalStorage(out / "storage"), catalog, staged_day_from(result))
        return {
            "files": outcome.files,
            "rows": outcome.rows,
            "bytes_csv": outcome.bytes_csv,
            "bytes_stored": outcome.bytes_stored,
            "partition_seconds": round(partitioned - started, 2),
            "publish_seconds": round(time.perf_counter() - partitioned, 2),
            "timings": outcome.timings,
            "partition_timings": result.timings,
        }
    if variant == "ours-publish":
        from pipelines.publish_day import run_publish
        from serving.catalog import Catalog
        from serving.storage import LocalStorage

        catalog = Catalog(f"sqlite:///{out / 'catalog.db'}").upgrade()
        summary = run_publish(
            path,
            dt.date.fromisoformat(DAY),
            storage=LocalStorage(out / "storage"),
            catalog=catalog,
            staging_root=out / "staging",
        )
        return {k: summary[k] for k in ("files", "rows", "bytes_csv", "bytes_stored", "partition_seconds", "publish_seconds")}
    if variant in ("floor", "floor-input"):
        import polars as pl

        target = out / "um.csv"
        frame = polars_expanded(path).drop("_op") if variant == "floor" else pl.scan_parquet(path)
        frame.sink_csv(target, separator=";", include_bom=True)
        return {"files": 1, "bytes_csv": target.stat().st_size}
    if variant in ("duckdb", "duckdb-4gb"):
        import duckdb

        from pipelines import contract

        codes, ufs_of, ufs = _municipios()
        con = duckdb.connect()
        if variant == "duckdb-4gb":
            con.execute(f"set memory_limit = '4GB'; set temp_directory = '{out / 'spill'}'")
        con.execute("create table m (ibge6 varchar, uf varchar)")
        con.executemany("insert into m values (?, ?)", list(zip(codes, ufs_of)))
        con.execute("create table u (uf varchar)")
        con.executemany("insert into u values (?)", [(u,) for u in ufs])
        sql = DUCKDB_SQL.format(path=path, cols=", ".join(contract.SOURCE_COLUMNS), tp=contract.TERRITORY_COLUMN)
        rows = con.execute(
            f"copy ({sql}) to '{out / 'duckdb'}' (format csv, delimiter ';', header true, partition_by (_op))"
        ).fetchone()[0]
        files = sum(1 for _ in (out / "duckdb").rglob("*.csv"))
        return {"files": files, "rows": int(rows)}
    if variant == "polars-sink":
        import polars as pl

        polars_expanded(path).sink_csv(
            pl.PartitionBy(out / "polars", key="_op", include_key=False), separator=";", include_bom=True, mkdir=True
        )
        return {"files": sum(1 for _ in (out / "polars").rglob("*.csv"))}
    if variant == "polars-groups":
        frame = polars_expanded(path).collect()
        groups = frame.partition_by("_op", as_dict=True, include_key=False)
        (out / "groups").mkdir()
        for (op,), group in groups.items():
            group.write_csv(out / "groups" / f"{op}_{DAY}.csv", separator=";", include_bom=True)
        return {"files": len(groups), "rows": frame.height}
    if variant == "pandas":
        import numpy as np
        import pandas as pd

        from pipelines import contract

        codes, ufs_of, ufs = _municipios()
        muni_uf = dict(zip(codes, ufs_of))
        df = pd.read_parquet(path)
        brasileiro = (df["co_pais_paciente"].isna() | (df["co_pais_paciente"] == "10")).to_numpy()
        muf = df["co_municipio_paciente"].map(muni_uf)
        rm = np.where(brasileiro & muf.notna().to_numpy(), df["co_municipio_paciente"], None)
        declared = df["sg_uf_paciente"].where(df["sg_uf_paciente"].isin(ufs))
        ru = np.where(brasileiro, muf.fillna(declared), None)
        ru = pd.Series(ru, index=df.index).where(lambda s: s.notna(), None)
        rm = pd.Series(rm, index=df.index)
        eu, em = df["sg_uf_estabelecimento"], df["co_municipio_estabelecimento"]
        tp = contract.TERRITORY_COLUMN
        parts = [
            df.assign(**{tp: np.where(ru == eu, "ambos", "ocorrencia"), "_op": "imunizacao-total-" + eu.str.lower()}),
            df[ru.notna() & (ru != eu)].assign(**{tp: "residencia", "_op": "imunizacao-total-" + ru.str.lower()}),
            df.assign(**{tp: np.where(rm == em, "ambos", "ocorrencia"), "_op": "imunizacao-total-" + eu.str.lower() + "-" + em}),
            df[rm.notna() & (rm != em)].assign(
                **{tp: "residencia", "_op": "imunizacao-total-" + ru.str.lower() + "-" + rm.astype("str")}
            ),
        ]
        expanded = pd.concat(parts, ignore_index=True)
        (out / "pandas").mkdir()
        files = 0
        for op, group in expanded.groupby("_op", sort=False):
            group.drop(columns="_op").to_csv(out / "pandas" / f"{op}_{DAY}.csv", sep=";", index=False, encoding="utf-8-sig")
            files += 1
        return {"files": files, "rows": len(expanded)}
    raise SystemExit(f"variante desconhecida: {variant}")


# -- parent ----------------------------------------------------------------------------------


def ensure_input(records: int) -> Path:
    path = OUT / f"partition-{records}.parquet"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(Path(sys.executable).parent / "vacina-d1"),
                "generate",
                "--date",
                DAY,
                "--records",
                str(records),
                "--seed",
                str(SEED),
                "--out",
                str(path),
            ],
            check=True,
            cwd=ROOT,
        )
    return path


def _rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def measure(variant: str, path: Path, max_rss_mb: int, timeout: float) -> dict:
    """Run one variant in its own process; a watchdog stops it past ``max_rss_mb`` of
    resident memory (the machine is shared: a baseline must not take it down) or
    past ``timeout`` seconds."""
    work = Path(tempfile.mkdtemp(prefix=f"partition-{variant}-", dir=OUT))
    os.sync()
    started = time.perf_counter()
    stopped = None
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", variant, "--input", str(path), "--out", str(work)],
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
            text=True,
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if stopped is None and _rss_mb(proc.pid) > max_rss_mb:
                stopped = f"parado: passou de {max_rss_mb:,} MB de memória residente"
                proc.kill()
            elif stopped is None and time.perf_counter() - started > timeout:
                stopped = f"parado: passou de {timeout:.0f} s"
                proc.kill()
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    shutil.rmtree(work, ignore_errors=True)
    common = {
        "variant": variant,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mb": usage.ru_maxrss // 1024,
    }
    if stopped or status:
        line = stopped or (errors.strip().splitlines() or ["?"])[-1][:200]
        return {**common, "error": line}
    return {**common, **json.loads(output.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-rss-mb", type=int, default=8000, help="stop a variant past this resident memory")
    parser.add_argument("--timeout", type=float, default=1800, help="stop a variant past this many seconds")
    parser.add_argument("--child")
    parser.add_argument("--input")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.input), Path(args.out)), default=str))
        return
    for records in args.records:
        path = ensure_input(records)
        best: dict[str, dict] = {}
        for round_ in range(args.repeat):
            for variant in args.variants:
                with open("/proc/loadavg") as handle:
                    load = handle.read().split()[0]
                result = measure(variant, path, args.max_rss_mb, args.timeout)
                result["load"] = load
                print(json.dumps({"records": records, "round": round_, **result}), flush=True)
                if "error" in result:
                    best.setdefault(variant, result)
                elif variant not in best or "error" in best[variant] or result["seconds"] < best[variant]["seconds"]:
                    best[variant] = result
        report(records, best)


def report(records: int, best: dict[str, dict]) -> None:
    ours = best.get("ours-plain", {}).get("seconds")
    print(f"\n### {records:,} registros\n")
    print("| variante | s | CPU s | pico MB | arquivos | linhas | × ours-plain |")
    print("|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        r = best.get(variant)
        if r is None:
            continue
        if "error" in r:
            print(f"| {variant} | {r['error']} (em {r['seconds']:.0f} s) | {r['cpu_seconds']:.1f} | {r['peak_mb']:,} | | | |")
            continue
        ratio = f"{r['seconds'] / ours:.2f}" if ours else ""
        rows = f"{r['rows']:,}" if "rows" in r else ""
        print(
            f"| {variant} | {r['seconds']:.2f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:,} | {r.get('files', '')} | {rows} | {ratio} |"
        )
    for label, base, extended in (
        ("particionamento", "ours-gzip", "ours-gzip-parquet"),
        ("publicação completa", "ours-publish-csv", "ours-publish-all"),
    ):
        a, b = best.get(base, {}), best.get(extended, {})
        if "seconds" in a and "seconds" in b and "error" not in a and "error" not in b:
            print(
                f"\nParquet + indicadores, {label}: {b['seconds']:.2f} s contra {a['seconds']:.2f} s "
                f"(+{(b['seconds'] / a['seconds'] - 1) * 100:.0f}%), pico {b['peak_mb']:,} MB contra {a['peak_mb']:,} MB"
            )


if __name__ == "__main__":
    main()
