"""The portal API through FastAPI's TestClient: tokens, scope, listing, terms of use,
downloads and their log, problem documents, the OpenAPI document.

Two credentials of different states share the world: 3804/2024 (DF, imunizacao-total-df,
users Ana and Carla) and 3805/2024 (SP, imunizacao-total-sp-355030, user Bruno). The
state file imunizacao-total-sp is published too and belongs to nobody here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from portal_api import crud, download_log
from portal_api.main import create_app
from portal_api.models import AccessToken, PersonalToken, RefreshRequest, TermsAcceptance, TermsVersion
from tests.conftest import free_port
from tests.portal import world as w

PROBLEM = "application/problem+json"


@pytest.fixture
def world(tmp_path):
    # Dagster on a port nobody listens on: "Atualizar" must answer 503, never hang.
    world = w.build(tmp_path, dagster_graphql_url=f"http://127.0.0.1:{free_port()}/graphql", dagster_timeout_seconds=2)
    yield world
    world.database.dispose()


@pytest.fixture
def client(world):
    app = create_app(world.settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.services.database.dispose()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:vacina-d1:problema:")
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


# -- tokens -----------------------------------------------------------------------------------


def test_token_exchange_and_every_kind_of_401(world, client):
    ana_token = world.personal_tokens[w.ANA_CPF]
    ok = client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "529.982.247-25", "client_secret": ana_token}
    )
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    body = ok.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= world.settings.access_token_seconds
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/me", headers=headers).json()["user"]["name"] == "Ana Souza"

    # The personal token itself is not a bearer token, and nothing is stored in clear.
    problem(client.get("/me", headers={"Authorization": f"Bearer {ana_token}"}), 401)
    with world.database.session() as session:
        stored = (
            session.scalars(sa.select(PersonalToken.token_hash)).all() + session.scalars(sa.select(AccessToken.token_hash)).all()
        )
    assert ana_token not in stored and body["access_token"] not in stored and all(len(h) == 64 for h in stored)

    # Wrong secret, another user's CPF with Ana's token, wrong grant type, missing fields.
    for data in (
        {"grant_type": "client_credentials", "client_id": w.ANA_CPF, "client_secret": ana_token[:-1] + "x"},
        {"grant_type": "client_credentials", "client_id": w.BRUNO_CPF, "client_secret": ana_token},
        {"grant_type": "client_credentials", "client_id": "123", "client_secret": ana_token},
    ):
        failed = problem(client.post("/token", data=data), 401)
        assert failed["error"] == "invalid_client"
    assert (
        problem(client.post("/token", data={"grant_type": "password", "client_id": w.ANA_CPF, "client_secret": ana_token}), 400)[
            "error"
        ]
        == "unsupported_grant_type"
    )
    missing = problem(client.post("/token", data={"grant_type": "client_credentials"}), 422)
    assert {(e["field"], e["message"]) for e in missing["errors"]} == {
        ("client_id", "campo obrigatório"),
        ("client_secret", "campo obrigatório"),
    }

    # No token, a malformed header, a made-up token: 401 with WWW-Authenticate: Bearer.
    for request_headers in (
        {},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer vd1a_" + "A" * 43},
        {"Authorization": "Bearer"},
    ):
        response = client.get("/me", headers=request_headers)
        problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")

    # An expired bearer token.
    with world.database.session() as session, session.begin():
        session.execute(sa.update(AccessToken).values(expires_at=crud.utcnow() - dt.timedelta(seconds=1)))
    problem(client.get("/me", headers=headers), 401)


def test_revoking_the_personal_token_kills_its_bearer_tokens(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    other = w.bearer(client, world, w.BRUNO_CPF)
    assert client.get("/me", headers=headers).status_code == 200
    with world.database.session() as session, session.begin():
        crud.revoke_personal_token(session, world.personal_token_ids[w.ANA_CPF])
    problem(client.get("/me", headers=headers), 401)
    problem(
        client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": w.ANA_CPF, "client_secret": world.personal_tokens[w.ANA_CPF]},
        ),
        401,
    )
    assert client.get("/me", headers=other).status_code == 200  # Bruno is untouched

    # An expired personal token kills its bearer tokens too, even unexpired ones.
    with world.database.session() as session, session.begin():
        session.execute(
            sa.update(PersonalToken)
            .where(PersonalToken.id == world.personal_token_ids[w.BRUNO_CPF])
            .values(expires_at=crud.utcnow() - dt.timedelta(seconds=1))
        )
    problem(client.get("/me", headers=other), 401)


# -- credentials and listing -------------------------------------------------------------------


def test_me_and_operations_show_only_ones_own(world, client):
    ana = client.get("/me", headers=w.bearer(client, world, w.ANA_CPF)).json()
    assert ana["user"]["cpf"] == "***.982.247-**"
    assert [(c["number"], c["is_holder"], [o["operation"] for o in c["operations"]]) for c in ana["credentials"]] == [
        ("3804/2024", True, [w.DF])
    ]
    assert ana["credentials"][0]["operations"][0] | {} == {
        "operation": w.DF,
        "status": "aprovada",
        "uf": "DF",
        "ibge6": None,
        "territory": "Distrito Federal",
        "accessible": True,
    }
    bruno_headers = w.bearer(client, world, w.BRUNO_CPF)
    operations = client.get("/operations", headers=bruno_headers).json()
    assert operations == [
        {
            "operation": w.SP_CITY,
            "uf": "SP",
            "ibge6": "355030",
            "territory": "São Paulo/SP",
            "credential_number": "3805/2024",
            "terms_version": 1,
            "terms_accepted": False,
        }
    ]
    carla = client.get("/me", headers=w.bearer(client, world, w.CARLA_CPF)).json()
    assert [(c["number"], c["is_holder"]) for c in carla["credentials"]] == [("3804/2024", False)]


def test_listing_years_months_and_paginated_files_newest_first(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    assert client.get(f"/operations/{w.DF}/years", headers=headers).json() == {"operation": w.DF, "years": [2026, 2025]}
    assert client.get(f"/operations/{w.DF}/years/2026/months", headers=headers).json()["months"] == [11, 10]
    assert client.get(f"/operations/{w.DF}/years/2024/months", headers=headers).json()["months"] == []

    first = client.get(f"/operations/{w.DF}/years/2026/months/11/files", params={"page_size": 2}, headers=headers).json()
    assert (first["total"], first["page"], first["pages"], first["label"]) == (3, 1, 2, "1-2 de 3 itens")
    assert [item["day"] for item in first["items"]] == ["2026-11-21", "2026-11-20"]
    second = client.get(
        f"/operations/{w.DF}/years/2026/months/11/files", params={"page_size": 2, "page": 2}, headers=headers
    ).json()
    assert [item["day"] for item in second["items"]] == ["2026-11-19"] and second["label"] == "3-3 de 3 itens"
    beyond = client.get(f"/operations/{w.DF}/years/2026/months/11/files", params={"page": 9}, headers=headers).json()
    assert beyond["items"] == [] and beyond["total"] == 3 and beyond["label"] == "0 de 3 itens"

    published = world.file(w.DF, dt.date(2026, 11, 21))
    item = first["items"][0]
    assert item["id"] == published.id and item["name"] == "imunizacao-total-df_2026-11-21.csv.gz"
    assert item["sha256"] == published.sha256 and item["size"] == len(published.gz) and item["size_csv"] == len(published.csv)
    assert item["rows"] == 50 and item["is_current"] and item["downloads"] == [] and item["downloads_total"] == 0
    assert item["download_url"] == f"/files/{published.id}/content"

    # The page size is bounded; year and month too.
    problem(client.get(f"/operations/{w.DF}/years/2026/months/11/files", params={"page_size": 101}, headers=headers), 422)
    problem(client.get(f"/operations/{w.DF}/years/2026/months/13/files", headers=headers), 422)
    bad = problem(client.get("/operations/imunizacao-total-DF/years", headers=headers), 422)
    assert bad["errors"] == [{"location": "path", "field": "operation", "message": "formato inválido"}]


def test_listing_shows_the_newer_version_once_published(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    day = dt.date(2026, 11, 20)
    old = world.file(w.DF, day)
    new = w.publish_file(world, w.DF, day, rows=21, seed=1)
    items = client.get(f"/operations/{w.DF}/years/2026/months/11/files", headers=headers).json()["items"]
    listed = next(i for i in items if i["day"] == "2026-11-20")
    assert (listed["id"], listed["version"], listed["sha256"]) == (new.id, 2, new.sha256)
    # The older version stays addressable (audit), marked as not current.
    assert client.get(f"/files/{old.id}", headers=headers).json()["is_current"] is False


# -- isolation --------------------------------------------------------------------------------


def _every_request_on(file_id: int, operation: str):
    yield "GET", f"/operations/{operation}/years", None
    yield "GET", f"/operations/{operation}/years/2026/months", None
    yield "GET", f"/operations/{operation}/years/2026/months/11/files", None
    yield "GET", f"/operations/{operation}/terms", None
    yield "POST", f"/operations/{operation}/terms/acceptances", {"version": 1, "accepted": True}
    yield "GET", f"/files/{file_id}", None
    yield "GET", f"/files/{file_id}/downloads", None
    yield "GET", f"/files/{file_id}/content", None
    yield "GET", f"/files/{file_id}/content?format=csv", None
    yield "HEAD", f"/files/{file_id}/content", None
    yield "POST", f"/files/{file_id}/refresh", None


@pytest.mark.parametrize(
    "intruder, victim_operations",
    [(w.ANA_CPF, [w.SP_CITY, w.SP_STATE]), (w.BRUNO_CPF, [w.DF, w.SP_STATE]), (w.CARLA_CPF, [w.SP_CITY])],
    ids=["df-state-user-on-sp", "sp-city-user-on-df-and-sp-state", "second-df-user-on-sp"],
)
def test_nobody_reaches_files_outside_their_scope(world, client, intruder, victim_operations):
    # The owners download first, so there is a log to leak.
    for owner, operation in ((w.ANA_CPF, w.DF), (w.BRUNO_CPF, w.SP_CITY)):
        headers = w.bearer(client, world, owner)
        w.accept_terms(client, headers, operation)
        for published in world.files[operation]:
            assert client.get(f"/files/{published.id}/content", headers=headers).status_code == 200
    entries_before = download_log.verify(world.database.engine).entries

    headers = w.bearer(client, world, intruder)
    never = 2_000_000_000
    reference = problem(client.get(f"/files/{never}", headers=headers), 404)
    for operation in victim_operations:
        for published in world.files[operation]:
            for method, path, body in _every_request_on(published.id, operation):
                response = client.request(method, path, headers=headers, json=body)
                assert response.status_code == 404, (method, path, response.status_code)
                if method != "HEAD":
                    # Exactly what a file that does not exist gets: nothing to probe.
                    assert {k: v for k, v in problem(response, 404).items() if k != "instance"} == {
                        k: v for k, v in reference.items() if k != "instance"
                    }
                for secret in (published.sha256, "Ana Souza", "Bruno Lima", "982.247", "144.477"):
                    assert secret not in response.text
    me = client.get("/me", headers=headers).text + client.get("/operations", headers=headers).text
    for operation in victim_operations:
        assert f'"{operation}"' not in me
    # No download, no refresh request and no acceptance was recorded for the intruder.
    assert download_log.verify(world.database.engine).entries == entries_before
    with world.database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(RefreshRequest)) == 0
        users = {cpf: crud.user_by_cpf(session, cpf).id for cpf in (w.ANA_CPF, w.BRUNO_CPF, w.CARLA_CPF)}
        assert (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(TermsAcceptance)
                .join(TermsVersion, TermsVersion.id == TermsAcceptance.terms_version_id)
                .where(TermsAcceptance.user_id == users[intruder], TermsVersion.operation.in_(victim_operations))
            )
            == 0
        )


def test_a_suspended_operation_or_revoked_permission_closes_the_scope(world, client):
    from portal_api.models import CredentialOperation, Permission

    headers = w.bearer(client, world, w.CARLA_CPF)
    assert client.get(f"/operations/{w.DF}/years", headers=headers).status_code == 200
    with world.database.session() as session, session.begin():
        session.execute(
            sa.update(Permission)
            .where(Permission.user_id == crud.user_by_cpf(session, w.CARLA_CPF).id)
            .values(revoked_at=crud.utcnow())
        )
    problem(client.get(f"/operations/{w.DF}/years", headers=headers), 404)
    ana = w.bearer(client, world, w.ANA_CPF)
    with world.database.session() as session, session.begin():
        session.execute(sa.update(CredentialOperation).where(CredentialOperation.operation == w.DF).values(status="suspensa"))
    problem(client.get(f"/files/{world.files[w.DF][0].id}", headers=ana), 404)
    assert client.get("/me", headers=ana).json()["credentials"][0]["operations"][0]["accessible"] is False


# -- terms of use -----------------------------------------------------------------------------


def test_download_needs_the_current_terms_accepted(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    published = world.file(w.DF, dt.date(2026, 11, 21))
    url = f"/files/{published.id}/content"
    refused = problem(client.get(url, headers=headers), 403)
    assert refused["type"].endswith("termos-nao-aceitos") and refused["terms_version"] == 1
    assert client.head(url, headers=headers).status_code == 403
    assert download_log.verify(world.database.engine).entries == 0

    terms = client.get(f"/operations/{w.DF}/terms", headers=headers).json()
    assert terms["version"] == 1 and terms["accepted"] is False and "LGPD" in terms["text"]
    problem(client.post(f"/operations/{w.DF}/terms/acceptances", json={"version": 2, "accepted": True}, headers=headers), 409)
    problem(client.post(f"/operations/{w.DF}/terms/acceptances", json={"version": 1, "accepted": False}, headers=headers), 422)
    problem(
        client.post(f"/operations/{w.DF}/terms/acceptances", json={"version": 1, "accepted": True, "x": 1}, headers=headers), 422
    )
    accepted = client.post(f"/operations/{w.DF}/terms/acceptances", json={"version": 1, "accepted": True}, headers=headers)
    assert accepted.status_code == 201
    again = client.post(f"/operations/{w.DF}/terms/acceptances", json={"version": 1, "accepted": True}, headers=headers)
    assert again.status_code == 200 and again.json() == accepted.json()
    assert client.get(url, headers=headers).status_code == 200

    # Another user of the same credential accepts for themself.
    problem(client.get(url, headers=w.bearer(client, world, w.CARLA_CPF)), 403)

    # A new version: refused again until it is accepted.
    with world.database.session() as session, session.begin():
        crud.publish_terms(session, w.DF, "Termos de uso, versão 2: texto revisto.")
    assert problem(client.get(url, headers=headers), 403)["terms_version"] == 2
    assert client.get("/operations", headers=headers).json()[0] | {} == {
        "operation": w.DF,
        "uf": "DF",
        "ibge6": None,
        "territory": "Distrito Federal",
        "credential_number": "3804/2024",
        "terms_version": 2,
        "terms_accepted": False,
    }
    w.accept_terms(client, headers, w.DF)
    assert client.get(url, headers=headers).status_code == 200
    with world.database.session() as session:
        rows = session.execute(
            sa.text(
                "select v.version, a.accepted_at from terms_acceptance a join terms_version v on v.id = a.terms_version_id "
                "join portal_user u on u.id = a.user_id where u.cpf = :cpf order by v.version"
            ),
            {"cpf": w.ANA_CPF},
        ).all()
    assert [r[0] for r in rows] == [1, 2] and all(r[1] is not None for r in rows)


# -- downloads and their log --------------------------------------------------------------------


def test_download_is_the_published_file_byte_for_byte_and_is_logged_beside_it(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    w.accept_terms(client, headers, w.DF)
    published = world.file(w.DF, dt.date(2026, 11, 21))
    url = f"/files/{published.id}/content"
    etag = f'"{published.sha256}"'

    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.content == published.gz and hashlib.sha256(response.content).hexdigest() == published.sha256
    assert gzip.decompress(response.content) == published.csv
    assert response.headers["content-type"] == "application/gzip" and "content-encoding" not in response.headers
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"imunizacao-total-df_2026-11-21.csv.gz\"; filename*=UTF-8''imunizacao-total-df_2026-11-21.csv.gz"
    )
    assert response.headers["etag"] == etag and response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(published.gz)

    size = len(published.gz)
    part = client.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == published.gz[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert client.get(url, headers={**headers, "Range": "bytes=-10"}).content == published.gz[-10:]
    assert client.get(url, headers={**headers, "Range": "bytes=300-", "If-Range": etag}).content == published.gz[300:]
    # If-Range with another validator, a multi-range or a malformed Range: the whole file.
    for extra in (
        {"Range": "bytes=300-", "If-Range": '"outro"'},
        {"Range": "bytes=300-", "If-Range": "Sat, 21 Nov 2026 10:00:00 GMT"},
        {"Range": "bytes=0-1,5-6"},
        {"Range": "linhas=1-2"},
        {"Range": "bytes=9-2"},
    ):
        whole = client.get(url, headers={**headers, **extra})
        assert whole.status_code == 200 and whole.content == published.gz, extra
    logged = download_log.verify(world.database.engine).entries
    outside = client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    problem(outside, 416)
    assert outside.headers["content-range"] == f"bytes */{size}"
    head = client.head(url, headers=headers)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert head.headers["content-length"] == str(size)
    assert download_log.verify(world.database.engine).entries == logged  # 416 and HEAD sent nothing: not logged

    # The CSV itself: gzip-encoded when the client accepts it, decompressed otherwise.
    with client.stream("GET", url, params={"format": "csv"}, headers={**headers, "Accept-Encoding": "gzip"}) as encoded:
        raw = b"".join(encoded.iter_raw())
        assert encoded.headers["content-encoding"] == "gzip" and encoded.headers["content-type"].startswith("text/csv")
        assert 'filename="imunizacao-total-df_2026-11-21.csv"' in encoded.headers["content-disposition"]
    assert raw == published.gz
    plain = client.get(url, params={"format": "csv"}, headers={**headers, "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers and plain.content == published.csv
    assert plain.headers["etag"] == f'"{hashlib.sha256(published.csv).hexdigest()}"'

    # Every transfer is beside the file, newest first, with who and when.
    verification = download_log.verify(world.database.engine)
    assert verification.ok and verification.entries == 11
    listing = client.get(f"/operations/{w.DF}/years/2026/months/11/files", headers=headers).json()
    item = next(i for i in listing["items"] if i["id"] == published.id)
    assert item["downloads_total"] == 11 and len(item["downloads"]) == world.settings.log_entries_per_file
    newest = item["downloads"][0]
    assert (newest["user_name"], newest["user_cpf"], newest["representation"]) == ("Ana Souza", "***.982.247-**", "csv")
    when = dt.datetime.fromisoformat(newest["downloaded_at"])
    assert when.utcoffset() == dt.timedelta(hours=-3) and abs(when - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", newest["downloaded_at_local"])
    assert all(i["downloads_total"] == 0 for i in listing["items"] if i["id"] != published.id)
    page = client.get(f"/files/{published.id}/downloads", params={"page_size": 4, "page": 3}, headers=headers).json()
    assert (page["total"], page["label"], [d["id"] for d in page["items"]]) == (11, "9-11 de 11 itens", [3, 2, 1])
    assert page["items"][0]["range"] == f"bytes={size - 10}-{size - 1}"
    assert page["items"][1]["range"] == "bytes=100-199" and page["items"][2]["range"] is None


def test_download_refused_when_the_log_cannot_be_written(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    w.accept_terms(client, headers, w.DF)
    published = world.file(w.DF, dt.date(2026, 11, 21))
    with world.database.engine.begin() as conn:  # the database refuses every new log entry
        conn.exec_driver_sql(
            "CREATE TRIGGER test_log_down BEFORE INSERT ON download_log BEGIN SELECT RAISE(ABORT, 'disco cheio'); END"
        )
    refused = client.get(f"/files/{published.id}/content", headers=headers)
    body = problem(refused, 503)
    assert body["type"].endswith("registro-de-downloads-indisponivel") and published.gz[:10] not in refused.content
    assert "disco cheio" not in refused.text
    with world.database.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER test_log_down")
    assert client.get(f"/files/{published.id}/content", headers=headers).content == published.gz
    assert download_log.verify(world.database.engine).entries == 1


def test_refresh_with_dagster_down_is_a_503_and_recorded_as_failed(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    published = world.file(w.DF, dt.date(2026, 11, 21))
    body = problem(client.post(f"/files/{published.id}/refresh", headers=headers), 503)
    assert "Dagster" in body["detail"]
    with world.database.session() as session:
        row = session.scalars(sa.select(RefreshRequest)).one()
    assert (row.status, row.partition_key, row.run_id) == ("falhou", "2026-11-21|DF", None)


# -- problem documents ------------------------------------------------------------------------


def test_every_error_is_a_problem_document_in_portuguese(world, client):
    headers = w.bearer(client, world, w.ANA_CPF)
    assert problem(client.get("/nada", headers=headers), 404)["title"] == "Não encontrado"
    assert problem(client.delete("/me", headers=headers), 405)["title"] == "Método não permitido"
    assert problem(
        client.post(
            "/token",
            content=b"a=" + b"x" * (world.settings.max_body_bytes + 10),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        413,
    )

    def chunks():  # no Content-Length: counted as it streams in
        yield b"grant_type=client_credentials&client_id="
        for _ in range(world.settings.max_body_bytes // 1000 + 1):
            yield b"1" * 1000

    assert problem(client.post("/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}), 413)
    invalid = problem(client.get("/files/abc", headers=headers), 422)
    assert invalid["errors"] == [{"location": "path", "field": "file_id", "message": "deve ser um número inteiro"}]
    body = problem(
        client.post(
            f"/operations/{w.DF}/terms/acceptances", content=b"{", headers={**headers, "Content-Type": "application/json"}
        ),
        422,
    )
    assert body["errors"][0]["message"] == "JSON inválido"

    def explode(*args, **kwargs):
        raise RuntimeError("segredo interno /etc/passwd")

    client.app.state.services.database.catalog.years = explode
    crashed = client.get(f"/operations/{w.DF}/years", headers=headers)
    body = problem(crashed, 500)
    assert "segredo" not in crashed.text and "RuntimeError" not in crashed.text and body["title"] == "Erro interno"


def test_openapi_documents_every_response_with_its_schema(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "FieldError"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    open_paths = {("/token", "post"), ("/health", "get")}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["tags"] and operation["summary"] and operation["description"], (path, method)
            codes = set(operation["responses"])
            assert "500" in codes, (path, method)
            if (path, method) not in open_paths:
                assert {"401", "503"} <= codes, (path, method)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in codes, (path, method)
            if "{file_id}" in path or "{operation}" in path:
                assert "404" in codes, (path, method)
                # 403 only where the terms must be accepted first (the download and its HEAD).
                assert "403" not in codes or path.endswith("/content"), (path, method)
            for code, response in operation["responses"].items():
                assert response["description"], (path, method, code)
                if int(code) >= 400:
                    schema = response["content"]["application/problem+json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                    assert schema == ("ValidationProblem" if code == "422" else "Problem")
                elif int(code) < 300 and method != "head":
                    assert response.get("content"), (path, method, code)
    assert document["components"]["securitySchemes"]["token"]["flows"]["clientCredentials"]["tokenUrl"] == "/token"


# -- the same core on PostgreSQL -----------------------------------------------------------------


@pytest.mark.postgres
def test_scope_download_and_log_on_postgres(tmp_path, postgres_url):
    world = w.build(tmp_path, postgres_url)
    app = create_app(world.settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            ana, bruno = w.bearer(client, world, w.ANA_CPF), w.bearer(client, world, w.BRUNO_CPF)
            w.accept_terms(client, ana, w.DF)
            df_file = world.file(w.DF, dt.date(2026, 11, 21))
            response = client.get(f"/files/{df_file.id}/content", headers=ana)
            assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == df_file.sha256
            for path in (f"/files/{df_file.id}/content", f"/files/{df_file.id}/downloads", f"/operations/{w.DF}/years"):
                problem(client.get(path, headers=bruno), 404)
            item = client.get(f"/files/{df_file.id}", headers=ana).json()
            assert item["downloads_total"] == 1 and item["downloads"][0]["user_cpf"] == "***.982.247-**"
            assert download_log.verify(world.database.engine).ok
            problem(client.get("/files/2147483647", headers=ana), 404)
            problem(client.get("/files/2147483648", headers=ana), 422)
    finally:
        app.state.services.database.dispose()
        world.database.dispose()
