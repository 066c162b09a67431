"""The download log: append-only in the database, hash-chained, tamper-evident, one
chain under concurrent appends; and the ``vacina-d1 admin`` commands."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa

from pipelines import cli
from portal_api import crud, download_log
from portal_api.models import DownloadLogEntry
from tests.portal import world as w


def _append(world, n: int, *, user_cpf: str = w.ANA_CPF) -> None:
    published = world.file(w.DF, dt.date(2026, 11, 21))
    with world.database.session() as session:
        user_id = crud.user_by_cpf(session, user_cpf).id
        credential_id = crud.credential_by_number(session, "3804/2024").id
    for i in range(n):
        download_log.append(
            world.database.engine,
            published_file_id=published.id,
            operation=w.DF,
            day=published.day,
            file_version=published.version,
            file_sha256=published.sha256,
            user_id=user_id,
            credential_id=credential_id,
            representation="csv.gz",
            delivery="stream",
            range_start=None if i % 2 else 100,
            range_end=None,
            client_address=f"10.0.0.{i}",
        )


def _verify_cli(world, monkeypatch, capsys) -> tuple[int, dict, str]:
    monkeypatch.setenv("VACINA_D1_HOME", str(world.settings.home))
    monkeypatch.setenv("VACINA_D1_CATALOG_URL", world.settings.resolved_catalog_url)
    code = cli.main(["admin", "verify-log"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1
    return code, json.loads(lines[0]), err


def _exercise_tampering(world, monkeypatch, capsys, *, drop_triggers: list[str]) -> None:
    engine = world.database.engine
    _append(world, 6)
    with world.database.session() as session, session.begin():
        crud.accept_terms(session, crud.user_by_cpf(session, w.ANA_CPF).id, crud.current_terms(session, w.DF))
    code, result, err = _verify_cli(world, monkeypatch, capsys)
    assert code == 0 and result["ok"] and result["entries"] == 6 and result["head_id"] == 6 and err == ""

    # Through any connection, the database itself refuses to change or remove an entry.
    for statement in ("UPDATE download_log SET client_address = '1.2.3.4' WHERE id = 3", "DELETE FROM download_log WHERE id = 3"):
        with pytest.raises(sa.exc.DBAPIError, match="somente inclusão"):
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
    with pytest.raises(sa.exc.DBAPIError, match="somente inclusão"):
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE terms_acceptance SET accepted_at = accepted_at")
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="somente inclusão"):
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE download_log")

    # An attacker with database access drops the trigger and edits entry 3.
    with engine.begin() as conn:
        for statement in drop_triggers:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("UPDATE download_log SET client_address = '203.0.113.9' WHERE id = 3")
    code, result, err = _verify_cli(world, monkeypatch, capsys)
    assert code != 0 and result["ok"] is False and result["first_bad_entry"] == 3
    assert err.count("\n") == 1 and "entrada 3" in err and "Traceback" not in err

    # ...recomputes entry 3's own hash: entry 4 no longer follows it.
    with engine.begin() as conn:
        row = dict(
            conn.execute(
                sa.select(*[getattr(DownloadLogEntry, n) for n in download_log.HASHED_FIELDS]).where(DownloadLogEntry.id == 3)
            )
            .one()
            ._mapping
        )
        conn.execute(sa.update(DownloadLogEntry).where(DownloadLogEntry.id == 3).values(entry_hash=download_log.entry_hash(row)))
    code, result, _ = _verify_cli(world, monkeypatch, capsys)
    assert code != 0 and result["first_bad_entry"] == 4

    # Removing the last entry (leaving the head alone) is noticed too.
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE download_log SET client_address = '10.0.0.2' WHERE id = 3")
    with engine.begin() as conn:
        row = dict(
            conn.execute(
                sa.select(*[getattr(DownloadLogEntry, n) for n in download_log.HASHED_FIELDS]).where(DownloadLogEntry.id == 3)
            )
            .one()
            ._mapping
        )
        conn.execute(sa.update(DownloadLogEntry).where(DownloadLogEntry.id == 3).values(entry_hash=download_log.entry_hash(row)))
    assert download_log.verify(engine).ok  # restored exactly: the chain checks out again
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM download_log WHERE id = 6")
    code, result, _ = _verify_cli(world, monkeypatch, capsys)
    assert code != 0 and result["first_bad_entry"] == 6 and result["entries"] == 5


def test_log_is_append_only_and_tampering_is_detected_on_sqlite(tmp_path, monkeypatch, capsys):
    world = w.build(tmp_path)
    try:
        _exercise_tampering(
            world,
            monkeypatch,
            capsys,
            drop_triggers=["DROP TRIGGER download_log_no_update", "DROP TRIGGER download_log_no_delete"],
        )
    finally:
        world.database.dispose()


@pytest.mark.postgres
def test_log_is_append_only_and_tampering_is_detected_on_postgres(tmp_path, postgres_url, monkeypatch, capsys):
    world = w.build(tmp_path, postgres_url)
    try:
        _exercise_tampering(world, monkeypatch, capsys, drop_triggers=["DROP TRIGGER download_log_append_only ON download_log"])
    finally:
        world.database.dispose()


def _concurrent_appends(world, threads: int, each: int) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker():
        try:
            barrier.wait()
            _append(world, each)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    result = download_log.verify(world.database.engine)
    assert result.ok and result.entries == threads * each == result.head_id
    with world.database.engine.connect() as conn:
        prev = conn.execute(sa.select(DownloadLogEntry.prev_hash)).scalars().all()
    assert len(set(prev)) == len(prev)  # no two entries follow the same one: no fork


def test_concurrent_appends_keep_one_chain_on_sqlite(tmp_path):
    world = w.build(tmp_path)
    try:
        _concurrent_appends(world, threads=4, each=10)
    finally:
        world.database.dispose()


@pytest.mark.postgres
def test_concurrent_appends_keep_one_chain_on_postgres(tmp_path, postgres_url):
    world = w.build(tmp_path, postgres_url)
    try:
        _concurrent_appends(world, threads=6, each=10)
    finally:
        world.database.dispose()


def test_canonical_serialisation_is_stable_across_naive_and_aware_times():
    fields = {name: None for name in download_log.HASHED_FIELDS}
    fields.update(id=1, day=dt.date(2026, 11, 21), prev_hash=download_log.GENESIS_HASH)
    aware = dict(fields, created_at=dt.datetime(2026, 11, 22, 12, 0, 0, 5, tzinfo=dt.timezone.utc))
    naive = dict(fields, created_at=dt.datetime(2026, 11, 22, 12, 0, 0, 5))  # what SQLite hands back
    brasilia = dict(fields, created_at=dt.datetime(2026, 11, 22, 9, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=-3))))
    assert download_log.entry_hash(aware) == download_log.entry_hash(naive) == download_log.entry_hash(brasilia)
    assert download_log.entry_hash(aware) != download_log.entry_hash(dict(aware, client_address="x"))


# -- the admin commands ------------------------------------------------------------------------


def _run(argv, capsys) -> tuple[int, list[dict], str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.strip().splitlines() if line], err


def test_admin_commands_print_one_json_line_and_fail_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VACINA_D1_HOME", str(tmp_path / "home"))
    for name in ("VACINA_D1_CATALOG_URL", "VACINA_D1_STORAGE_URL", "VACINA_D1_TOKEN_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = _run(
        ["admin", "create-user", "--cpf", "529.982.247-25", "--name", "Ana Souza", "--email", "ana@df.gov.br"], capsys
    )
    assert code == 0 and len(out) == 1 and out[0]["cpf"] == "***.982.247-**" and err == ""
    code, out, err = _run(
        [
            "admin",
            "create-credential",
            "--number",
            "3804/2024",
            "--cnes",
            "0010456",
            "--uf",
            "df",
            "--system",
            "SI-PNI",
            "--holder",
            w.ANA_CPF,
            "--operation",
            w.DF,
            "--operation",
            "imunizacao-total-df-530010",
        ],
        capsys,
    )
    assert code == 0 and out[0]["operations"] == ["imunizacao-total-df", "imunizacao-total-df-530010"] and out[0]["uf"] == "DF"
    code, out, _ = _run(["admin", "create-user", "--cpf", w.CARLA_CPF, "--name", "Carla", "--email", "carla@df.gov.br"], capsys)
    code, out, _ = _run(["admin", "grant", "--cpf", w.CARLA_CPF, "--credential", "3804/2024"], capsys)
    assert code == 0 and out[0]["credential"] == "3804/2024"
    code, out, _ = _run(["admin", "issue-token", "--cpf", w.CARLA_CPF, "--days", "7"], capsys)
    assert code == 0 and out[0]["token"].startswith("vd1p_") and out[0]["client_id"] == w.CARLA_CPF
    token_id, token = out[0]["token_id"], out[0]["token"]
    # The key was created once in the data home, private to its owner.
    key_file = tmp_path / "home" / "portal-token.key"
    assert key_file.stat().st_mode & 0o077 == 0
    code, out, _ = _run(["admin", "publish-terms", "--operation", w.DF, "--text", "Versão nova dos termos."], capsys)
    assert code == 0 and out[0]["version"] == 2
    code, out, _ = _run(["admin", "revoke-token", "--token-id", str(token_id)], capsys)
    assert code == 0 and out[0]["revoked_at"]
    code, out, _ = _run(["admin", "verify-log"], capsys)
    assert code == 0 and out[0]["ok"] and out[0]["entries"] == 0

    from portal_api.core.config import PortalSettings
    from portal_api.core.db import Database
    from portal_api.core.security import token_hash
    from portal_api.models import PersonalToken

    database = Database(PortalSettings().resolved_catalog_url)
    with database.session() as session:
        row = session.get(PersonalToken, token_id)
        assert row.token_hash == token_hash(PortalSettings().resolved_token_key(), token) and row.revoked_at is not None
    database.dispose()

    for argv, fragment in (
        (["admin", "create-user", "--cpf", "111.111.111-11", "--name", "X", "--email", "x@y.z"], "CPF inválido"),
        (["admin", "create-user", "--cpf", w.ANA_CPF, "--name", "X", "--email", "x@y.z"], "já existe"),
        (
            [
                "admin",
                "create-credential",
                "--number",
                "1/2024",
                "--cnes",
                "0010456",
                "--uf",
                "DF",
                "--system",
                "S",
                "--holder",
                w.ANA_CPF,
                "--operation",
                "imunizacao-total-sp",
            ],
            "não é da UF",
        ),
        (
            [
                "admin",
                "create-credential",
                "--number",
                "2/2024",
                "--cnes",
                "0010456",
                "--uf",
                "SP",
                "--system",
                "S",
                "--holder",
                w.ANA_CPF,
                "--operation",
                "imunizacao-total-sp-530010",
            ],
            "não é da UF SP",
        ),
        (["admin", "grant", "--cpf", w.BRUNO_CPF, "--credential", "3804/2024"], "nenhum usuário"),
        (["admin", "revoke-token", "--token-id", "999"], "não encontrado"),
        (["admin", "publish-terms", "--operation", w.DF, "--text", "Versão nova dos termos."], "igual ao da versão atual"),
        (["admin", "publish-terms", "--operation", w.DF, "--text-file", str(tmp_path / "nada.txt")], "nada.txt"),
    ):
        code, out, err = _run(argv, capsys)
        assert code != 0 and out == [] and err.count("\n") == 1 and fragment in err, (argv, err)
        assert "Traceback" not in err
