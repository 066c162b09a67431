"""Issue 11: downloads behind a real nginx (Debian's package) with X-Accel-Redirect —
the portal authorises and logs, nginx sends the bytes from the store (Range too) —
using the shipped deploy/nginx/vacina-d1.conf."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib

import httpx
import pytest

from tests.portal import world as w
from tests.portal.nginx import Nginx, available
from tests.portal.servers import start_portal

pytestmark = pytest.mark.skipif(
    not available() and not __import__("os").environ.get("CI"), reason="nginx não instalado (apt-get install nginx)"
)

DAY = dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    world = w.build(tmp, big_rows=30_000)
    env = {
        "VACINA_D1_HOME": str(world.settings.home),
        "VACINA_D1_CATALOG_URL": world.settings.resolved_catalog_url,
        "VACINA_D1_STORAGE_URL": world.settings.resolved_storage_url,
        "VACINA_D1_TOKEN_KEY": w.TOKEN_KEY,
        "VACINA_D1_ACCEL_REDIRECT_PREFIX": "/_arquivos/",
        "VACINA_D1_TRUSTED_PROXIES": "127.0.0.1",
    }
    portal = start_portal(tmp, env)
    proxy = Nginx(tmp / "nginx", portal.url.removeprefix("http://"), world.storage.root)
    yield world, portal, proxy
    proxy.stop()
    portal.stop()
    world.database.dispose()


def test_nginx_sends_the_file_the_portal_authorised_and_logged(behind_nginx):
    world, portal, proxy = behind_nginx
    published = world.file(w.DF, DAY)
    record = world.database.catalog.file(published.id)
    with httpx.Client(base_url=proxy.url, timeout=30) as http:
        url = f"/files/{published.id}/content"
        assert http.get(url).status_code == 401
        # The store itself is not reachable from outside.
        assert http.get(f"/_arquivos/{record.object_key}").status_code == 404
        headers = w.bearer(http, world, w.ANA_CPF)
        assert http.get(url, headers=headers).status_code == 403  # terms not accepted: nothing sent
        w.accept_terms(http, headers, w.DF)

        whole = http.get(url, headers={**headers, "X-Forwarded-For": "203.0.113.9"})
        assert whole.status_code == 200, whole.text
        assert hashlib.sha256(whole.content).hexdigest() == published.sha256 == record.sha256_stored
        assert whole.headers["content-type"] == "application/gzip"
        assert whole.headers["etag"] == f'"{published.sha256}"'
        assert whole.headers["content-disposition"].startswith("attachment")
        assert whole.headers["cache-control"] == "private, no-store"
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert "x-accel-redirect" not in whole.headers
        total = len(published.gz)

        # Resuming with the portal's ETag: nginx answers the range.
        part = http.get(url, headers={**headers, "Range": "bytes=1000-", "If-Range": whole.headers["etag"]})
        assert part.status_code == 206 and part.headers["content-range"] == f"bytes 1000-{total - 1}/{total}"
        assert part.content == published.gz[1000:]
        # The CSV itself still flows through the portal.
        csv = http.get(url, params={"format": "csv"}, headers={**headers, "Accept-Encoding": "identity"})
        assert csv.status_code == 200 and csv.content == gzip.decompress(published.gz)

        listed = http.get(f"/files/{published.id}/downloads", headers=headers)
        assert listed.status_code == 200, listed.text
        entries = listed.json()["items"]
    # One entry per transfer started, each with how it left and its range (the refused 403 logged nothing).
    assert [(e["delivery"], e["range"]) for e in reversed(entries)] == [
        ("x-accel", None),
        ("x-accel", f"bytes=1000-{total - 1}"),
        ("stream", None),
    ]
    assert "QueuePool" not in portal.log.read_text()
