"""Rate limits kept in the database, so they hold across worker processes (issue 11).

``RateLimitEvent`` is one row per counted attempt in a bucket (``token:cliente:<cpf>``,
``token:endereco:<ip>``, ``titularidade:usuario:<id>``, ``faixa-ip:usuario:<id>``).
``retry_after`` counts a bucket's attempts inside the window and, once the limit is
reached, says how long to wait; ``count`` records one. Check-then-count is not
serialised, so N workers racing on one bucket may each let one extra attempt through:
the limit is approximate by at most the number of workers, enough against brute force.
(File incidents live with the catalog: ``serving.catalog.FileIncident``.)
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal_api.models import TZ, Base
from serving.catalog import utcnow

log = logging.getLogger("portal_api")


class RateLimitEvent(Base):
    __tablename__ = "rate_limit_event"
    __table_args__ = (sa.Index("ix_rate_limit_event_bucket_created_at", "bucket", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(TZ)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def retry_after(
    engine: sa.Engine, buckets: Sequence[str], *, limit: int, window_seconds: int, now: dt.datetime | None = None
) -> int | None:
    """None while every bucket holds fewer than ``limit`` attempts inside the window;
    else the seconds until the oldest counted attempt of the fullest bucket leaves it."""
    now = now or utcnow()
    start = now - dt.timedelta(seconds=window_seconds)
    retry = 0
    with Session(engine) as session:
        for bucket in buckets:
            stamps = session.scalars(
                sa.select(RateLimitEvent.created_at)
                .where(RateLimitEvent.bucket == bucket[:200], RateLimitEvent.created_at >= start)
                .order_by(RateLimitEvent.created_at.desc())
                .limit(limit)
            ).all()
            if len(stamps) >= limit:
                oldest = _aware(stamps[-1])
                retry = max(retry, math.ceil((oldest + dt.timedelta(seconds=window_seconds) - now).total_seconds()))
    return max(1, retry) if retry else None


def count(engine: sa.Engine, buckets: Sequence[str], *, keep_seconds: int, now: dt.datetime | None = None) -> None:
    """Count one attempt in every bucket (and forget the bucket's attempts older than ``keep_seconds``)."""
    now = now or utcnow()
    with Session(engine) as session, session.begin():
        for bucket in buckets:
            session.execute(
                sa.delete(RateLimitEvent).where(
                    RateLimitEvent.bucket == bucket[:200], RateLimitEvent.created_at < now - dt.timedelta(seconds=keep_seconds)
                )
            )
        session.add_all([RateLimitEvent(bucket=bucket[:200], created_at=now) for bucket in buckets])


def too_many(detail: str, retry: int):
    from portal_api.core import problems

    return problems.ProblemError(429, f"{detail} Tente de novo em {retry} segundos.", headers={"Retry-After": str(retry)})
