"""Dagster assets, checks, jobs, schedule and sensors of the D-1 pipeline. Thin:
they call ``pipelines/`` and ``serving/``. ``assets/definitions.py`` puts them
in the one ``Definitions`` of the code location ``vacina_d1``."""
