"""Portal API: the cost of the hash-chained download log and of streaming a download.

    .venv/bin/python bench/bench_portal.py [--appends 2000] [--rows 60000] [--postgres URL]

1. Log appends (lock the head row, hash, insert, move the head; one transaction
   each) against a baseline of the same row inserted into a plain table, one
   transaction each, on the same database; single-threaded and with 4 threads.
2. verify-log (re-hash every entry) against a baseline SELECT of the same rows.
3. A download over real HTTP (``vacina-d1 serve`` on loopback, httpx) against a
   baseline reading the same object straight from the local storage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal_api import crud, download_log  # noqa: E402
from tests.portal import world as w  # noqa: E402
from tests.portal.servers import start_portal  # noqa: E402


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _entry(world):
    published = world.file(w.DF, dt.date(2026, 11, 21))
    with world.database.session() as session:
        user_id = crud.user_by_cpf(session, w.ANA_CPF).id
        credential_id = crud.credential_by_number(session, "3804/2024").id
    return dict(
        published_file_id=published.id,
        operation=w.DF,
        day=published.day,
        file_version=published.version,
        file_sha256=published.sha256,
        user_id=user_id,
        credential_id=credential_id,
        representation="csv.gz",
        delivery="stream",
        client_address="127.0.0.1",
    )


def bench_log(world, appends: int, label: str) -> None:
    engine = world.database.engine
    fields = _entry(world)
    scratch = sa.Table(
        f"bench_plain_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *[sa.Column(name, sa.String(80)) for name in fields],
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    scratch.create(engine)
    row = {k: str(v) for k, v in fields.items()}

    def plain(n: int) -> None:
        for _ in range(n):
            with engine.begin() as conn:
                conn.execute(scratch.insert().values(**row, created_at=dt.datetime.now(dt.timezone.utc)))

    def chained(n: int) -> None:
        for _ in range(n):
            download_log.append(engine, **fields)

    def threaded(function, n: int, threads: int = 4) -> None:
        pool = [threading.Thread(target=function, args=(n // threads,)) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    base = _timed(lambda: plain(appends))
    mine = _timed(lambda: chained(appends))
    base4 = _timed(lambda: threaded(plain, appends))
    mine4 = _timed(lambda: threaded(chained, appends))
    total = 2 * appends
    with engine.connect() as conn:
        select = _timed(
            lambda: conn.execute(
                sa.select(*[getattr(download_log.DownloadLogEntry, n) for n in download_log.HASHED_FIELDS])
            ).all()
        )
    result = None

    def verify():
        nonlocal result
        result = download_log.verify(engine)

    check = _timed(verify)
    assert result.ok and result.entries == total, result
    print(f"| {label} | append, 1 thread | {appends / base:,.0f}/s | {appends / mine:,.0f}/s | {mine / base:.2f} |")
    print(f"| {label} | append, 4 threads | {appends / base4:,.0f}/s | {appends / mine4:,.0f}/s | {mine4 / base4:.2f} |")
    print(
        f"| {label} | verify-log ({total:,} entries) | {total / select:,.0f}/s | {total / check:,.0f}/s | {check / select:.2f} |"
    )
    scratch.drop(engine)


def bench_download(world, tmp: Path) -> None:
    published = world.file(w.DF, dt.date(2026, 11, 21))
    env = {
        "VACINA_D1_HOME": str(world.settings.home),
        "VACINA_D1_CATALOG_URL": world.settings.resolved_catalog_url,
        "VACINA_D1_STORAGE_URL": world.settings.resolved_storage_url,
        "VACINA_D1_TOKEN_KEY": w.TOKEN_KEY,
    }
    server = start_portal(tmp, env)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            headers = w.bearer(http, world, w.ANA_CPF)
            w.accept_terms(http, headers, w.DF)
            key = world.database.catalog.file(published.id).object_key
            runs = 5
            base = min(_timed(lambda: b"".join(world.storage.iter_range(key))) for _ in range(runs))

            def fetch():
                with http.stream("GET", f"/files/{published.id}/content", headers=headers) as response:
                    size = sum(len(chunk) for chunk in response.iter_raw())
                assert size == len(published.gz)

            mine = min(_timed(fetch) for _ in range(runs))
    finally:
        server.stop()
    mb = len(published.gz) / 1e6
    print(f"| HTTP | download {mb:.1f} MB (best of {runs}) | {mb / base:,.0f} MB/s | {mb / mine:,.0f} MB/s | {mine / base:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=60000, help="rows of the downloaded file")
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print("| database | what | baseline | portal | × baseline |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        world = w.build(Path(tmp) / "sqlite", big_rows=args.rows)
        bench_log(world, args.appends, "SQLite")
        bench_download(world, Path(tmp))
        world.database.dispose()
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        name = f"vacina_d1_bench_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.OperationalError as exc:
            print(f"(PostgreSQL inacessível: {str(exc).splitlines()[0]})")
            return
        try:
            world = w.build(Path(tmp) / "pg", args.postgres.rsplit("/", 1)[0] + f"/{name}")
            bench_log(world, args.appends, "PostgreSQL")
            world.database.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
