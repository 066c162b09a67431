"""How late the publication is: the newest published day of each UF and its age.

One reading for the portal's ``/metrics`` and the pipeline's exported metrics, so the
two scrapes agree. A day D is complete at 00:00 of D+1 in America/Sao_Paulo; its lag
is the time since then (a D-1 published at 03:00 shows a lag of about 3 hours).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

TZ = ZoneInfo("America/Sao_Paulo")


def newest_day_by_uf(engine: sa.Engine) -> dict[str, dt.date]:
    """UF -> the newest day with a current UF file in the catalog (UFs never published are absent)."""
    from serving.catalog import PublishedFile

    query = (
        sa.select(PublishedFile.uf, sa.func.max(PublishedFile.day))
        .where(PublishedFile.scope_kind == "uf", PublishedFile.is_current.is_(True))
        .group_by(PublishedFile.uf)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {uf: day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)) for uf, day in rows}


def day_end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=TZ)


def lag_seconds(newest: dt.date, now: dt.datetime | None = None) -> float:
    """Seconds since ``newest`` ended in São Paulo (0 while it has not ended)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (now - day_end(newest)).total_seconds())


def lag_by_uf(engine: sa.Engine, now: dt.datetime | None = None) -> dict[str, float]:
    return {uf: lag_seconds(day, now) for uf, day in newest_day_by_uf(engine).items()}


# The pipeline's metrics (lag and check results), in Prometheus text format, written by
# the Dagster sensor and appended by the portal to its own /metrics.
PIPELINE_METRICS_FILE = "metrics/pipeline.prom"


def pipeline_metrics_path(home: str | Path) -> Path:
    return Path(home) / PIPELINE_METRICS_FILE
