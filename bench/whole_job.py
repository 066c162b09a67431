"""The whole D-1 job against a DuckDB SQL pipeline doing the same work, and the floor.

    .venv/bin/python bench/whole_job.py --records 1000000 --repeat 1

One synthetic day (``SyntheticSource``, seed 1, its deliberate defects and
corruptions) is written once as the routine PNI CSV (``;``, unquoted, the 56
columns). Then, interleaved in each round, each variant in its own process (wall
time, CPU time and peak RSS from ``os.wait4``; a watchdog stops one past
``--max-rss-mb``):

  run            ``vacina-d1 run`` reading that CSV (``VACINA_D1_SOURCE=pni-csv``): extraction,
                 checks, partitioning, publication to a fresh local store + SQLite catalog,
                 the Dagster job in process; its steps' seconds from the run's event log
  import+publish ``vacina-d1 import --date D`` then ``vacina-d1 publish`` (two processes)
  duckdb-sql     one DuckDB session doing the same work in SQL: read the CSV as text,
                 normalise (trim, control characters, the float defect, leading zeros,
                 7-digit IBGE), the same validation rules with reason lists, quarantine to
                 Parquet, repeats of co_documento to quarantine, the same placement rule
                 (occurrence/residence, UF and municipality files), ``COPY … PARTITION_BY``
                 CSV with gzip; ``memory_limit`` = ``--duckdb-memory`` (it spills; unbounded
                 it took 9.5 GB at 1 M)
  floor          read the staging Parquet once and write ONE gzip CSV of the same rows
                 (every file's lines, vínculo included; isal level 2 like the product)
  publish        ``vacina-d1 publish`` alone (staging → local store, gzip)
  polars-sink    Polars' partitioned ``sink_csv`` of the same lines with gzip
  source         the synthetic source alone (``SyntheticSource.batches()``)
  generate       ``vacina-d1 generate`` (source + validation + staging Parquet)
  help           ``vacina-d1 --help`` (best of 5) against ``python -c pass``

Ratios are taken within a round; the table shows each variant's best round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
BIN = Path(sys.executable).parent
DAY = "2026-11-21"
SEED = 1
VARIANTS = ("run", "import+publish", "duckdb-sql", "floor", "publish", "polars-sink", "source", "generate", "help")


# -- measuring a child -------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for each in [str(pid), *children]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def measured(argv: list[str], env: dict[str, str], cwd: Path, max_rss_mb: float) -> dict:
    """Wall and CPU seconds, peak RSS (MiB) and stdout of one child process."""
    started = time.perf_counter()
    stopped = threading.Event()
    reaped = threading.Event()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env, text=True)

        def watch() -> None:  # never reaps the child (poll would): wait4 below must get its rusage
            while not reaped.is_set():
                if _rss_mb(child.pid) > max_rss_mb:
                    stopped.set()
                    child.kill()
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(child.pid, 0)
        reaped.set()
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if stopped.is_set():
            return {"stopped": f"parado ao passar de {max_rss_mb:.0f} MB (em {seconds:.0f} s)"}
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} falhou: {err.read()[-3000:]}")
        return {
            "seconds": seconds,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.read(),
        }


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
    env.update(VACINA_D1_HOME=str(home), PYTHONPATH=str(ROOT), VACINA_D1_PARTITIONS_START="2026-01-01", **extra)
    return env


def _json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[0])


# -- the input ---------------------------------------------------------------------------------


def write_day_csv(path: Path, records: int) -> int:
    """The synthetic day as the routine PNI CSV (what an OpenDataSUS export looks like)."""
    import datetime as dt

    import polars as pl

    from pipelines import contract
    from pipelines.sources.synthetic import SyntheticSource

    rows = 0
    with open(path, "wb") as handle:
        handle.write((";".join(contract.SOURCE_COLUMNS) + "\n").encode())
        for batch in SyntheticSource(dt.date.fromisoformat(DAY), records, seed=SEED).batches():
            text = batch.select(pl.col(name).str.replace_all(r"[;\r\n\"]", " ") for name in contract.SOURCE_COLUMNS)
            handle.write(text.write_csv(separator=";", quote_style="never", include_header=False, null_value="").encode())
            rows += batch.height
    return rows


# -- the DuckDB SQL pipeline -------------------------------------------------------------------

DUCKDB_PIPELINE = r"""
create table raw as select * from read_csv('{csv}', delim=';', header=true, quote='', escape='',
    all_varchar=true, null_padding=true, strict_mode=false);
