"""How the D-1 flow is partitioned: by RNDS entry day (America/Sao_Paulo) and, for
re-running one UF alone, by day × UF (27 static keys). Municipalities are files
inside a UF, never a partition dimension."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition, StaticPartitionsDefinition

from pipelines import dates, reference

DATE_DIMENSION = "date"
UF_DIMENSION = "uf"


def uf_keys() -> list[str]:
    return sorted(reference.ufs())


def daily(start: dt.date) -> DailyPartitionsDefinition:
    # end_offset=0: a day becomes a partition once it has ended in São Paulo (D-1).
    return DailyPartitionsDefinition(start_date=start.isoformat(), timezone=dates.TIMEZONE, end_offset=0)


def day_uf(days: DailyPartitionsDefinition) -> MultiPartitionsDefinition:
    # Keys join the dimensions in name order: "2026-11-21|DF" (what the portal sends).
    return MultiPartitionsDefinition({DATE_DIMENSION: days, UF_DIMENSION: StaticPartitionsDefinition(uf_keys())})


def day_of(partition_key: str | MultiPartitionKey) -> dt.date:
    if isinstance(partition_key, MultiPartitionKey):
        return dt.date.fromisoformat(partition_key.keys_by_dimension[DATE_DIMENSION])
    return dt.date.fromisoformat(str(partition_key).split("|")[0])


def uf_of(partition_key: str | MultiPartitionKey) -> str | None:
    if isinstance(partition_key, MultiPartitionKey):
        return partition_key.keys_by_dimension[UF_DIMENSION]
    parts = str(partition_key).split("|")
    return parts[1] if len(parts) > 1 else None


def key_for(day: dt.date, uf: str | None = None) -> str:
    return day.isoformat() if uf is None else f"{day.isoformat()}|{uf.upper()}"
