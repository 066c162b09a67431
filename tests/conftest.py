"""Shared fixtures: a real PostgreSQL database, a real HTTP S3 endpoint, reference samples.

PostgreSQL tests skip with a clear reason when the server is unreachable on a
developer's machine; CI sets VACINA_D1_REQUIRE_POSTGRES=1 so that there they
fail instead of skipping.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

POSTGRES_ADMIN_URL = os.environ.get("VACINA_D1_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _postgres_reachable(url: str) -> str | None:
    """None when a connection works, else the reason it does not."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server (skip, or fail in CI, when there is none)."""
    reason = _postgres_reachable(POSTGRES_ADMIN_URL)
    if reason:
        message = f"PostgreSQL inacessível em {POSTGRES_ADMIN_URL} ({reason})"
        if os.environ.get("VACINA_D1_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " — VACINA_D1_REQUIRE_POSTGRES=1 exige o servidor")
        pytest.skip(message)
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"vacina_d1_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real HTTP S3 endpoint on loopback (moto's server mode), for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    previous = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="teste", AWS_SECRET_ACCESS_KEY="teste", AWS_DEFAULT_REGION="us-east-1")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the loopback S3 endpoint: (endpoint, bucket)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=s3_endpoint, config=Config(signature_version="s3v4"))
    name = f"vacina-d1-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return s3_endpoint, name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(session, config, items):
    """The longest files first (then the rest as collected): with ``--dist loadfile
    --no-loadscope-reorder`` a few-test Dagster or browser file no longer starts last
    and leaves one worker running it alone at the end (longest-first scheduling).
    Only the order changes: each file's tests keep their order and stay together."""
    try:
        seconds = json.loads(_DURATIONS.read_text())["seconds"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::", 1)[0], 0))


_TIMELINE = os.environ.get("VACINA_D1_TEST_TIMELINE")


if _TIMELINE:
    import resource
    import time

    def _cpu_seconds() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        # One line per test (worker, start, end, CPU of the worker and the children it
        # reaped): shows where the parallel suite computes and where it only waits.
        started, cpu = time.time(), _cpu_seconds()
        yield
        line = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "test": item.nodeid, "start": started}
        line.update(end=time.time(), cpu=round(_cpu_seconds() - cpu, 3))
        with open(_TIMELINE, "a") as out:
            out.write(json.dumps(line) + "\n")
