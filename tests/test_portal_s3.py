"""Downloads from S3: a presigned redirect made for each request, logged before it
leaves, against a real HTTP S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from portal_api import download_log
from portal_api.main import create_app
from serving import s3 as _s3  # noqa: F401 - the project's own module: a failed import fails the file
from tests.portal import world as w


@pytest.fixture
def s3_world(tmp_path, s3_bucket, monkeypatch):
    endpoint, bucket = s3_bucket
    monkeypatch.setenv("VACINA_D1_S3_ENDPOINT_URL", endpoint)
    world = w.build(tmp_path, storage=f"s3://{bucket}/publicados", presign_seconds=60)
    app = create_app(world.settings)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield world, client
    app.state.services.database.dispose()
    world.database.dispose()


def test_s3_download_is_a_per_request_presigned_redirect_logged_first(s3_world):
    world, client = s3_world
    headers = w.bearer(client, world, w.ANA_CPF)
    published = world.file(w.DF, dt.date(2026, 11, 21))
    url = f"/files/{published.id}/content"
    assert client.get(url, headers=headers).status_code == 403  # terms first, on S3 too
    w.accept_terms(client, headers, w.DF)

    first = client.get(url, headers=headers)
    assert first.status_code == 307 and first.headers["cache-control"] == "no-store"
    location = first.headers["location"]
    query = parse_qs(urlparse(location).query)
    assert query["X-Amz-Expires"] == ["60"] and "X-Amz-Signature" in query
    assert download_log.verify(world.database.engine).entries == 1  # logged before the redirect left

    with httpx.Client(timeout=30) as s3:
        fetched = s3.get(location)
        assert fetched.status_code == 200 and fetched.content == published.gz
        assert hashlib.sha256(fetched.content).hexdigest() == published.sha256
        assert fetched.headers["content-type"] == "application/gzip" and "content-encoding" not in fetched.headers
        assert 'filename="imunizacao-total-df_2026-11-21.csv.gz"' in fetched.headers["content-disposition"]

        # Resuming: the Range goes to the API (logged with it) and then to S3.
        time.sleep(1.1)
        again = client.get(url, headers={**headers, "Range": "bytes=1000-"})
        assert again.status_code == 307 and again.headers["location"] != location  # made for this request
        rest = s3.get(again.headers["location"], headers={"Range": "bytes=1000-"})
        assert rest.status_code == 206 and published.gz[:1000] + rest.content == published.gz

    page = client.get(f"/files/{published.id}/downloads", headers=headers).json()
    assert [(d["delivery"], d["range"]) for d in page["items"]] == [
        ("redirect", f"bytes=1000-{len(published.gz) - 1}"),
        ("redirect", None),
    ]
    # The CSV representation streams through the API from S3.
    plain = client.get(url, params={"format": "csv"}, headers={**headers, "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content == published.csv

    # Another credential's file is 404 on S3 as well, and no URL is handed out.
    other = client.get(f"/files/{world.file(w.SP_CITY, dt.date(2026, 11, 21)).id}/content", headers=headers)
    assert other.status_code == 404 and "location" not in other.headers


def test_s3_redirect_refused_when_the_log_cannot_be_written(s3_world):
    world, client = s3_world
    headers = w.bearer(client, world, w.ANA_CPF)
    w.accept_terms(client, headers, w.DF)
    with world.database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER test_log_down BEFORE INSERT ON download_log BEGIN SELECT RAISE(ABORT, 'x'); END")
    refused = client.get(f"/files/{world.file(w.DF, dt.date(2026, 11, 21)).id}/content", headers=headers)
    assert refused.status_code == 503 and "location" not in refused.headers
    assert refused.headers["content-type"].startswith("application/problem+json")
