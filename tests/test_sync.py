"""``vacina-d1 sync`` against the real ``vacina-d1 serve`` on loopback (its own
process), through a real misbehaving HTTP proxy where the network is the point:
first sync of several days and operations, a re-run that only lists, a download
cut mid-way and resumed to the right bytes, a corrupted transfer refused and
retried, 429 with Retry-After, terms not accepted, a revoked token, a path with
spaces and accents, and the S3 store's presigned redirect."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest

from portal_api import crud
from tests.sync import world as sw
from tests.sync.proxy import Fault, FaultyPortalProxy

pytestmark = pytest.mark.slow  # the portal and the client in processes of their own

ALL = ["--operation", sw.SP_STATE, "--operation", sw.SP_CITY, "--operation", sw.CAMPINAS]
SINCE = ["--since", "2026-11-01"]
SANTOS = "imunizacao-total-sp-354850"  # the terms test's own operation: it publishes new terms and a new version


@pytest.fixture(scope="module")
def shared_portal(tmp_path_factory):
    """One published world and one ``vacina-d1 serve`` for the module. Tests only read
    it, or change what is theirs alone: their own user (terms, tokens), their own
    operation, their own folders; each gets its own fault proxy in front."""
    tmp = tmp_path_factory.mktemp("portal")
    world = sw.build(tmp, big_day_rows=6000, more_municipalities=("354850",))
    server = sw.serve(tmp, world)
    yield world, server
    server.stop()
    world.world.database.dispose()


@pytest.fixture
def portal(shared_portal):
    world, server = shared_portal
    with FaultyPortalProxy(server.url) as proxy:
        yield world, server, proxy


def _downloads(proxy: FaultyPortalProxy) -> list:
    return [s for s in proxy.seen if re.match(r"^/files/\d+/content", s.path)]


def _assert_folder_matches(world: sw.SyncWorld, dest, operations) -> None:
    for (operation, day), gz in world.gz.items():
        if operation not in operations:
            continue
        path = dest / operation / f"{operation}_{day}.csv.gz"
        assert path.read_bytes() == gz, path
    assert not list((dest / ".vacina-d1" / "parcial").glob("*.part"))


def test_first_sync_of_several_days_and_operations_then_a_rerun_only_lists(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "dados"
    first = sw.sync(proxy.url, dest, *ALL, *SINCE, "--accept-terms", sw=world)
    assert first.code == 0, first.stderr
    summary = first.summary
    assert summary["status"] == "atualizado" and summary["downloaded"] == 12 and summary["failed"] == []
    assert summary["per_operation"][sw.SP_CITY] == {"listados": 4, "novos_ou_alterados": 4, "baixados": 4, "falhas": 0}
    _assert_folder_matches(world, dest, [sw.SP_STATE, sw.SP_CITY, sw.CAMPINAS])
    assert "SHA-256 conferido" in first.stderr
    assert len(_downloads(proxy)) == 12

    proxy.clear()
    again = sw.sync(proxy.url, dest, *ALL, *SINCE, sw=world)
    assert again.code == 0, again.stderr
    assert again.summary["downloaded"] == 0 and again.summary["unchanged"] == 12
    paths = [s.path for s in proxy.seen]
    assert paths and all(p == "/token" or p.startswith("/operations/") for p in paths), paths
    assert not any(p.endswith("/terms") for p in paths)  # nothing to download, nothing more asked
    assert again.summary["requests"] == len(paths)

    # --since: the days before it are not even listed.
    later = sw.sync(proxy.url, tmp_path / "outra", "--operation", sw.SP_CITY, "--since", "2026-11-20", sw=world)
    assert later.code == 0 and later.summary["listed"] == 2 and later.summary["downloaded"] == 2


def test_a_download_cut_mid_way_resumes_with_range_to_the_right_bytes(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "dados"
    big_day = sw.DAYS[-1]
    big = world.gz[(sw.SP_CITY, big_day)]
    file_id = world.ids[(sw.SP_CITY, big_day)]
    assert len(big) > 300_000
    cut = len(big) // 3

    # Run 1: the connection drops after a third and the run has no retry left: partial, exit 1.
    proxy.add(Fault(rf"^/files/{file_id}/content", "drop", times=1, drop_after=cut))
    first = sw.sync(proxy.url, dest, "--operation", sw.SP_CITY, *SINCE, "--accept-terms", "--retries", "1", sw=world)
    assert first.code == 1, first.stderr
    assert first.summary["status"] == "parcial" and first.summary["failed"][0]["dia"] == big_day.isoformat()
    part = dest / ".vacina-d1" / "parcial" / f"{sw.SP_CITY}_{big_day}.csv.gz.part"
    assert part.read_bytes() == big[:cut]
    assert not (dest / sw.SP_CITY / f"{sw.SP_CITY}_{big_day}.csv.gz").exists()  # never a half file in place

    # Run 2 asks for the rest only, with If-Range, and ends with the published bytes.
    proxy.clear()
    second = sw.sync(proxy.url, dest, "--operation", sw.SP_CITY, *SINCE, sw=world)
    assert second.code == 0, second.stderr
    gets = _downloads(proxy)
    assert [(g.range, g.status) for g in gets] == [(f"bytes={cut}-", 206)]
    assert (dest / sw.SP_CITY / f"{sw.SP_CITY}_{big_day}.csv.gz").read_bytes() == big
    assert not part.exists()

    # Within one run: cut twice, resumed twice, one file, the right bytes.
    proxy.clear()
    dest2 = tmp_path / "dados2"
    proxy.add(Fault(rf"^/files/{file_id}/content", "drop", times=2, drop_after=100_000))
    third = sw.sync(proxy.url, dest2, "--operation", sw.SP_CITY, *SINCE, sw=world)
    assert third.code == 0, third.stderr
    gets = [g for g in _downloads(proxy) if g.path.startswith(f"/files/{file_id}/")]
    assert [g.range for g in gets] == [None, "bytes=100000-", "bytes=200000-"]
    assert (dest2 / sw.SP_CITY / f"{sw.SP_CITY}_{big_day}.csv.gz").read_bytes() == big
    assert "conexão interrompida" in third.stderr


def test_a_corrupted_transfer_is_refused_and_fetched_again(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "dados"
    day = sw.DAYS[1]
    file_id = world.ids[(sw.CAMPINAS, day)]
    proxy.add(Fault(rf"^/files/{file_id}/content", "corrupt", times=1))
    done = sw.sync(proxy.url, dest, "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", sw=world)
    assert done.code == 0, done.stderr
    assert "não confere com o catálogo" in done.stderr
    gets = [g for g in _downloads(proxy) if g.path.startswith(f"/files/{file_id}/")]
    assert [(g.range, g.status) for g in gets] == [(None, 200), (None, 200)]  # the bad copy discarded whole
    _assert_folder_matches(world, dest, [sw.CAMPINAS])

    # Corrupted on every attempt: refused, nothing in place, exit 1, the others fine.
    proxy.clear()
    other = tmp_path / "dados2"
    proxy.add(Fault(rf"^/files/{file_id}/content", "corrupt", times=10))
    failed = sw.sync(proxy.url, other, "--operation", sw.CAMPINAS, *SINCE, "--retries", "3", sw=world)
    assert failed.code == 1
    assert failed.summary["downloaded"] == 3 and len(failed.summary["failed"]) == 1
    assert not (other / sw.CAMPINAS / f"{sw.CAMPINAS}_{day}.csv.gz").exists()


def test_429_with_retry_after_is_honoured(portal, tmp_path):
    world, server, proxy = portal
    file_id = world.ids[(sw.CAMPINAS, sw.DAYS[0])]
    proxy.add(Fault(rf"^/files/{file_id}/content", "throttle", times=1, retry_after=2))
    proxy.add(Fault(r"^/operations/[^/]+/years$", "throttle", times=1, retry_after=1))
    done = sw.sync(proxy.url, tmp_path / "dados", "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", sw=world)
    assert done.code == 0, done.stderr
    gets = [s for s in proxy.seen if s.path.startswith(f"/files/{file_id}/")]
    assert [g.status for g in gets] == [429, 200]
    assert gets[1].at - gets[0].at >= 2.0
    years = [s for s in proxy.seen if s.path.endswith("/years")]
    assert [y.status for y in years] == [429, 200] and years[1].at - years[0].at >= 1.0
    assert "HTTP 429; nova tentativa em 2.0 s" in done.stderr


def test_terms_not_accepted_stop_the_run_with_the_portals_message(portal, tmp_path):
    world, server, proxy = portal
    cpf = world.new_user()
    dest = tmp_path / "dados"
    refused = sw.sync(proxy.url, dest, "--operation", SANTOS, *SINCE, sw=world, cpf=cpf)
    assert refused.code == 2
    assert "versão 1" in refused.stderr and "--accept-terms" in refused.stderr
    assert f"Termos de uso de {SANTOS}, versão 1:" in refused.stderr  # the text is shown
    assert refused.summary["status"] == "erro" and refused.summary["kind"] == "TermsNotAccepted"
    assert not _downloads(proxy) and not (dest / SANTOS).exists()
    with world.world.database.session() as session:
        terms = crud.current_terms(session, SANTOS)
        user = crud.user_by_cpf(session, cpf)
        assert crud.acceptance(session, user.id, terms) is None

    accepted = sw.sync(proxy.url, dest, "--operation", SANTOS, *SINCE, "--accept-terms", sw=world, cpf=cpf)
    assert accepted.code == 0, accepted.stderr
    assert "(versão 1) aceitos" in accepted.stderr
    with world.world.database.session() as session:
        terms = crud.current_terms(session, SANTOS)
        assert crud.acceptance(session, crud.user_by_cpf(session, cpf).id, terms) is not None

    # A new version of the terms, and a new day: the run stops again until accepted.
    with world.world.database.session() as session, session.begin():
        crud.publish_terms(session, SANTOS, "Termos de uso, versão 2: novas regras de guarda dos dados.")
    world.publish(sw.DAYS[0], {SANTOS: sw.day_rows(sw.DAYS[0], 31, "354850")})
    again = sw.sync(proxy.url, dest, "--operation", SANTOS, *SINCE, sw=world, cpf=cpf)
    assert again.code == 2 and "versão 2" in again.stderr and "novas regras" in again.stderr


def test_a_revoked_token_is_an_authorization_error(portal, tmp_path):
    world, server, proxy = portal
    cpf = world.new_user()  # its token revoked here, nobody else's
    with world.world.database.session() as session, session.begin():
        crud.revoke_personal_token(session, world.world.personal_token_ids[cpf])
    done = sw.sync(proxy.url, tmp_path / "dados", "--operation", sw.SP_CITY, sw=world, cpf=cpf)
    assert done.code == 2
    assert "recusou o token pessoal" in done.stderr and "revogado" in done.stderr
    assert done.summary["kind"] == "AuthError"
    assert [s.path for s in proxy.seen] == ["/token"]

    wrong = sw.sync(proxy.url, tmp_path / "dados", "--operation", sw.SP_CITY, sw=world, token="vd1p_nao-e-um-token")
    assert wrong.code == 2

    outside = sw.sync(proxy.url, tmp_path / "dados", "--operation", "imunizacao-total-rj", sw=world, cpf=sw.OTHER_CPF)
    assert outside.code == 2 and outside.summary["kind"] == "OutOfScope"


def test_usage_errors_exit_2_with_one_pt_br_line(tmp_path):
    bad = sw.sync("http://127.0.0.1:9", tmp_path / "d", "--operation", "imunizacao-total-xx-1", token="x", cpf="1")
    assert bad.code == 2 and "operação inválida" in bad.stderr
    none = sw.sync("http://127.0.0.1:9", tmp_path / "d", token="x", cpf="1")
    assert none.code == 2 and "--operation" in none.stderr
    # The portal unreachable: retried, then exit 1 (try again later) with the JSON line.
    from tests.conftest import free_port

    down = sw.sync(
        f"http://127.0.0.1:{free_port()}", tmp_path / "d", "--operation", sw.SP_CITY, "--retries", "3", token="x", cpf="1"
    )
    assert down.code == 1 and down.summary["status"] == "parcial" and "falha de rede" in down.stderr
    assert down.stderr.count("nova tentativa") == 2


def test_a_path_with_spaces_and_accents(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "Secretaria de Saúde" / "dados de vacinação"
    database = tmp_path / "banco ç ã" / "vacinação.duckdb"
    done = sw.sync(server.url, dest, "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", "--into", str(database), sw=world)
    assert done.code == 0, done.stderr
    _assert_folder_matches(world, dest, [sw.CAMPINAS])
    state = json.loads((dest / ".vacina-d1" / "estado.json").read_text(encoding="utf-8"))
    assert set(state["arquivos"]) == {f"{sw.CAMPINAS}/{d}" for d in sw.DAYS}
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from vacina_d1_registros").fetchone()[0] == 4 * 15


def test_the_s3_store_presigned_redirect_is_followed(tmp_path, s3_bucket, monkeypatch):
    endpoint, bucket = s3_bucket
    monkeypatch.setenv("VACINA_D1_S3_ENDPOINT_URL", endpoint)
    # Two days are enough here (the big one cut and resumed, the other republished): half the uploads and downloads.
    world = sw.build(tmp_path, storage=f"s3://{bucket}/publicados", big_day_rows=4000, days=sw.DAYS[2:])
    # The presigned URLs the portal hands out point at a misbehaving proxy in front of S3.
    storage_proxy = FaultyPortalProxy(endpoint).__enter__()
    server = sw.serve(
        tmp_path,
        world,
        {
            "VACINA_D1_S3_ENDPOINT_URL": storage_proxy.url,
            "AWS_ACCESS_KEY_ID": "teste",
            "AWS_SECRET_ACCESS_KEY": "teste",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    try:
        with FaultyPortalProxy(server.url) as proxy:
            dest = tmp_path / "dados"
            big_day = sw.DAYS[-1]
            big = world.gz[(sw.SP_CITY, big_day)]
            storage_proxy.add(Fault(rf"{sw.SP_CITY}_{big_day}\.csv\.gz", "drop", times=1, drop_after=len(big) // 2))
            done = sw.sync(proxy.url, dest, *ALL, *SINCE, "--accept-terms", sw=world)
            assert done.code == 0, done.stderr
            assert {g.status for g in _downloads(proxy)} == {307}
            _assert_folder_matches(world, dest, [sw.SP_STATE, sw.SP_CITY, sw.CAMPINAS])
            # The cut S3 transfer resumed through a fresh redirect, asking the storage for the rest only.
            from_storage = [
                (s.range, s.status) for s in storage_proxy.seen if s.method == "GET" and f"{sw.SP_CITY}_{big_day}" in s.path
            ]
            assert from_storage == [(None, 200), (f"bytes={len(big) // 2}-", 206)]
            assert storage_proxy.seen and not any(s.authorization for s in storage_proxy.seen if "X-Amz-Signature" in s.path)

            proxy.clear()
            again = sw.sync(proxy.url, dest, *ALL, *SINCE, sw=world)
            assert again.code == 0 and again.summary["downloaded"] == 0 and not _downloads(proxy)

            # A republished day arrives through the redirect too, replacing the old version atomically.
            world.publish(sw.DAYS[2], {sw.SP_CITY: sw.day_rows(sw.DAYS[2], 33)})
            third = sw.sync(proxy.url, dest, "--operation", sw.SP_CITY, *SINCE, sw=world)
            assert third.code == 0 and third.summary["downloaded"] == 1
            _assert_folder_matches(world, dest, [sw.SP_CITY])
    finally:
        server.stop()
        storage_proxy.__exit__(None, None, None)
        world.world.database.dispose()


def test_state_is_written_atomically_and_describes_the_folder(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "dados"
    done = sw.sync(proxy.url, dest, "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", sw=world)
    assert done.code == 0
    state = json.loads((dest / ".vacina-d1" / "estado.json").read_text(encoding="utf-8"))
    for day in sw.DAYS:
        entry = state["arquivos"][f"{sw.CAMPINAS}/{day}"]
        assert entry["sha256"] == hashlib.sha256(world.gz[(sw.CAMPINAS, day)]).hexdigest()
        assert entry["caminho"] == f"{sw.CAMPINAS}/{sw.CAMPINAS}_{day}.csv.gz"
    assert not [p for p in (dest / ".vacina-d1").iterdir() if p.name.endswith(".tmp")]
    # A file removed by hand is fetched again; the others are not.
    (dest / sw.CAMPINAS / f"{sw.CAMPINAS}_{sw.DAYS[0]}.csv.gz").unlink()
    again = sw.sync(proxy.url, dest, "--operation", sw.CAMPINAS, *SINCE, sw=world)
    assert again.summary["downloaded"] == 1 and again.summary["unchanged"] == 3
    assert dt.date.fromisoformat(again.summary["since"]) == dt.date(2026, 11, 1)


def test_one_sync_per_folder_at_a_time(portal, tmp_path):
    world, server, proxy = portal
    dest = tmp_path / "dados"
    from vacina_d1_client.state import FolderLock

    with FolderLock(dest):  # a run already going (here: this process)
        busy = sw.sync(proxy.url, dest, "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", sw=world)
    assert busy.code == 1 and "outra execução" in busy.stderr and busy.summary["kind"] == "FolderBusy"
    assert not _downloads(proxy)
    done = sw.sync(proxy.url, dest, "--operation", sw.CAMPINAS, *SINCE, "--accept-terms", sw=world)
    assert done.code == 0, done.stderr
