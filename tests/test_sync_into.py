"""``vacina-d1 sync --into``: the table of the territory's current records, in
DuckDB and in PostgreSQL, checked row for row against an independent replay of the
published files (tests/sync/world.py ``current_state``), through a republished day
with a corrected record, an entered-in-error one, a replacement and a vanished
line; idempotent re-runs; the order files arrive in does not matter."""

from __future__ import annotations

import datetime as dt
import gzip
import random

import pytest
from vacina_d1_client import into
from vacina_d1_client.state import State

from tests.sync import world as sw

pytestmark = pytest.mark.slow

D0, D1, D2, D3 = sw.DAYS


# Each database kind syncs its own municipality's operation (the test republishes a day of it),
# so both share one published world and one portal.
OPERATIONS = {"duckdb": ("355030", sw.SP_CITY), "postgresql": ("351880", "imunizacao-total-sp-351880")}


def _initial_files(ibge6: str = "355030") -> dict[dt.date, list[dict]]:
    """Four days of the city with the RNDS's own kinds of change already in them."""
    days = {day: sw.day_rows(day, 30, ibge6) for day in sw.DAYS}
    # A document with two immunizations (FHIR items "-i0", "-i1"), replaced whole the next day.
    days[D0] += [sw.record("DOC-FHIR-A-i0", D0, ibge6), sw.record("DOC-FHIR-A-i1", D0, ibge6)]
    days[D1].append(sw.record("DOC-FHIR-B", D1, ibge6, co_troca_documento="DOC-FHIR-A"))
    # A later line of a day-0 document (the later day wins), one deleted, one entered-in-error.
    days[D2].append(sw.record(days[D0][3]["co_documento"], D2, ibge6, co_lote_vacina="LOTE-REENVIADO"))
    days[D2].append(sw.record(days[D0][4]["co_documento"], D2, ibge6, dt_deletado_rnds=D2.isoformat()))
    days[D3].append(sw.record(days[D1][5]["co_documento"], D3, ibge6, st_documento="entered-in-error"))
    # A cancellation by replacement: entered-in-error naming the document it cancels.
    days[D3].append(
        sw.record("DOC-CANCELA", D3, ibge6, st_documento="entered-in-error", co_troca_documento=days[D1][6]["co_documento"])
    )
    return days


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("portal")
    world = sw.build(tmp, more_municipalities=("351880",))
    files = {ibge6: _initial_files(ibge6) for ibge6, _ in OPERATIONS.values()}
    for day in sw.DAYS:
        world.publish(day, {operation: files[ibge6][day] for ibge6, operation in OPERATIONS.values()})
    server = sw.serve(tmp, world)
    yield world, server
    server.stop()
    world.world.database.dispose()


def _expected(world: sw.SyncWorld, operation: str = sw.SP_CITY) -> dict[str, tuple]:
    files = [world.rows[(operation, day)] for day in sw.DAYS]
    return {doc: tuple(row[c] for c in into.FILE_COLUMNS) for doc, row in sw.current_state(files).items()}


def _table(target: into.Target, operation: str = sw.SP_CITY) -> dict[str, tuple]:
    cols = ", ".join(into.FILE_COLUMNS)
    sql = f"SELECT {cols} FROM vacina_d1_registros WHERE operacao = '{operation}'"
    if isinstance(target, into.DuckDBTarget):
        rows = target.con.execute(sql).fetchall()
    else:
        with target.con.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
    out = {}
    for row in rows:
        text = tuple("" if v is None else (v.isoformat() if isinstance(v, dt.date) else v) for v in row)
        assert text[0] not in out, f"documento repetido: {text[0]}"
        out[text[0]] = text
    return out


