"""A month's ``vacina-d1 sync`` against plain ``curl`` of the same files, same run.

A city's month (``--days`` files of ``--rows`` records, the D-1 layout) is published
to a local store and served by ``vacina-d1 serve`` on loopback. Then, each timed as a
process with its own peak memory (``os.wait4``):

* baseline: ``curl`` once per file (``-f -o``, the bearer token in a header) — what a
  shell script would do, no listing, no verification, no resume;
* baseline: one ``curl`` for all files (``--parallel``-less, one connection reused);
* ``vacina-d1 sync`` first run (lists, accepts the terms, downloads, verifies each
  SHA-256, renames into place, keeps the state);
* ``vacina-d1 sync`` re-run with nothing new (listing only);
* ``vacina-d1 sync --into`` DuckDB of the month already on disk.

    .venv/bin/python bench/sync.py --days 30 --rows 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.portal import world as w  # noqa: E402
from tests.sync import world as sw  # noqa: E402

BIN = Path(sys.executable).parent


# A fresh, small interpreter spawns the measured command and reports the child's peak
# RSS: measured from this (large) process, the child's figure would include the pages
# it shares with us between fork and exec.
LAUNCHER = (
    "import os, sys\n"
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, stdout) of one process."""
    with tempfile.NamedTemporaryFile(suffix=".rss", delete=False) as handle:
        report = Path(handle.name)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seconds = time.perf_counter() - started
    peak = int(report.read_text() or 0) / 1024
    report.unlink()
    return seconds, peak, done.returncode, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows", type=int, default=20_000, help="registros por dia")
    args = parser.parse_args()
    curl = shutil.which("curl")
    if not curl:
        sys.exit("bench/sync.py precisa do curl para a linha de base")

    tmp = Path(tempfile.mkdtemp(prefix="vacina-d1-bench-sync-"))
    try:
        started = time.perf_counter()
        world = sw.build(tmp, days=[])
        first = dt.date(2026, 10, 1)
        days = [first + dt.timedelta(days=k) for k in range(args.days)]
        for day in days:
            world.publish(day, {sw.SP_CITY: sw.day_rows(day, args.rows)})
        total_bytes = sum(world.gz[(sw.SP_CITY, day)].__len__() for day in days)
        print(
            f"mês publicado: {args.days} arquivos, {args.days * args.rows} registros, "
            f"{total_bytes / 1e6:.1f} MB gzip ({time.perf_counter() - started:.0f} s para gerar)"
        )
        server = sw.serve(tmp, world)
        try:
            token = world.world.personal_tokens[sw.USER_CPF]
            with httpx.Client(base_url=server.url, timeout=60) as http:
                headers = w.bearer(http, world.world, sw.USER_CPF)
                w.accept_terms(http, headers, sw.SP_CITY)
            urls = [f"{server.url}/files/{world.ids[(sw.SP_CITY, day)]}/content" for day in days]
            env = {k: v for k, v in os.environ.items() if not k.startswith("VACINA_D1_") and "proxy" not in k.lower()}
            rows = []

            out = tmp / "curl-por-arquivo"
            out.mkdir()
            seconds = peak = 0.0
            for url, day in zip(urls, days):
                s, p, code, _ = timed(
                    [
                        curl,
                        "-sS",
                        "-f",
                        "-o",
                        str(out / f"{day}.csv.gz"),
                        "-H",
                        f"Authorization: {headers['Authorization']}",
                        url,
                    ],
                    env,
                )
                assert code == 0
                seconds += s
                peak = max(peak, p)
            rows.append(("curl, um processo por arquivo", seconds, peak, len(urls)))

            out = tmp / "curl-um-processo"
            out.mkdir()
            argv = [curl, "-sS", "-f", "-H", f"Authorization: {headers['Authorization']}"]
            for url, day in zip(urls, days):
                argv += ["-o", str(out / f"{day}.csv.gz"), url]
            s, p, code, _ = timed(argv, env)
            assert code == 0
            rows.append(("curl, um processo para todos", s, p, len(urls)))

            sync_env = {
                **env,
                "VACINA_D1_URL": server.url,
                "VACINA_D1_CPF": sw.USER_CPF,
                "VACINA_D1_TOKEN": token,
                "VACINA_D1_CONFIG": str(tmp / "nao-existe.toml"),
            }
            dest = tmp / "sync"
            base = [str(BIN / "vacina-d1"), "sync", "--operation", sw.SP_CITY, "--since", first.isoformat(), "--dest", str(dest)]
            s, p, code, stdout = timed(base, sync_env)
            assert code == 0, stdout
            rows.append(("vacina-d1 sync, primeira vez", s, p, len(urls)))
            for day in days:
                assert (dest / sw.SP_CITY / f"{sw.SP_CITY}_{day}.csv.gz").read_bytes() == world.gz[(sw.SP_CITY, day)]
            s, p, code, stdout = timed(base, sync_env)
            assert code == 0 and '"downloaded": 0' in stdout
            rows.append(("vacina-d1 sync, nada novo (só listagem)", s, p, 0))
            s, p, code, stdout = timed([*base, "--into", str(tmp / "mes.duckdb")], sync_env)
            assert code == 0, stdout
            rows.append(("vacina-d1 sync --into DuckDB (mês já baixado)", s, p, 0))
            # The floor for --into: DuckDB appending the same files to one table, nothing applied.
            files = sorted(str(f) for f in (dest / sw.SP_CITY).glob("*.csv.gz"))
            script = (
                "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute('SET enable_progress_bar = false'); "
                "con.execute(\"CREATE TABLE linhas AS SELECT * FROM read_csv(?, header=true, delim=';', all_varchar=true)\", "
                "[sys.argv[2:]]); print(con.execute('select count(*) from linhas').fetchone()[0])"
            )
            s, p, code, stdout = timed([sys.executable, "-c", script, str(tmp / "piso.duckdb"), *files], env)
            assert code == 0 and int(stdout) == args.days * args.rows, stdout
            rows.append(("piso do --into: DuckDB lê o mês numa tabela (sem aplicar nada)", s, p, 0))
        finally:
            server.stop()
            world.world.database.dispose()

        floor = timed(["true"], {})[1]
        baseline = rows[0][1]
        print(f"\n(pico de memória medido por processo; piso do método: {floor:.0f} MB, o de um processo vazio)")
        print("\n| o quê | arquivos | s | arquivos/s | MB/s | pico de memória | × curl por arquivo |")
        print("|---|---|---|---|---|---|---|")
        for label, seconds, peak, files in rows:
            rate = f"{files / seconds:.1f}" if files else "—"
            mbps = f"{total_bytes / 1e6 / seconds:.1f}" if files else "—"
            print(f"| {label} | {files} | {seconds:.2f} | {rate} | {mbps} | {peak:.0f} MB | {seconds / baseline:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
