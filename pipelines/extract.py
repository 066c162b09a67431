"""Extraction of one entry day: source → validation → canonical Parquet staging.

The staging file is the contract's canonical form of a day: ``contract.SCHEMA``
columns, one row per ``co_documento`` (repeats go to quarantine), sorted by
``co_documento`` so everything downstream is deterministic, and the day's
counts (read, valid, quarantined, reasons) in the Parquet key-value metadata,
so a published day can always be reconciled with what was read.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import contract
from pipelines.sources.base import Source
from pipelines.validation import _parse_date, validate

METADATA_KEY = b"vacina_d1"

VALID_ARROW_SCHEMA = pa.schema(
    [pa.field(name, pa.date32() if name in contract.DATE_COLUMNS else pa.large_string()) for name in contract.SOURCE_COLUMNS]
)
QUARANTINE_ARROW_SCHEMA = pa.schema(
    [pa.field(name, pa.large_string()) for name in contract.SOURCE_COLUMNS]
    + [
        pa.field(contract.QUARANTINE_ORIGIN_COLUMN, pa.large_string()),
        pa.field(contract.QUARANTINE_REASONS_COLUMN, pa.large_list(pa.large_string())),
    ]
)


@dataclass
class ExtractCounts:
    """What an extraction read and where it went; ``read == valid + quarantined``."""

    read: int = 0
    valid: int = 0
    quarantined: int = 0
    outside_day: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    day: str | None = None
    source: str | None = None
    layout_version: str = contract.LAYOUT_VERSION
    seconds: float = 0.0

    def top_reasons(self, n: int = 5) -> list[tuple[str, int]]:
        return collections.Counter(self.reasons).most_common(n)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


def read_counts(path: str | os.PathLike) -> ExtractCounts | None:
    """The counts an extraction stored in a staging file, or None for a file we did not write."""
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        return None
    return ExtractCounts(**json.loads(meta[METADATA_KEY]))


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.to_arrow().cast(schema)


class _Writer:
    """A Parquet file written batch by batch (bounded memory), made visible by rename."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.schema = schema
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self.writer.write_table(_to_arrow(frame, self.schema))

    def close(self, metadata: dict[bytes, bytes] | None = None) -> Path:
        if metadata:
            self.writer.add_key_value_metadata(metadata)
        self.writer.close()
        return self.tmp

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already closed, or the disk failed: the temp file goes either way
            pass
        self.tmp.unlink(missing_ok=True)


def _quarantine_from_valid(rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Typed records back to their text form, for the quarantine."""
    return rows.select(
        [pl.col(name).cast(pl.String) for name in contract.SOURCE_COLUMNS]
    ).with_columns(
        pl.lit(None, pl.String).alias(contract.QUARANTINE_ORIGIN_COLUMN),
        pl.lit([reason], pl.List(pl.String)).alias(contract.QUARANTINE_REASONS_COLUMN),
    )


def _canonicalize(tmp_valid: Path, quarantine: _Writer, counts: ExtractCounts) -> pl.DataFrame:
    """Sort by co_documento (first occurrence wins) and send repeats to quarantine."""
    frame = pl.read_parquet(tmp_valid).with_row_index("_ordem").sort(["co_documento", "_ordem"])
    repeated = frame["co_documento"].is_first_distinct().not_()
    dupes = frame.filter(repeated).drop("_ordem")
    if dupes.height:
        quarantine.write(_quarantine_from_valid(dupes, "co_documento_duplicado"))
        counts.valid -= dupes.height
        counts.quarantined += dupes.height
        counts.reasons["co_documento_duplicado"] = counts.reasons.get("co_documento_duplicado", 0) + dupes.height
    return frame.filter(~repeated).drop("_ordem")


class _OrderTracker:
    """Watches co_documento across batches: when every batch arrives strictly
    ascending (the synthetic source's case), the file is canonical as written
    and needs no second pass."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.strictly_ascending = True

    def see(self, ids: pl.Series) -> None:
        if not self.strictly_ascending or ids.len() == 0:
            return
        ascending = ids.is_sorted() and ids.n_unique() == ids.len()
        if not ascending or (self.last is not None and ids[0] <= self.last):
            self.strictly_ascending = False
        self.last = ids[-1]


def extract(
    batches: Iterable[pl.DataFrame],
    out: str | os.PathLike,
    rejects: str | os.PathLike,
    *,
    today: dt.date,
    day: dt.date | None = None,
    source: Source | None = None,
) -> ExtractCounts:
    """Validate raw batches into the staging file ``out`` and the quarantine ``rejects``.

    With ``day``, only records whose ``dt_entrada_rnds`` is that day (or cannot be
    read, so cannot be placed in any day) are taken; the others are counted in
    ``outside_day`` and left for their own day. Both files appear only when the
    whole source was read: a failure leaves no partial output behind.
    """
    started = time.perf_counter()
    out, rejects = Path(out), Path(rejects)
    out.parent.mkdir(parents=True, exist_ok=True)
    rejects.parent.mkdir(parents=True, exist_ok=True)
    pseudonymize = source.pseudonymizer() if source is not None else None
    counts = ExtractCounts(day=day.isoformat() if day else None, source=source.kind if source is not None else None)
    reasons: collections.Counter[str] = collections.Counter()
    valid_writer = _Writer(out, VALID_ARROW_SCHEMA)
    quarantine_writer = _Writer(rejects, QUARANTINE_ARROW_SCHEMA)
    order = _OrderTracker()
    try:
        for raw in batches:
            if day is not None:
                entry = _parse_date(pl.col("dt_entrada_rnds").str.strip_chars())
                keep = raw.select((entry.is_null() | (entry == day)).alias("keep"))["keep"]
                counts.outside_day += raw.height - int(keep.sum())
                raw = raw.filter(keep)
            result = validate(raw, today=today, pseudonymize=pseudonymize)
            counts.read += raw.height
            counts.valid += result.valid.height
            counts.quarantined += result.quarantine.height
            for row in result.quarantine[contract.QUARANTINE_REASONS_COLUMN].explode().value_counts().iter_rows():
                reasons[row[0]] += row[1]
            order.see(result.valid["co_documento"])
            valid_writer.write(result.valid)
            quarantine_writer.write(result.quarantine)
        counts.reasons = dict(reasons)
        if order.strictly_ascending:
            counts.seconds = round(time.perf_counter() - started, 3)
            tmp_valid = valid_writer.close(_metadata(counts))
        else:
            unsorted = valid_writer.close()
            canonical = _canonicalize(unsorted, quarantine_writer, counts)
            unsorted.unlink()
            counts.seconds = round(time.perf_counter() - started, 3)
            tmp_valid = _write_table(canonical, valid_writer.tmp, _metadata(counts))
        tmp_rejects = quarantine_writer.close(_metadata(counts))
    except BaseException:
        valid_writer.abort()
        quarantine_writer.abort()
        raise
    os.replace(tmp_rejects, rejects)
    os.replace(tmp_valid, out)
    assert counts.read == counts.valid + counts.quarantined
    return counts


def _metadata(counts: ExtractCounts) -> dict[bytes, bytes]:
    return {METADATA_KEY: counts.to_json().encode()}


def _write_table(frame: pl.DataFrame, path: Path, metadata: dict[bytes, bytes]) -> Path:
    table = _to_arrow(frame, VALID_ARROW_SCHEMA).replace_schema_metadata(metadata)
    pq.write_table(table, path, compression="zstd", row_group_size=256_000)
    return path