def _audit(target: into.Target) -> list[tuple]:
    sql = (
        "SELECT dia, versao, linhas, finais, entered_in_error, deletados, substituicoes, inseridos, atualizados, "
        "removidos, registros_atuais FROM vacina_d1_auditoria ORDER BY aplicado_em_utc, dia"
    )
    if isinstance(target, into.DuckDBTarget):
        return target.con.execute(sql).fetchall()
    with target.con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _open(kind: str, tmp_path, request) -> str:
    if kind == "duckdb":
        return str(tmp_path / "dados.duckdb")
    return request.getfixturevalue("postgres_url")


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_republished_day_with_a_correction_and_an_entered_in_error_is_reflected_exactly(portal, tmp_path, kind, request):
    world, server = portal
    ibge6, operation = OPERATIONS[kind]
    database = _open(kind, tmp_path, request)
    dest = tmp_path / "dados"
    first = sw.sync(
        server.url, dest, "--operation", operation, "--since", "2026-11-01", "--accept-terms", "--into", database, sw=world
    )
    assert first.code == 0, first.stderr
    assert [entry["dia"] for entry in first.summary["loaded"]] == [d.isoformat() for d in sw.DAYS]

    target = into.open_target(database)
    try:
        expected = _expected(world, operation)
        table = _table(target, operation)
        assert table == expected
        # The RNDS's changes did their work: the replaced items, the deleted, the entered-in-error are gone.
        rows = world.rows
        for gone in (
            "DOC-FHIR-A-i0",
            "DOC-FHIR-A-i1",
            rows[(operation, D0)][4]["co_documento"],
            rows[(operation, D1)][5]["co_documento"],
            rows[(operation, D1)][6]["co_documento"],
            "DOC-CANCELA",
        ):
            assert gone not in table
        assert table[rows[(operation, D0)][3]["co_documento"]][into.FILE_COLUMNS.index("co_lote_vacina")] == "LOTE-REENVIADO"
        assert "DOC-FHIR-B" in table
        audit_before = _audit(target)
        assert len(audit_before) == 4
    finally:
        target.close()

    # Day 2 republished: one record corrected, one now entered-in-error, one new line replacing a
    # day-1 document, one line gone from the file.
    v2 = [dict(row) for row in world.rows[(operation, D2)]]
    corrected, in_error, vanished = v2[0]["co_documento"], v2[1]["co_documento"], v2[2]["co_documento"]
    v2[0]["co_lote_vacina"] = "LOTE-CORRIGIDO"
    v2[1]["st_documento"] = "entered-in-error"
    replaced = world.rows[(operation, D1)][7]["co_documento"]
    v2.append(sw.record("DOC-SUBSTITUTO", D2, ibge6, co_troca_documento=replaced))
    del v2[2]
    world.publish(D2, {operation: v2})
    second = sw.sync(server.url, dest, "--operation", operation, "--since", "2026-11-01", "--into", database, sw=world)
    assert second.code == 0, second.stderr
    assert second.summary["downloaded"] == 1
    assert [(e["dia"], e["inseridos"], e["atualizados"], e["removidos"]) for e in second.summary["loaded"]] == [
        (D2.isoformat(), 1, 1, 3)
    ]

    target = into.open_target(database)
    try:
        table = _table(target, operation)
        assert table == _expected(world, operation)
        assert table[corrected][into.FILE_COLUMNS.index("co_lote_vacina")] == "LOTE-CORRIGIDO"
        assert in_error not in table and vanished not in table and replaced not in table and "DOC-SUBSTITUTO" in table
        audit = _audit(target)
        assert len(audit) == 5
        last = audit[-1]
        assert (last[0], last[1]) == (D2, world.world.database.catalog.current_file(operation, D2).version)
        assert last[2:7] == (
            len(v2),
            len(v2) - 1,
            1,
            1,
            1,
        )  # linhas, finais, entered-in-error, deletados (the day-0 one), substituições
        assert last[-1] == len(table)
    finally:
        target.close()

    # Re-running changes nothing: no download, no audit row, the same table.
    third = sw.sync(server.url, dest, "--operation", operation, "--since", "2026-11-01", "--into", database, sw=world)
    assert third.code == 0 and third.summary["downloaded"] == 0 and third.summary["loaded"] == []
    target = into.open_target(database)
    try:
        assert _table(target, operation) == _expected(world, operation) and len(_audit(target)) == 5
        # Applying a day's file again by hand is a no-op too.
        state = State(dest)
        entry = state.entry(operation, D2.isoformat())
        again = target.apply(state.local_path(entry), operation, D2, entry["versao"], entry["sha256"])
        assert again.skipped and len(_audit(target)) == 5
    finally:
        target.close()


def test_the_table_does_not_depend_on_the_order_files_arrive(tmp_path):
    days = _initial_files()
    paths = {}
    for day, rows in days.items():
        path = tmp_path / f"{day}.csv.gz"
        path.write_bytes(gzip.compress(sw.csv_bytes(rows), mtime=0))
        paths[day] = path
    expected = {
        doc: tuple(row[c] for c in into.FILE_COLUMNS) for doc, row in sw.current_state([days[d] for d in sw.DAYS]).items()
    }
    for attempt, order in enumerate([list(sw.DAYS), list(reversed(sw.DAYS)), random.Random(7).sample(sw.DAYS, 4)]):
        target = into.open_target(str(tmp_path / f"ordem-{attempt}.duckdb"))
        try:
            for day in order:
                target.apply(paths[day], sw.SP_CITY, day, 1, f"sha-{day}")
            assert _table(target) == expected, order
        finally:
            target.close()


def test_a_file_without_the_layout_is_refused_and_nothing_changes(tmp_path):
    target = into.open_target(str(tmp_path / "dados.duckdb"))
    try:
        good = tmp_path / "bom.csv.gz"
        good.write_bytes(gzip.compress(sw.csv_bytes(sw.day_rows(D0, 5)), mtime=0))
        target.apply(good, sw.SP_CITY, D0, 1, "a")
        bad = tmp_path / "ruim.csv.gz"
        bad.write_bytes(gzip.compress("co_documento;outra\nx;y\n".encode(), mtime=0))
        with pytest.raises(into.UsageError, match="colunas esperadas"):
            target.apply(bad, sw.SP_CITY, D1, 1, "b")
        assert len(_table(target)) == 5 and len(_audit(target)) == 1
    finally:
        target.close()
