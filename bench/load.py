"""The portal under load (issue 11): a real load generator (locust, headless) on
loopback against ``vacina-d1 serve --workers N`` alone and behind nginx
(X-Accel-Redirect, deploy/nginx/vacina-d1.conf), on SQLite and on PostgreSQL, and
nginx serving the same files as plain static files — the baseline — in the same run.

    .venv/bin/python bench/load.py [--users 200] [--seconds 60] [--workers 2] [--rows 20000]
                                   [--postgres URL] [--only sqlite,postgres,static]

The mix per user: 60% listing (years, months, a month's files), 40% downloads of
which 10% are resumed ranges; every complete body must hash to the catalog's SHA-256
and every range must be the stored bytes from its start. Reported per scenario:
requests/s, p50/p99 (listing and downloads), download MB/s, server errors, broken
bodies, transfers started vs download-log entries written, and the download MB/s as a
ratio of bare nginx's. Targets: 0 server errors, 0 broken bodies, log entries ==
transfers started, listing p99 < 200 ms, behind nginx >= 0.8x bare nginx MB/s. Each
scenario also runs a listing-only phase (same users): there the generator does almost
nothing per answer, so the listing latency is the server's, not the client's queue.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal_api.models import DownloadLogEntry  # noqa: E402
from tests.portal import world as w  # noqa: E402
from tests.portal.nginx import Nginx  # noqa: E402
from tests.portal.servers import start_portal  # noqa: E402

BIN = Path(sys.executable).parent
LOCUSTFILE = Path(__file__).with_name("load_locustfile.py")
DAYS = [dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)]


def build_world(tmp: Path, catalog_url: str | None, rows: int) -> w.World:
    world = w.build(tmp, catalog_url)
    for n, day in enumerate(DAYS):  # DF files of a realistic size (a few MB of gzip each)
        w.publish_file(world, w.DF, day, rows=rows, seed=100 + n)
    return world


def files_of(world: w.World) -> list[dict]:
    out = []
    for day in DAYS:
        record = world.database.catalog.current_file(w.DF, day)
        out.append(
            {
                "id": record.id,
                "sha256": record.sha256_stored,
                "size": record.bytes_stored,
                "path": str(world.storage.path_of(record.object_key)),
                "static_path": f"/estatico/{record.object_key}",
            }
        )
    return out


def log_entries(world: w.World) -> int:
    with world.database.session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(DownloadLogEntry)) or 0)


def tokens(base_url: str, world: w.World) -> list[str]:
    out = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for cpf in (w.ANA_CPF, w.CARLA_CPF):
            headers = w.bearer(http, world, cpf)
            w.accept_terms(http, headers, w.DF)
            out.append(headers["Authorization"].split(" ", 1)[1])
    return out


def run_locust(base_url: str, config: dict, work: Path, users: int, seconds: int, user_class: str) -> tuple[dict, dict]:
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    prefix = work / "locust"
    spawn = max(1, users // 2)  # all users within ~2 s
    done = subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(spawn),
            "-t",
            f"{seconds}s",
            "--host",
            base_url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "30",
            "--loglevel",
            "WARNING",
            user_class,
        ],
        env={**os.environ, "LOAD_CONFIG": str(config_path)},
        capture_output=True,
        text=True,
        timeout=seconds + 180,
    )
    if not (work / "counters.json").exists():
        raise RuntimeError(f"locust falhou ({done.returncode}): {done.stderr[-3000:]}")
    stats = {}
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stats[row["Name"]] = row
    counters = json.loads((work / "counters.json").read_text())
    with open(f"{prefix}_failures.csv", newline="") as handle:
        counters["failures"] = {f"{r['Name']}: {r['Error'][:120]}": int(r["Occurrences"]) for r in csv.DictReader(handle)}
    return stats, counters


def _num(row: dict | None, field: str) -> float:
    try:
        return float(row[field]) if row and row.get(field) not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def summarise(name: str, stats: dict, counters: dict, seconds: int, log_delta: int | None) -> dict:
    total = stats.get("Aggregated")
    listing = [r for n, r in stats.items() if n.startswith("listagem")]
    downloads = [r for n, r in stats.items() if n.startswith("download")]

    def worst(rows, field):
        return max((_num(r, field) for r in rows), default=0.0)

    return {
        "scenario": name,
        "requests": int(_num(total, "Request Count")),
        "req_per_s": round(_num(total, "Requests/s"), 1),
        "failures": int(_num(total, "Failure Count")),
        "listing_p50_ms": worst(listing, "50%"),
        "listing_p99_ms": worst(listing, "99%"),
        "download_p50_ms": worst(downloads, "50%"),
        "download_p99_ms": worst(downloads, "99%"),
        "download_mb_s": round(counters["download_bytes"] / seconds / 1e6, 1),
        "server_errors": counters["server_errors"],
        "broken_bodies": counters["broken_bodies"],
        "transfers_started": counters["transfers_started"],
        "log_entries": log_delta,
        "failures_by_kind": counters.get("failures", {}),
    }


def scenario(name, world, tmp, args, *, behind_nginx: bool, static: bool = False) -> dict:
    work = tmp / name
    work.mkdir(parents=True)
    files = files_of(world)
    config = {
        "mode": "static" if static else "portal",
        "files": files,
        "counters": str(work / "counters.json"),
        "listing": [{"operation": w.DF, "year": 2026, "month": 11}],
        "tokens": [],
    }
    portal = proxy = None
    try:
        if static:
            (world.storage.root / "listagem.json").write_text(json.dumps({"years": [2026]}))
            proxy = Nginx(work / "nginx", "127.0.0.1:9", world.storage.root, static=True, workers=args.workers)
            base = proxy.static_url.removesuffix("/estatico/")
            config["static_listing"] = "/estatico/listagem.json"
        else:
            env = {
                "VACINA_D1_HOME": str(world.settings.home),
                "VACINA_D1_CATALOG_URL": world.settings.resolved_catalog_url,
                "VACINA_D1_STORAGE_URL": world.settings.resolved_storage_url,
                "VACINA_D1_TOKEN_KEY": w.TOKEN_KEY,
                "VACINA_D1_TRUSTED_PROXIES": "127.0.0.1",
            }
            if behind_nginx:
                env["VACINA_D1_ACCEL_REDIRECT_PREFIX"] = "/_arquivos/"
            portal = start_portal(work, env, extra_args=("--workers", str(args.workers)))
            base = portal.url
            if behind_nginx:
                proxy = Nginx(work / "nginx", portal.url.removeprefix("http://"), world.storage.root, workers=args.workers)
                base = proxy.url
            config["tokens"] = tokens(base, world)
        results = []
        for user_class, label in (("Portal", name), ("Listing", f"{name}/só-listagem")):
            if user_class == "Listing" and not args.listing_phase:
                continue
            phase = work / user_class
            phase.mkdir()
            config["counters"] = str(phase / "counters.json")
            before = None if static else log_entries(world)
            stats, counters = run_locust(base, config, phase, args.users, args.seconds, user_class)
            time.sleep(1)
            delta = None if static else log_entries(world) - before
            results.append(summarise(label, stats, counters, args.seconds, delta))
        return results
    finally:
        if proxy is not None:
            proxy.stop()
        if portal is not None:
            portal.stop()
        # The servers' logs outlive the temporary directory (errors are read there).
        keep = Path(tempfile.gettempdir()) / "vacina-d1-load-logs"
        keep.mkdir(exist_ok=True)
        for log in (work / "portal.log", work / "nginx" / "error.log"):
            if log.exists():
                (keep / f"{name}-{log.name}").write_bytes(log.read_bytes()[-2_000_000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="processos do portal e do nginx")
    parser.add_argument("--rows", type=int, default=20_000, help="linhas de cada arquivo DF baixado")
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", default="static,sqlite,postgres")
    parser.add_argument(
        "--no-listing-phase",
        dest="listing_phase",
        action="store_false",
        help="sem a fase só de listagem (a latência do servidor sem o custo do cliente nos downloads)",
    )
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="vacina-d1-load-") as tmp_name:
        tmp = Path(tmp_name)
        sqlite_world = build_world(tmp / "sqlite", None, args.rows)
        if "static" in wanted:
            results += scenario("nginx-estatico", sqlite_world, tmp, args, behind_nginx=False, static=True)
        if "sqlite" in wanted:
            results += scenario("sqlite-app", sqlite_world, tmp, args, behind_nginx=False)
            results += scenario("sqlite-nginx", sqlite_world, tmp, args, behind_nginx=True)
        sqlite_world.database.dispose()
        if "postgres" in wanted:
            name = f"vacina_d1_load_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            try:
                pg_world = build_world(tmp / "pg", args.postgres.rsplit("/", 1)[0] + f"/{name}", args.rows)
                results += scenario("postgres-app", pg_world, tmp, args, behind_nginx=False)
                results += scenario("postgres-nginx", pg_world, tmp, args, behind_nginx=True)
                pg_world.database.dispose()
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    baseline = next((r["download_mb_s"] for r in results if r["scenario"] == "nginx-estatico"), None)
    listing_baseline = next((r["req_per_s"] for r in results if r["scenario"] == "nginx-estatico/só-listagem"), None)
    for r in results:
        if r["scenario"].endswith("só-listagem"):
            r["ratio_to_bare_nginx"] = round(r["req_per_s"] / listing_baseline, 2) if listing_baseline else None
        else:
            r["ratio_to_bare_nginx"] = round(r["download_mb_s"] / baseline, 2) if baseline else None
    print(json.dumps({"users": args.users, "seconds": args.seconds, "workers": args.workers, "results": results}, indent=1))
    header = (
        "cenário",
        "req/s",
        "lista p50/p99 ms",
        "download p50/p99 ms",
        "MB/s",
        "× nginx",
        "erros 5xx",
        "corpos quebrados",
        "transferências",
        "registro",
    )
    print(" | ".join(header))
    for r in results:
        print(
            " | ".join(
                str(x)
                for x in (
                    r["scenario"],
                    r["req_per_s"],
                    f"{r['listing_p50_ms']:.0f}/{r['listing_p99_ms']:.0f}",
                    f"{r['download_p50_ms']:.0f}/{r['download_p99_ms']:.0f}",
                    r["download_mb_s"],
                    r["ratio_to_bare_nginx"],
                    r["server_errors"],
                    r["broken_bodies"],
                    r["transfers_started"],
                    r["log_entries"],
                )
            )
        )


if __name__ == "__main__":
    main()
