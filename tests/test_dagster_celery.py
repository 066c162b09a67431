"""Dagster as it runs in production, on this machine (tests/dagster_stack.py): the
instance in PostgreSQL (the shipped deploy/dagster.yaml), the code location served by
``dagster code-server start`` (deploy/workspace.yaml points at it), the daemon and the
webserver as separate processes, and the steps of every run on two Celery workers
(RabbitMQ).

- a backfill of three days launched through GraphQL and run by the daemon publishes each
  day once, and its steps ran on both workers;
- killing the worker that holds a step (the whole worker, SIGKILL) mid-run ends in the
  step run again on the other worker and a correct, single publication of the day.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.dagster_stack import (
    FINISHED,
    BrokerUnavailable,
    graphql,
    instance_of,
    launch_daily_backfill,
    production_stack,
    publications,
    runs_tagged,
    step_workers,
    wait,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]

BACKFILL_DAYS = ["2026-10-05", "2026-10-06", "2026-10-07"]
KILL_DAY = "2026-10-12"
KILL_RECORDS = 200_000
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server):
    try:
        with production_stack(tmp_path_factory.mktemp("celery"), postgres_server) as stack:
            yield stack
    except BrokerUnavailable as exc:
        if os.environ.get("VACINA_D1_REQUIRE_RABBITMQ") == "1":
            pytest.fail(f"{exc} — VACINA_D1_REQUIRE_RABBITMQ=1 exige o servidor")
        pytest.skip(str(exc))


def test_a_backfill_through_the_daemon_publishes_each_day_once_with_steps_on_both_workers(stack):
    url = stack["url"]
    backfill_id = launch_daily_backfill(url, BACKFILL_DAYS)
    runs: list[dict] = []

    def done() -> bool:
        nonlocal runs
        runs = runs_tagged(url, "dagster/backfill", backfill_id)
        return len(runs) == len(BACKFILL_DAYS) and all(r["status"] in FINISHED for r in runs)

    wait(done, 600, stack["procs"], f"o backfill não terminou: {runs}")
    assert sorted(r["status"] for r in runs) == ["SUCCESS"] * 3, "\n".join(p.tail() for p in stack["procs"])
    for day in BACKFILL_DAYS:
        assert publications(stack["home"], day) == [(1, 1500)]
    with instance_of(stack) as instance:
        steps = [(run["runId"], step, worker) for run in runs for step, worker in step_workers(instance, run["runId"])]
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
    with instance_of(stack) as instance:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            for step, worker in step_workers(instance, run_id):
                if step == "rnds_extract":
                    victim = worker
            time.sleep(0.2)
    assert victim is not None, "\n".join(p.tail() for p in stack["procs"])
    stack["workers"][victim].kill_group()
    survivor = ({"w1", "w2"} - {victim}).pop()

    runs: list[dict] = []

    def done() -> bool:
        nonlocal runs
        runs = runs_tagged(url, "dagster/partition", KILL_DAY)
        return bool(runs) and any(r["status"] == "SUCCESS" for r in runs) and all(r["status"] in FINISHED for r in runs)

    wait(done, 600, stack["procs"], f"a execução não terminou depois do worker morto: {runs}")
    # One correct publication of the day, with every record of the source.
    assert publications(stack["home"], KILL_DAY) == [(1, KILL_RECORDS)]
    with instance_of(stack) as instance:
        steps = [step for run in runs for step in step_workers(instance, run["runId"])]
        from dagster import AssetKey

        assert instance.get_materialized_partitions(AssetKey("d1_publication")) >= {KILL_DAY}
    extractions = [worker for step, worker in steps if step == "rnds_extract"]
    # The extraction began on the worker that was killed and ran again on the other one.
    assert extractions[0] == victim and survivor in extractions[1:], steps
    # Everything after the kill ran on the survivor.
    assert all(worker == survivor for _, worker in steps[steps.index(("rnds_extract", victim)) + 1 :]), steps