create table norm as select
    {normalised}
from raw;
create table checked as select *, list_filter([{reasons}], lambda x: x is not null) as motivos from norm;
copy (select * from checked where len(motivos) > 0) to '{out}/quarentena.parquet' (format parquet);
create table valid as select * exclude (motivos, _ordem, _n) from (
    select *, row_number() over (partition by co_documento order by _ordem) as _n from checked where len(motivos) = 0
) where _n = 1;
copy (select * exclude (_n) from (
    select *, row_number() over (partition by co_documento order by _ordem) as _n from checked where len(motivos) = 0
) where _n > 1) to '{out}/repetidos.parquet' (format parquet);
create table placed as
with r as (
    select d.*,
        case when (co_pais_paciente is null or co_pais_paciente = '10') and m.uf is not null
             then co_municipio_paciente end as _rm,
        case when (co_pais_paciente is null or co_pais_paciente = '10')
             then coalesce(m.uf, case when sg_uf_paciente in (select uf from u) then sg_uf_paciente end) end as _ru
    from valid d left join m on m.ibge6 = d.co_municipio_paciente
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
where _rm is not null and _rm <> co_municipio_estabelecimento;
copy (select * from placed order by _op, co_documento) to '{out}/arquivos'
    (format csv, delimiter ';', header true, partition_by (_op), compression gzip);
"""


def _duckdb_sql(csv: Path, out: Path, today: str) -> tuple[str, list[str]]:
    from pipelines import contract

    def text(c: str) -> str:
        return f"nullif(trim(regexp_replace({c}, '[\\x00-\\x1f\\x7f-\\x9f]+', ' ', 'g')), '')"

    exprs = []
    for c in contract.SOURCE_COLUMNS:
        t = text(c)
        if c in contract.NUMERIC_CODE_COLUMNS:
            t = f"regexp_replace({t}, '^(-?[0-9]+)\\.0+$', '\\1')"
            width = contract.CODE_WIDTHS.get(c)
            if c in ("co_municipio_paciente", "co_municipio_estabelecimento"):
                t = f"(case when regexp_full_match({t}, '[0-9]{{7}}') then left({t}, 6) else {t} end)"
            if width:
                t = f"(case when regexp_full_match({t}, '[0-9]+') then lpad({t}, {width}, '0') else {t} end)"
        elif c in contract.UF_COLUMNS or c == "tp_sexo_paciente":
            t = f"upper({t})"
        elif c == "st_documento":
            t = f"lower({t})"
        exprs.append(f"{t} as {c}")
    exprs.append("row_number() over () as _ordem")

    def date(c: str) -> str:
        return (
            f"coalesce(case when regexp_full_match({c}, '\\d{{4}}-\\d{{2}}-\\d{{2}}([T ].*)?') "
            f"then try_strptime(left({c}, 10), '%Y-%m-%d')::date end, "
            f"case when regexp_full_match({c}, '\\d{{2}}/\\d{{2}}/\\d{{4}}') then try_strptime({c}, '%d/%m/%Y')::date end)"
        )

    reasons = [f"case when {c} is null then 'campo_obrigatorio_ausente:{c}' end" for c in contract.REQUIRED_COLUMNS]
    statuses = ", ".join(f"'{v}'" for v in contract.ST_DOCUMENTO_VALUES)
    rules = [
        ("co_documento is not null and not regexp_full_match(co_documento, '[A-Za-z0-9.\\-]{1,64}')", "co_documento_invalido"),
        ("co_municipio_estabelecimento = '999999'", "municipio_estabelecimento_desconhecido"),
        (
            "co_municipio_estabelecimento <> '999999' and co_municipio_estabelecimento not in (select ibge6 from m)",
            "municipio_estabelecimento_invalido",
        ),
        (
            "sg_uf_estabelecimento <> (select uf from m where m.ibge6 = co_municipio_estabelecimento)",
            "uf_estabelecimento_inconsistente",
        ),
        (
            "co_municipio_paciente <> '999999' and co_municipio_paciente not in (select ibge6 from m)",
            "municipio_paciente_invalido",
        ),
        ("sg_uf_paciente <> 'XX' and sg_uf_paciente not in (select uf from u)", "uf_paciente_invalida"),
        (
            "sg_uf_paciente <> 'XX' and sg_uf_paciente <> (select uf from m where m.ibge6 = co_municipio_paciente)",
            "uf_paciente_inconsistente",
        ),
        ("not regexp_full_match(co_cnes_estabelecimento, '[0-9]{7}')", "cnes_invalido"),
        (f"dt_vacina is not null and {date('dt_vacina')} is null", "dt_vacina_invalida"),
        (f"{date('dt_vacina')} < date '1900-01-01'", "dt_vacina_implausivel"),
        (f"{date('dt_vacina')} > date '{today}'", "dt_vacina_futura"),
        (f"{date('dt_vacina')} > {date('dt_entrada_rnds')}", "dt_vacina_posterior_entrada"),
        (f"dt_entrada_rnds is not null and {date('dt_entrada_rnds')} is null", "dt_entrada_rnds_invalida"),
        (f"{date('dt_entrada_rnds')} > date '{today}'", "dt_entrada_rnds_futura"),
        (f"dt_deletado_rnds is not null and {date('dt_deletado_rnds')} is null", "dt_deletado_rnds_invalida"),
        (f"{date('dt_deletado_rnds')} > date '{today}'", "dt_deletado_rnds_futura"),
        (f"st_documento not in ({statuses})", "st_documento_invalido"),
    ]
    reasons += [f"case when coalesce({cond}, false) then '{code}' end" for cond, code in rules]
    sql = DUCKDB_PIPELINE.format(
        csv=csv,
        out=out,
        normalised=",\n    ".join(exprs),
        reasons=", ".join(reasons),
        cols=", ".join(contract.SOURCE_COLUMNS),
        tp=contract.TERRITORY_COLUMN,
    )
    return sql, [s for s in sql.split(";\n") if s.strip()]


# -- children ----------------------------------------------------------------------------------


def child(variant: str, work: Path, records: int, duckdb_memory: str) -> dict:
    import datetime as dt

    if variant == "duckdb-sql":
        import duckdb

        from pipelines import dates, reference

        munis = reference.municipios()
        con = duckdb.connect()
        con.execute(
            f"set memory_limit = '{duckdb_memory}'; set temp_directory = '{work / 'spill'}'; set preserve_insertion_order = false"
        )
        con.execute("create table m (ibge6 varchar, uf varchar)")
        con.executemany("insert into m values (?, ?)", [(m.ibge6, m.uf) for m in munis.values()])
        con.execute("create table u (uf varchar)")
        con.executemany("insert into u values (?)", [(u,) for u in sorted(reference.ufs())])
        out = work / "duckdb"
        out.mkdir()
        _, statements = _duckdb_sql(work.parent / "dia.csv", out, dates.today().isoformat())
        for statement in statements:
            con.execute(statement)
        files = sum(1 for _ in (out / "arquivos").rglob("*.csv.gz"))
        quarantined = con.execute(f"select count(*) from read_parquet('{out}/*.parquet')").fetchone()[0]
        lines = con.execute("select count(*) from placed").fetchone()[0]
        return {"files": files, "rows": int(lines), "quarantined": int(quarantined)}
    if variant == "floor":
        from isal import igzip
        from partition import polars_expanded

        frame = polars_expanded(work.parent / "staging.parquet").drop("_op").collect()
        with igzip.open(work / "um.csv.gz", "wb", compresslevel=2) as handle:
            frame.write_csv(handle, separator=";", include_bom=True)
        return {"files": 1, "rows": frame.height}
    if variant == "polars-sink":
        import polars as pl
        from partition import polars_expanded

        polars_expanded(work.parent / "staging.parquet").sink_csv(
            pl.PartitionBy(work / "polars", key="_op", include_key=False),
            separator=";",
            include_bom=True,
            mkdir=True,
            compression="gzip",
            compression_level=2,
        )
        return {"files": sum(1 for p in (work / "polars").rglob("*") if p.is_file())}
    if variant == "write-csv":
        return {"rows": write_day_csv(work / "dia.csv", records)}
    if variant == "source":
        from pipelines.sources.synthetic import SyntheticSource

        return {"rows": sum(b.height for b in SyntheticSource(dt.date.fromisoformat(DAY), records, seed=SEED).batches())}
    raise SystemExit(f"variante desconhecida: {variant}")


def _steps(dagster_home: Path, run_id: str) -> dict[str, float]:
    from dagster_overhead import steps_of

    return steps_of(dagster_home, run_id)


def measure(variant: str, work: Path, records: int, args: argparse.Namespace) -> dict:
    csv = work.parent / "dia.csv"
    cli = str(BIN / "vacina-d1")
    if variant == "run":
        home = work / "var"
        dagster_home = work / "dagster_home"
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = _env(home, VACINA_D1_SOURCE="pni-csv", VACINA_D1_SOURCE_LOCATION=str(csv), DAGSTER_HOME=str(dagster_home))
        result = measured([cli, "run", "--date", DAY], env, work, args.max_rss_mb)
        if "stopped" in result:
            return result
        summary = _json(result["stdout"])
        steps = _steps(dagster_home, summary["run_id"])
        checks = sum(v for k, v in steps.items() if "checks" in k)
        result.update(
            files=summary["files"], rows=summary["rows"], steps={k: round(v, 2) for k, v in steps.items()}, checks_s=checks
        )
        return result
    if variant in ("import+publish", "publish"):
        home = work / "var"
        env = _env(home)
        staging = work.parent / "staging.parquet"
        total = {"seconds": 0.0, "cpu": 0.0, "rss_mb": 0.0}
        if variant == "import+publish":
            staging = work / "staging.parquet"
            step = measured(
                [cli, "import", "--format", "pni-csv", "--input", str(csv), "--date", DAY, "--out", str(staging)],
                env,
                work,
                args.max_rss_mb,
            )
            if "stopped" in step:
                return step
            total.update(seconds=step["seconds"], cpu=step["cpu"], rss_mb=step["rss_mb"], import_s=step["seconds"])
        step = measured([cli, "publish", "--date", DAY, "--input", str(staging)], env, work, args.max_rss_mb)
        if "stopped" in step:
            return step
        summary = _json(step["stdout"])
        total["seconds"] += step["seconds"]
        total["cpu"] += step["cpu"]
        total["rss_mb"] = max(total["rss_mb"], step["rss_mb"])
        total.update(publish_s=step["seconds"], files=summary["files"], rows=summary["rows"])
        return total
    if variant == "generate":
        return measured(
            [cli, "generate", "--date", DAY, "--records", str(records), "--seed", str(SEED), "--out", str(work / "g.parquet")],
            _env(work / "var"),
            work,
            args.max_rss_mb,
        )
    if variant == "help":
        best = {"seconds": float("inf")}
        base = float("inf")
        for _ in range(5):
            base = min(base, measured([sys.executable, "-c", "pass"], _env(work), work, args.max_rss_mb)["seconds"])
            one = measured([cli, "--help"], _env(work), work, args.max_rss_mb)
            if one["seconds"] < best["seconds"]:
                best = one
        best["python_s"] = base
        return best
    result = measured(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--work",
            str(work),
            "--records",
            str(records),
            "--duckdb-memory",
            args.duckdb_memory,
        ],
        _env(work / "var"),
        work,
        args.max_rss_mb,
    )
    if "stopped" not in result:
        result.update(json.loads(result["stdout"].strip().splitlines()[-1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--max-rss-mb", type=float, default=6000)
    parser.add_argument("--duckdb-memory", default="3GB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.work), args.records[0], args.duckdb_memory)))
        return

    for records in args.records:
        base = Path(tempfile.mkdtemp(prefix="vacina-d1-bench-job-"))
        try:
            started = time.perf_counter()
            # In a child: this process stays small, so the children's peak RSS is their own.
            written = measured(
                [sys.executable, __file__, "--child", "write-csv", "--work", str(base), "--records", str(records)],
                _env(base / "var"),
                base,
                args.max_rss_mb,
            )
            rows = json.loads(written["stdout"].strip().splitlines()[-1])["rows"]
            # The staging the floor, publish and polars-sink read: this very CSV imported once.
            prep = measured(
                [
                    str(BIN / "vacina-d1"),
                    "import",
                    "--format",
                    "pni-csv",
                    "--input",
                    str(base / "dia.csv"),
                    "--date",
                    DAY,
                    "--out",
                    str(base / "staging.parquet"),
                ],
                _env(base / "var"),
                base,
                args.max_rss_mb,
            )
            valid = _json(prep["stdout"])["valid"]
            print(
                f"{records:,} registros: CSV de {(base / 'dia.csv').stat().st_size / 1e6:.0f} MB ({rows:,} linhas), "
                f"{valid:,} válidos; preparado em {time.perf_counter() - started:.0f} s; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            rounds: list[dict[str, dict]] = []
            for attempt in range(args.repeat):
                results: dict[str, dict] = {}
                for variant in args.variants:
                    work = base / f"{variant}-{attempt}"
                    work.mkdir()
                    try:
                        results[variant] = measure(variant, work, records, args)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    r = results[variant]
                    shown = r.get("stopped") or f"{r['seconds']:.1f} s, CPU {r['cpu']:.1f} s, pico {r['rss_mb']:.0f} MB"
                    print(f"  rodada {attempt + 1} {variant:15} {shown}  (load {os.getloadavg()[0]:.1f})", flush=True)
                rounds.append(results)
            report(records, rounds)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def report(records: int, rounds: list[dict[str, dict]]) -> None:
    def ratio(r: dict, a: str, b: str, key: str = "seconds") -> str:
        if a not in r or b not in r or "stopped" in r[a] or "stopped" in r[b]:
            return "—"
        return f"{r[a][key] / r[b][key]:.2f}"

    for i, r in enumerate(rounds, 1):
        print(f"rodada {i} ({records:,} registros): razões de tempo (e de CPU)")
        pairs = [
            ("duckdb-sql", "run", "DuckDB SQL ÷ run (meta ≥ 4)"),
            ("duckdb-sql", "import+publish", "DuckDB SQL ÷ import+publish (meta ≥ 4)"),
            ("run", "floor", "run ÷ piso (meta ≤ 3)"),
            ("import+publish", "floor", "import+publish ÷ piso (meta ≤ 3)"),
            ("polars-sink", "publish", "Polars sink gzip ÷ publish (meta ≥ 2)"),
            ("generate", "source", "generate ÷ fonte sintética (meta ≤ 2)"),
        ]
        for a, b, label in pairs:
            print(f"  {label:45} {ratio(r, a, b):>6}  (CPU {ratio(r, a, b, 'cpu')})")
        if "run" in r and "stopped" not in r["run"]:
            run = r["run"]
            print(
                f"  verificações no run: {run['checks_s']:.1f} s de {run['seconds']:.1f} s = {run['checks_s'] / run['seconds']:.0%} (meta ≤ 15%)"
            )
            print(f"  passos do run: {json.dumps(run['steps'], ensure_ascii=False)}")
        if "help" in r:
            print(
                f"  vacina-d1 --help: {r['help']['seconds']:.3f} s (python -c pass: {r['help']['python_s']:.3f} s; meta ≤ 0,5 s)"
            )
    print(
        json.dumps(
            [{k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in r.items()} for r in rounds],
            ensure_ascii=False,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
