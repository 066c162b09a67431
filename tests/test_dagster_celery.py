"""Dagster as it runs in production, on this machine: the instance in PostgreSQL (the
shipped deploy/dagster.yaml), the code location served by ``dagster code-server start``
(deploy/workspace.yaml points at it), the daemon and the webserver as separate
processes, and the steps of every run on two Celery workers (RabbitMQ).

- a backfill of three days launched through GraphQL and run by the daemon publishes each
  day once, and its steps ran on both workers;
- killing the worker that holds a step (the whole worker, SIGKILL) mid-run ends in the
  step run again on the other worker and a correct, single publication of the day.
"""

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

import httpx
import pytest
import sqlalchemy as sa

from tests import dagster_support as s
from tests.conftest import free_port
from tests.portal.servers import graphql

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]

BIN = Path(sys.executable).parent
BACKFILL_DAYS = ["2026-10-05", "2026-10-06", "2026-10-07"]
KILL_DAY = "2026-10-12"
KILL_RECORDS = 200_000
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")

BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on Error { message }
  }
}
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUNS = """
query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status tags { key value } } } }
}
"""
LOADED = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""


class Proc:
    """A process of the stack in its own session (so a worker and its pool die together)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log = logs / f"{name}.log"
        self.handle = open(self.log, "wb")
        self.process = subprocess.Popen(
            ["env", "--default-signal=INT,TERM,HUP", *argv],
            env=env,
            cwd=s.ROOT,
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


def _broker_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=3):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _vhost():
    """A RabbitMQ virtual host of our own (no stray task of another run can reach our
    workers); the default one when rabbitmqctl cannot make it."""
    if not _broker_reachable():
        message = "RabbitMQ inacessível em 127.0.0.1:5672 (rabbitmq-server -detached)"
        if os.environ.get("VACINA_D1_REQUIRE_RABBITMQ") == "1":
            pytest.fail(message + " — VACINA_D1_REQUIRE_RABBITMQ=1 exige o servidor")
        pytest.skip(message)
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server):
    tmp = tmp_path_factory.mktemp("celery")
    database = f"vacina_d1_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    url = sa.engine.make_url(postgres_server)
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(s.ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    home = tmp / "var"
    code_port, web_port = free_port(), free_port()
    procs: list[Proc] = []
    with _vhost() as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VACINA_D1_", "DAGSTER_"))}
        env.update(
            PYTHONPATH=str(s.ROOT),
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
        workspace = str(s.ROOT / "deploy" / "workspace.yaml")

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
                    "pipelines.definitions",
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
            _wait(
                lambda: _listening(code_port) and "Started Dagster code proxy server" in procs[0].tail(),
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
                for name in ("w1", "w2")
            }
            start("webserver", [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)])
            start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
            graphql_url = f"http://127.0.0.1:{web_port}/graphql"
            _wait(lambda: _loaded(graphql_url), 240, procs, "a code location não carregou no webserver")
            _wait(
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


def _loaded(url: str) -> bool:
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


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(ready, timeout: float, procs: list[Proc], message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive() and proc.name not in ("w1", "w2"):
                raise AssertionError(f"{proc.name} saiu com {proc.process.returncode}: {proc.tail()}")
        if ready():
            return
        time.sleep(0.3)
    raise AssertionError(message + "\n" + "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))


@contextlib.contextmanager
def _instance(stack):
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


def _step_workers(instance, run_id: str) -> list[tuple[str, str]]:
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


def _runs(url: str, key: str, value: str) -> list[dict]:
    return graphql(url, RUNS, {"tags": [{"key": key, "value": value}]})["runsOrError"]["results"]


def _publications(home: Path, day: str) -> list[tuple[int, int]]:
    from serving.catalog import Catalog, Publication

    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    with catalog.session() as session:
        rows = session.execute(
            sa.select(Publication.version, Publication.records_read).where(Publication.day == dt.date.fromisoformat(day))
        ).all()
    catalog.engine.dispose()
    return [tuple(r) for r in rows]


def test_a_backfill_through_the_daemon_publishes_each_day_once_with_steps_on_both_workers(stack):
    url = stack["url"]
    launched = graphql(
        url,
        BACKFILL,
        {
            "params": {
                "selector": {
                    "partitionSetName": "d1_daily_job_partition_set",
                    "repositorySelector": {"repositoryLocationName": "vacina_d1", "repositoryName": "__repository__"},
                },
                "partitionNames": BACKFILL_DAYS,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    runs: list[dict] = []

    def done() -> bool:
        nonlocal runs
        runs = _runs(url, "dagster/backfill", launched["backfillId"])
        return len(runs) == len(BACKFILL_DAYS) and all(r["status"] in FINISHED for r in runs)

    _wait(done, 600, stack["procs"], f"o backfill não terminou: {runs}")
    assert sorted(r["status"] for r in runs) == ["SUCCESS"] * 3, "\n".join(p.tail() for p in stack["procs"])
    for day in BACKFILL_DAYS:
        assert _publications(stack["home"], day) == [(1, 1500)]
    with _instance(stack) as instance:
        steps = [(run["runId"], step, worker) for run in runs for step, worker in _step_workers(instance, run["runId"])]
    assert {worker for _, _, worker in steps} == {"w1", "w2"}, steps
    # Each step of each run ran once: nothing lost, nothing twice.
    assert len({(run_id, step) for run_id, step, _ in steps}) == len(steps) >= 3 * len(BACKFILL_DAYS)


def test_killing_the_worker_that_holds_a_step_ends_in_the_step_retried_and_one_correct_publication(stack):
    url = stack["url"]
    tags = [{"key": "dagster/partition", "value": KILL_DAY}]
    launched = graphql(
        url,
        LAUNCH,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": "vacina_d1",
                    "repositoryName": "__repository__",
                    "jobName": "d1_daily_job",
                },
                "runConfigData": {"resources": {"rnds_source": {"config": {"synthetic_records": KILL_RECORDS}}}},
                "executionMetadata": {"tags": tags},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    # As soon as a worker starts the extraction (the longest step), kill it whole.
    victim = None
    with _instance(stack) as instance:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            for step, worker in _step_workers(instance, run_id):
                if step == "rnds_extract":
                    victim = worker
            time.sleep(0.2)
    assert victim is not None, "\n".join(p.tail() for p in stack["procs"])
    stack["workers"][victim].kill_group()
    survivor = ({"w1", "w2"} - {victim}).pop()

    runs: list[dict] = []

    def done() -> bool:
        nonlocal runs
        runs = _runs(url, "dagster/partition", KILL_DAY)
        return bool(runs) and any(r["status"] == "SUCCESS" for r in runs) and all(r["status"] in FINISHED for r in runs)

    _wait(done, 600, stack["procs"], f"a execução não terminou depois do worker morto: {runs}")
    # One correct publication of the day, with every record of the source.
    assert _publications(stack["home"], KILL_DAY) == [(1, KILL_RECORDS)]
    with _instance(stack) as instance:
        steps = [step for run in runs for step in _step_workers(instance, run["runId"])]
        from dagster import AssetKey

        assert instance.get_materialized_partitions(AssetKey("d1_publication")) >= {KILL_DAY}
    extractions = [worker for step, worker in steps if step == "rnds_extract"]
    # The extraction began on the worker that was killed and ran again on the other one.
    assert extractions[0] == victim and survivor in extractions[1:], steps
    # Everything after the kill ran on the survivor.
    assert all(worker == survivor for _, worker in steps[steps.index(("rnds_extract", victim)) + 1 :]), steps
