"""The Celery app of the D-1 workers: ``celery -A assets.celery_worker worker -Q dagster``.

It takes the steps the ``celery`` executor submits (``assets.executors``) with the same
broker, backend and settings, read from the same ``VACINA_D1_CELERY_*`` variables."""

from dagster_celery.tasks import create_task

from assets.executors import celery_app

app = celery_app()
execute_plan = create_task(app)
