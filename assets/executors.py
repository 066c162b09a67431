"""Which executor runs the steps of the D-1 jobs, chosen from the environment.

- ``VACINA_D1_EXECUTOR=in_process`` (the default): one process per run, steps in
  sequence — a laptop, ``make run``, the tests.
- ``VACINA_D1_EXECUTOR=celery``: every step is a Celery task (``dagster-celery``) on the
  broker ``VACINA_D1_CELERY_BROKER`` (default RabbitMQ ``pyamqp://guest:guest@127.0.0.1:5672//``;
  Redis: ``redis://127.0.0.1:6379/0``), results back through ``VACINA_D1_CELERY_BACKEND``
  (default ``rpc://``). Workers started with ``celery -A assets.celery_worker worker`` (see
  deploy/README.md) take the steps of every run, so a backfill and a day's checks spread
  over every worker process of every machine.

The steps of one day share its working files under ``VACINA_D1_HOME``: with workers on
several machines that directory must be shared (a ReadWriteMany volume on Kubernetes).

A worker that dies holding a step does not lose it: tasks are acknowledged only when
they end (``task_acks_late``) and a task whose worker was lost goes back to the queue
(``task_reject_on_worker_lost``), so another worker runs the step again; each worker
takes one task at a time (``worker_prefetch_multiplier=1``). Steps are idempotent
(publishing the same day again changes nothing), which is what makes the redelivery safe.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
KINDS = ("in_process", "celery")

# Celery settings both sides use: the run worker that submits steps and the workers that run them.
CELERY_APP_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def executor_kind(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    kind = environ.get("VACINA_D1_EXECUTOR", "").strip().lower().replace("-", "_") or "in_process"
    if kind not in KINDS:
        raise ValueError(f"VACINA_D1_EXECUTOR inválido: {kind!r} (use {' ou '.join(KINDS)})")
    return kind


def celery_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``celery_executor`` config: broker, backend and the app settings above."""
    environ = os.environ if environ is None else environ
    return {
        "broker": environ.get("VACINA_D1_CELERY_BROKER", "").strip() or DEFAULT_BROKER,
        "backend": environ.get("VACINA_D1_CELERY_BACKEND", "").strip() or DEFAULT_BACKEND,
        "config_source": dict(CELERY_APP_SETTINGS),
    }


def job_executor(environ: Mapping[str, str] | None = None):
    """The executor of the D-1 jobs for this environment."""
    if executor_kind(environ) == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_settings(environ), name="celery")
    from dagster import in_process_executor

    return in_process_executor


def celery_app(environ: Mapping[str, str] | None = None):
    """The Celery app the workers run (``assets.celery_worker``), with the executor's settings."""
    from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
    from dagster_celery.make_app import make_app

    settings = celery_settings(environ)
    return make_app(
        {
            "broker": settings["broker"],
            "backend": settings["backend"],
            "include": [],
            "config_source": dict_wrapper(dict(DEFAULT_CONFIG, **settings["config_source"])),
        }
    )
