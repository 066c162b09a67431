"""/metrics behind several server processes: with PROMETHEUS_MULTIPROC_DIR every uvicorn
worker writes its counters there and whichever answers the scrape reports the sum."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.portal.servers import BIN, Server, _env

pytestmark = pytest.mark.slow  # two uvicorn processes, each migrating and building the app


def _pids(multiproc: Path) -> set[str]:
    return {path.name.split("_")[-1] for path in multiproc.glob("counter_*.db")}


def test_two_workers_report_the_sum_of_their_requests(tmp_path):
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    port = free_port()
    home = tmp_path / "var"
    server = Server(
        [
            str(BIN / "uvicorn"),
            "--factory",
            "portal_api.main:create_app",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        _env({"VACINA_D1_HOME": str(home), "VACINA_D1_TOKEN_KEY": "k" * 48, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}),
        tmp_path / "uvicorn.log",
        f"http://127.0.0.1:{port}",
    )
    try:
        server.wait_until(lambda: httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200, timeout=120)
        # A new connection each time, until both workers have answered some: the second may
        # still be starting when the first answers, and the kernel picks who accepts.
        sent = 0
        deadline = time.monotonic() + 120
        while sent < 40 or (len(_pids(multiproc)) < 2 and time.monotonic() < deadline):
            assert httpx.get(f"{server.url}/health/live", timeout=10, headers={"Connection": "close"}).status_code == 200
            sent += 1
            if sent >= 40 and len(_pids(multiproc)) < 2:
                time.sleep(0.2)
        pids = _pids(multiproc)
        scrape = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    assert len(pids) == 2, pids  # both processes counted requests
    total = sum(
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "vacina_d1_http_requests_total" and sample.labels.get("route") == "/health/live"
    )
    assert total >= sent + 1  # every request of both workers (the readiness probe's included), from one scrape
