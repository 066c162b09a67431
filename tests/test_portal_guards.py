"""Issue 11: the portal under load, attack and faults — over real HTTP where it matters.

* two downloads at once with a ONE-connection pool (a request never holds two);
* a flipped byte in a stored object: the stream is cut short (never a complete wrong
  body), an incident is recorded, the alert raised, and the file answers 503 until
  republished; republishing the day rewrites it;
* POST /token and the holder-transfer claim are rate-limited in the database;
* every operation that needs a caller answers 401 to an anonymous request first,
  whatever its path parameters or body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from portal_api.main import create_app
from serving.catalog import FileIncident
from serving.storage import LocalStorage
from tests.portal import world as w
from tests.portal.servers import start_portal

DAY = dt.date(2026, 11, 21)


def _env(world: w.World, **extra: str) -> dict[str, str]:
    return {
        "VACINA_D1_HOME": str(world.settings.home),
        "VACINA_D1_CATALOG_URL": world.settings.resolved_catalog_url,
        "VACINA_D1_STORAGE_URL": world.settings.resolved_storage_url,
        "VACINA_D1_TOKEN_KEY": w.TOKEN_KEY,
        **extra,
    }


@pytest.fixture(scope="module")
def one_connection(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guards")
    world = w.build(tmp, big_rows=40_000)
    server = start_portal(
        tmp, _env(world, VACINA_D1_DB_POOL_SIZE="1", VACINA_D1_DB_MAX_OVERFLOW="0", VACINA_D1_DB_POOL_TIMEOUT_SECONDS="5")
    )
    yield world, server
    server.stop()
    world.database.dispose()


def test_two_concurrent_downloads_with_a_one_connection_pool(one_connection):
    world, server = one_connection
    published = world.file(w.DF, DAY)
    with httpx.Client(base_url=server.url, timeout=30) as first, httpx.Client(base_url=server.url, timeout=30) as second:
        ana, carla = w.bearer(first, world, w.ANA_CPF), w.bearer(second, world, w.CARLA_CPF)
        w.accept_terms(first, ana, w.DF)
        w.accept_terms(second, carla, w.DF)
        url = f"/files/{published.id}/content"
        received = bytearray()
        with first.stream("GET", url, headers=ana) as streaming:
            assert streaming.status_code == 200
            chunks = streaming.iter_raw(16 * 1024)
            received += next(chunks)
            # Ana's download is mid-body: Carla's whole download, and a listing, go through meanwhile.
            other = second.get(url, headers=carla)
            assert other.status_code == 200, other.text
            assert hashlib.sha256(other.content).hexdigest() == published.sha256
            assert second.get(f"/operations/{w.DF}/years", headers=carla).status_code == 200
            for chunk in chunks:
                received += chunk
        assert len(received) == len(published.gz) > 64 * 1024
        assert hashlib.sha256(received).hexdigest() == published.sha256
    assert "QueuePool limit" not in server.log.read_text()


def _flip_byte(world: w.World, object_key: str) -> None:
    assert isinstance(world.storage, LocalStorage)
    path = world.storage.path_of(object_key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_never_served_whole_and_makes_the_file_unavailable(one_connection):
    world, server = one_connection
    published = world.file(w.DF, dt.date(2026, 11, 20))
    record = world.database.catalog.file(published.id)
    _flip_byte(world, record.object_key)
    alerts = world.settings.home / "alertas.jsonl"
    before = alerts.read_text().count("\n") if alerts.exists() else 0
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ana = w.bearer(http, world, w.ANA_CPF)
        w.accept_terms(http, ana, w.DF)
        url = f"/files/{published.id}/content"
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):  # cut short: fewer bytes than Content-Length
            with http.stream("GET", url, headers=ana) as damaged:
                assert damaged.status_code == 200
                for chunk in damaged.iter_raw():
                    received += chunk
        assert len(received) < len(published.gz)
        for attempt in ({}, {"Range": "bytes=10-"}), ({"format": "csv"}, {}):
            params, extra = attempt
            again = http.get(url, params=params, headers={**ana, **extra})
            assert again.status_code == 503, again.text
            assert again.json()["type"].endswith("arquivo-danificado") and "republicado" in again.json()["detail"]
    with world.database.session() as session:
        incident = session.scalars(sa.select(FileIncident).where(FileIncident.published_file_id == published.id)).one()
    assert (incident.detected_by, incident.expected_sha256) == ("portal", published.sha256)
    assert incident.found_sha256 != published.sha256
    lines = alerts.read_text().splitlines()[before:]
    assert len(lines) == 1 and json.loads(lines[0])["arquivo"] == published.id
    assert json.loads(lines[0])["tipo"] == "arquivo danificado"


@pytest.fixture
def client(tmp_path):
    world = w.build(tmp_path, token_attempts_per_minute=3, holder_claims_per_day=2)
    app = create_app(world.settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield world, test_client
    app.state.services.database.dispose()
    world.database.dispose()


def test_post_token_is_rate_limited_per_client_and_per_address(client, caplog):
    world, http = client
    bad = {"grant_type": "client_credentials", "client_id": w.ANA_CPF, "client_secret": "vd1p_errado"}
    assert [http.post("/token", data=bad).status_code for _ in range(3)] == [401, 401, 401]
    limited = http.post("/token", data=bad)
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["content-type"].startswith("application/problem+json")
    # Even the right secret waits now (the client is limited), and so does another client of the same address.
    right = {**bad, "client_secret": world.personal_tokens[w.ANA_CPF]}
    assert http.post("/token", data=right).status_code == 429
    other = {**bad, "client_id": w.BRUNO_CPF, "client_secret": world.personal_tokens[w.BRUNO_CPF]}
    assert http.post("/token", data=other).status_code == 429
    assert "credenciais inválidas" in caplog.text and "***.982.247-**" in caplog.text and w.ANA_CPF not in caplog.text


def test_holder_claims_are_limited_per_user(client):
    world, http = client
    carla = w.bearer(http, world, w.CARLA_CPF)
    claim = {"numero_credencial": "3805/2024", "justificativa": "assumi a secretaria"}
    assert [http.post("/credenciais/titularidade", json=claim, headers=carla).status_code for _ in range(2)] == [202, 202]
    limited = http.post("/credenciais/titularidade", json=claim, headers=carla)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 3600
    # Another user is not limited by Carla's claims.
    bruno = w.bearer(http, world, w.BRUNO_CPF)
    assert http.post("/credenciais/titularidade", json=claim, headers=bruno).status_code == 202


def test_every_operation_needing_a_caller_answers_401_first(client):
    world, http = client
    document = http.get("/openapi.json").json()
    open_operations = {("/token", "post"), ("/health", "get")}
    checked = 0
    for path, methods in document["paths"].items():
        for method, _operation in methods.items():
            if (path, method) in open_operations:
                continue
            # Parameters that would be refused (not a number, not a CNES) and a body that is not JSON.
            concrete = path
            for name in (
                "solicitacao_id",
                "file_id",
                "pedido_id",
                "evidencia_id",
                "cnes",
                "operation",
                "codigo",
                "year",
                "month",
            ):
                concrete = concrete.replace("{" + name + "}", "x-y")
            for headers in ({}, {"Authorization": "Bearer vd1a_nao-existe"}, {"Authorization": "Basic abc"}):
                response = http.request(
                    method.upper(), concrete, content=b"{nao e json", headers={**headers, "Content-Type": "application/json"}
                )
                assert response.status_code == 401, (method, concrete, headers, response.status_code, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
            checked += 1
    assert checked > 30
    # With a valid token the same malformed request gets its real answer (not 401).
    headers = w.bearer(http, world, w.ANA_CPF)
    assert http.delete("/solicitacoes/1/estabelecimentos/abc", headers=headers).status_code == 404


# -- request heads over the limit, with several workers ---------------------------------------------


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workers")
    world = w.build(tmp)
    server = start_portal(tmp, _env(world, VACINA_D1_MAX_HEADER_BYTES="16384"), extra_args=("--workers", "2"))
    yield world, server
    server.stop()
    world.database.dispose()


def _raw(url: str, head: bytes, *, body_bytes: int = 0, chunk: int = 256 * 1024) -> tuple[bytes, int, float]:
    """Send a request head of any size over a plain socket (then the rest of a huge
    header, ``body_bytes``, as long as the server reads); the answer, bytes sent, seconds."""
    import socket
    import time as clock

    host, port = url.removeprefix("http://").split(":")
    started = clock.monotonic()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        try:
            sock.sendall(head)
            sent += len(head)
            filler = b"a" * chunk
            while sent < body_bytes:
                sock.sendall(filler)
                sent += len(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent, clock.monotonic() - started


def test_a_64_kb_header_gets_431_and_a_64_mb_one_is_not_read_whole(two_workers):
    world, server = two_workers
    big = b"GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Grande: " + b"b" * 64 * 1024 + b"\r\n\r\n"
    answer, _, _ = _raw(server.url, big)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"application/problem+json" in answer and "cabeçalhos" in answer.decode()
    # 64 MB of one header: refused after the first 16 KB; the server stops reading and closes.
    answer, sent, seconds = _raw(server.url, b"GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Enorme: ", body_bytes=64 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 64 * 1024 * 1024 and seconds < 15, (sent, seconds)
    # A head under the limit is served (401: no token), by either worker, and so are normal requests.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/me", headers={"X-Medio": "c" * 12_000}).status_code == 401
        headers = w.bearer(http, world, w.ANA_CPF)
        assert all(http.get("/me", headers=headers).status_code == 200 for _ in range(20))
    log = server.log.read_text()
    assert log.count("cabeçalhos maiores que 16384 bytes") == 2
    assert "Started parent process" in log or log.count("Application startup complete") >= 2


def test_many_concurrent_listings_never_wait_on_a_small_pool(tmp_path):
    """40 client threads against a two-connection pool: no request may time out on the
    pool (the session gives its connection back in the route's own thread, and there are
    no more worker threads than connections)."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    world = w.build(tmp_path, db_pool_size=2, db_max_overflow=0, db_pool_timeout_seconds=3)
    app = create_app(world.settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            headers = w.bearer(http, world, w.ANA_CPF)
            published = world.file(w.DF, DAY)
            paths = [
                f"/operations/{w.DF}/years",
                f"/operations/{w.DF}/years/2026/months",
                f"/operations/{w.DF}/years/2026/months/11/files",
                f"/files/{published.id}",
                f"/files/{published.id}/downloads",
            ]
            with ThreadPoolExecutor(40) as pool:
                statuses = Counter(pool.map(lambda n: http.get(paths[n % len(paths)], headers=headers).status_code, range(300)))
        assert statuses == Counter({200: 300})
    finally:
        app.state.services.database.dispose()
        world.database.dispose()
