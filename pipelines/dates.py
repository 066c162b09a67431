"""Days as the RNDS sees them: America/Sao_Paulo."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

TIMEZONE = "America/Sao_Paulo"
TZ = ZoneInfo(TIMEZONE)


def today() -> dt.date:
    return dt.datetime.now(TZ).date()


def parse_day(text: str) -> dt.date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (the D-1 the pipeline publishes)."""
    value = text.strip().lower()
    if value in ("yesterday", "ontem"):
        return today() - dt.timedelta(days=1)
    if value in ("today", "hoje"):
        return today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"data inválida: {text!r} (use AAAA-MM-DD, 'yesterday' ou 'today')") from None
