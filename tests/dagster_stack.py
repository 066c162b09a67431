"""Dagster in production shape on this machine, for the Celery tests and the backfill
benchmark: the instance in PostgreSQL (the shipped deploy/dagster.yaml in a fresh
database), the code location served by ``dagster code-server start``, the webserver and
the daemon reading deploy/workspace.yaml, and N Celery workers on a RabbitMQ virtual host
of its own. Every process is started with ``env --default-signal`` in its own session and
stopped by its own process group."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import sqlalchemy as sa

from tests.conftest import free_port
from tests.portal import servers

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
LOADED = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""
BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on Error { message }
  }
}
"""
RUNS = """
query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status startTime endTime tags { key value } } } }
}
"""


class BrokerUnavailable(Exception):
    pass


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    # A whole backfill's runs in one answer can take a while on a loaded machine.
    return servers.graphql(url, query, variables, timeout=60)


class Proc:
    """A process of the stack in its own session (so a worker and its pool die together)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log = logs / f"{name}.log"
        self.handle = open(self.log, "wb")
        self.process = subprocess.Popen(
            ["env", "--default-signal=INT,TERM,HUP", *argv],
            env=env,
            cwd=ROOT,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self.handle.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2500:]


def broker_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=3):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of our own (no stray task of another run can reach our
    workers); the default one when rabbitmqctl cannot make it."""
    if not broker_reachable():
        raise BrokerUnavailable("RabbitMQ inacessível em 127.0.0.1:5672 (rabbitmq-server -detached)")
    name = f"vacina-d1-test-{uuid.uuid4().hex[:8]}"
    ctl = shutil.which("rabbitmqctl")
    made = False
    if ctl:
        made = subprocess.run([ctl, "add_vhost", name], capture_output=True, timeout=60).returncode == 0
        if made:
            subprocess.run([ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], capture_output=True, timeout=60)
    try:
        yield f"pyamqp://guest:guest@127.0.0.1:5672/{name if made else ''}"
    finally:
        if made:
            subprocess.run([ctl, "delete_vhost", name], capture_output=True, timeout=60)


@contextlib.contextmanager
def production_stack(
    tmp: Path, postgres_server: str, *, workers: tuple[str, ...] = ("w1", "w2"), env_extra: dict[str, str] | None = None
) -> Iterator[dict]:
    database = f"vacina_d1_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    url = sa.engine.make_url(postgres_server)
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    home = tmp / "var"
    code_port, web_port = free_port(), free_port()
    procs: list[Proc] = []
    with vhost() as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DAGSTER_HOME=str(dagster_home),
            DAGSTER_PG_USERNAME=url.username or "postgres",
            DAGSTER_PG_PASSWORD=url.password or "",
            DAGSTER_PG_HOST=url.host or "127.0.0.1",
            DAGSTER_PG_PORT=str(url.port or 5432),
            DAGSTER_PG_DB=database,
            VACINA_D1_MAX_CONCURRENT_RUNS="2",
            VACINA_D1_HOME=str(home),
            VACINA_D1_SYNTHETIC_RECORDS="1500",
            VACINA_D1_EXECUTOR="celery",
            VACINA_D1_CELERY_BROKER=broker,
            VACINA_D1_CODE_SERVER_HOST="127.0.0.1",
            VACINA_D1_CODE_SERVER_PORT=str(code_port),
            VACINA_D1_RETRY_DELAY_SECONDS="1",
        )
        env.update(env_extra or {})
        workspace = str(ROOT / "deploy" / "workspace.yaml")

        def start(name: str, argv: list[str]) -> Proc:
            proc = Proc(name, argv, env, tmp)
            procs.append(proc)
            return proc

        try:
            start(
                "code-server",
                [
                    str(BIN / "dagster"),
                    "code-server",
                    "start",
                    "-m",
                    "assets.definitions",
                    "-a",
                    "defs",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(code_port),
                    "--location-name",
                    "vacina_d1",
                ],
            )
            # The webserver and the daemon only talk to the code server: it comes first.
            wait(
                lambda: listening(code_port) and "Started Dagster code proxy server" in procs[0].tail(),
                240,
                procs,
                "o servidor gRPC da code location não subiu",
            )
            workers = {
                name: start(
                    name,
                    [
                        str(BIN / "celery"),
                        "-A",
                        "assets.celery_worker",
                        "worker",
                        "-n",
                        f"{name}@%h",
                        "-c",
                        "1",
                        "-Q",
                        "dagster",
                        "--loglevel",
                        "INFO",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                )
                for name in workers
            }
            start("webserver", [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)])
            start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
            graphql_url = f"http://127.0.0.1:{web_port}/graphql"
            wait(lambda: loaded(graphql_url), 240, procs, "a code location não carregou no webserver")
            wait(
                lambda: all("ready." in w.log.read_text(errors="replace") for w in workers.values()),
                120,
                procs,
                "os workers Celery não ficaram prontos",
            )
            yield {"url": graphql_url, "home": home, "dagster_home": dagster_home, "env": env, "workers": workers, "procs": procs}
        finally:
            for proc in reversed(procs):
                proc.stop()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


def loaded(url: str) -> bool:
    try:
        entries = httpx.post(url, json={"query": LOADED}, timeout=5).json()["data"]["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return False
    return any(
        e["name"] == "vacina_d1"
        and e["loadStatus"] == "LOADED"
        and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        for e in entries
    )


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait(ready, timeout: float, procs: list[Proc], message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive() and not proc.name.startswith("w"):
                raise AssertionError(f"{proc.name} saiu com {proc.process.returncode}: {proc.tail()}")
        if ready():
            return
        time.sleep(0.3)
    raise AssertionError(message + "\n" + "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))


@contextlib.contextmanager
def instance_of(stack):
    """The production instance, read from the test process (same DAGSTER_PG_* variables)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stack["env"].items() if k.startswith("DAGSTER_")})
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(stack["dagster_home"]))) as instance:
            yield instance
    finally:
        os.environ.clear()
        os.environ.update(saved)


def step_workers(instance, run_id: str) -> list[tuple[str, str]]:
    """(step key, Celery worker name) of each step execution of a run, in order."""
    found = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT":
            continue
        if "in celery worker" not in f"{event.message or ''} {record.user_message or ''}":
            continue
        worker = event.engine_event_data.metadata.get("Celery worker")
        found.append((event.step_key, str(getattr(worker, "value", worker)).split("@")[0]))
    return found


def launch_daily_backfill(url: str, days: list[str]) -> str:
    """Launch a backfill of ``d1_daily_job`` over ``days`` through GraphQL; its id."""
    launched = graphql(
        url,
        BACKFILL,
        {
            "params": {
                "selector": {
                    "partitionSetName": "d1_daily_job_partition_set",
                    "repositorySelector": {"repositoryLocationName": "vacina_d1", "repositoryName": "__repository__"},
                },
                "partitionNames": days,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def runs_tagged(url: str, key: str, value: str) -> list[dict]:
    return graphql(url, RUNS, {"tags": [{"key": key, "value": value}]})["runsOrError"]["results"]


def publications(home: Path, day: str) -> list[tuple[int, int]]:
    from serving.catalog import Catalog, Publication

    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    with catalog.session() as session:
        rows = session.execute(
            sa.select(Publication.version, Publication.records_read).where(Publication.day == dt.date.fromisoformat(day))
        ).all()
    catalog.engine.dispose()
    return [tuple(r) for r in rows]
