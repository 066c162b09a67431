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

    def to_json(self, *, timing: bool = True) -> str:
        fields = asdict(self)
        if not timing:
            fields["seconds"] = 0.0
        return json.dumps(fields, ensure_ascii=False, sort_keys=True)


def read_counts(path: str | os.PathLike) -> ExtractCounts | None:
    """The counts an extraction stored in a staging file, or None for a file we did not write."""
    # The file's key-value metadata: where both ParquetWriter.add_key_value_metadata
    # and a table's schema metadata end up (read_schema only sees the latter).
    meta = pq.read_metadata(path).metadata or {}
    if METADATA_KEY not in meta:
        return None
    return ExtractCounts(**json.loads(meta[METADATA_KEY]))


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.to_arrow().cast(schema)


class _Writer:
    """A Parquet file written batch by batch (bounded memory), made visible by rename.

    The rows go to one temporary part file; ``suspend`` closes the current part
    (a split into many days keeps only so many files open) and the next write
    opens a new one. ``close`` hands back one temporary file with everything.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.parts: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self._open()  # an empty day is still a file with the schema

    @property
    def tmp(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def _open(self) -> pq.ParquetWriter:
        part = self.path.with_name(f".{self.path.name}.{os.getpid()}.part{len(self.parts)}.tmp")
        self.parts.append(part)
        self.writer = pq.ParquetWriter(part, self.schema, compression="zstd")
        return self.writer

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height:
            writer = self._open() if self.writer is None else self.writer
            writer.write_table(_to_arrow(frame, self.schema))

    def suspend(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self, metadata: dict[bytes, bytes] | None = None) -> Path:
        """Everything written, in one temporary file (``self.tmp``) carrying ``metadata``."""
        if self.writer is not None and len(self.parts) == 1:
            if metadata:
                self.writer.add_key_value_metadata(metadata)
            self.writer.close()
            self.writer = None
            self.parts[0].replace(self.tmp)
        else:
            self.suspend()
            with pq.ParquetWriter(self.tmp, self.schema, compression="zstd") as merged:
                for part in self.parts:
                    for batch in pq.ParquetFile(part).iter_batches():
                        merged.write_batch(batch)
                if metadata:
                    merged.add_key_value_metadata(metadata)
            for part in self.parts:
                part.unlink()
        self.parts = []
        return self.tmp

    def abort(self) -> None:
        try:
            self.suspend()
        except Exception:  # already closed, or the disk failed: the temp files go either way
            self.writer = None
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.tmp.unlink(missing_ok=True)


def _quarantine_from_valid(rows: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Typed records back to their text form, for the quarantine."""
    return rows.select([pl.col(name).cast(pl.String) for name in contract.SOURCE_COLUMNS]).with_columns(
        pl.lit(None, pl.String).alias(contract.QUARANTINE_ORIGIN_COLUMN),
        pl.lit([reason], pl.List(pl.String)).alias(contract.QUARANTINE_REASONS_COLUMN),
    )


def _canonicalize(tmp_valid: Path | list[Path], quarantine: _Writer, counts: ExtractCounts) -> pl.DataFrame:
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


class DayStaging:
    """One day being extracted: its staging file and quarantine written batch by
    batch, with the counts, reasons and order seen so far. ``finish`` makes the
    canonical files (still temporary); ``publish`` renames them into place."""

    def __init__(self, out: Path, rejects: Path, counts: ExtractCounts, started: float | None = None):
        self.out, self.rejects, self.counts = out, rejects, counts
        self.started = time.perf_counter() if started is None else started
        self.reasons: collections.Counter[str] = collections.Counter()
        self.order = _OrderTracker()
        self.valid_writer = _Writer(out, VALID_ARROW_SCHEMA)
        self.quarantine_writer = _Writer(rejects, QUARANTINE_ARROW_SCHEMA)
        self._finished: tuple[Path, Path] | None = None

    def add(self, valid: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        """Validated records of this day (``validate``'s two frames, or a part of them)."""
        counts = self.counts
        counts.read += valid.height + quarantine.height
        counts.valid += valid.height
        counts.quarantined += quarantine.height
        for row in quarantine[contract.QUARANTINE_REASONS_COLUMN].explode().value_counts().iter_rows():
            self.reasons[row[0]] += row[1]
        self.order.see(valid["co_documento"])
        self.valid_writer.write(valid)
        self.quarantine_writer.write(quarantine)

    def suspend(self) -> None:
        """Close the open files (a later ``add`` opens new parts)."""
        self.valid_writer.suspend()
        self.quarantine_writer.suspend()

    def finish(self) -> None:
        """Canonical staging and quarantine files, with the counts, still under temporary names."""
        counts = self.counts
        counts.reasons = dict(self.reasons)
        valid_writer = self.valid_writer
        if self.order.strictly_ascending:
            counts.seconds = round(time.perf_counter() - self.started, 3)
            tmp_valid = valid_writer.close(_metadata(counts))
        else:
            valid_writer.suspend()
            canonical = _canonicalize(valid_writer.parts, self.quarantine_writer, counts)
            for part in valid_writer.parts:
                part.unlink()
            valid_writer.parts = []
            counts.seconds = round(time.perf_counter() - self.started, 3)
            tmp_valid = _write_table(canonical, valid_writer.tmp, _metadata(counts))
        tmp_rejects = self.quarantine_writer.close(_metadata(counts))
        self._finished = (tmp_valid, tmp_rejects)

    def publish(self, *, with_valid: bool = True) -> None:
        """Rename the finished files into place (only the quarantine when ``with_valid`` is false)."""
        assert self._finished is not None, "finish() antes de publish()"
        tmp_valid, tmp_rejects = self._finished
        assert self.counts.read == self.counts.valid + self.counts.quarantined
        os.replace(tmp_rejects, self.rejects)
        if with_valid:
            os.replace(tmp_valid, self.out)
        else:
            tmp_valid.unlink()

    def abort(self) -> None:
        self.valid_writer.abort()
        self.quarantine_writer.abort()


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
    staging = DayStaging(out, rejects, counts, started)
    try:
        for raw in batches:
            if day is not None:
                entry = _parse_date(pl.col("dt_entrada_rnds").str.strip_chars())
                keep = raw.select((entry.is_null() | (entry == day)).alias("keep"))["keep"]
                counts.outside_day += raw.height - int(keep.sum())
                raw = raw.filter(keep)
            result = validate(raw, today=today, pseudonymize=pseudonymize)
            staging.add(result.valid, result.quarantine)
        staging.finish()
    except BaseException:
        staging.abort()
        raise
    staging.publish()
    return counts


NO_ENTRY_DAY = "sem-data"
_MAX_OPEN_DAYS = 64


def split_by_entry_day(
    source: Source,
    out_dir: str | os.PathLike,
    *,
    today: dt.date,
) -> dict[dt.date | None, ExtractCounts]:
    """Read ``source`` once and write one staging file and quarantine per entry day
    (``<out_dir>/<AAAA-MM-DD>.parquet`` and ``.rejects.parquet``), each the same
    as ``extract(..., day=D)`` would write, except for records whose entry date
    cannot be read: those go to ``<out_dir>/sem-data.rejects.parquet`` (key
    ``None``) instead of every day's quarantine.

    Memory stays bounded by a batch plus, at the end, the largest day (the
    canonical sort); at most ``_MAX_OPEN_DAYS`` days keep files open at once.
    Nothing appears in ``out_dir`` unless the whole source was read.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pseudonymize = source.pseudonymizer()
    days: collections.OrderedDict[dt.date | None, DayStaging] = collections.OrderedDict()

    def staging_for(day: dt.date | None) -> DayStaging:
        staging = days.get(day)
        if staging is None:
            name = day.isoformat() if day is not None else NO_ENTRY_DAY
            counts = ExtractCounts(day=name, source=source.kind)
            staging = days[day] = DayStaging(out_dir / f"{name}.parquet", out_dir / f"{name}.rejects.parquet", counts, started)
        days.move_to_end(day)
        open_days = [d for d, s in days.items() if s.valid_writer.writer is not None or s.quarantine_writer.writer is not None]
        for stale in open_days[: max(0, len(open_days) - _MAX_OPEN_DAYS)]:
            days[stale].suspend()
        return staging

    empty_valid = pl.DataFrame(schema=contract.SCHEMA)
    empty_quarantine = pl.DataFrame(schema=contract.QUARANTINE_SCHEMA)
    try:
        for raw in source.batches():
            result = validate(raw, today=today, pseudonymize=pseudonymize)
            valid_days = result.valid.partition_by("dt_entrada_rnds", as_dict=True, maintain_order=True)
            entry = _parse_date(pl.col("dt_entrada_rnds").str.strip_chars()).alias("_dia")
            quarantine = result.quarantine.with_columns(entry)
            quarantine_days = {
                key[0]: frame.drop("_dia")
                for key, frame in quarantine.partition_by("_dia", as_dict=True, maintain_order=True).items()
            }
            for day in dict.fromkeys([*(key[0] for key in valid_days), *quarantine_days]):
                staging_for(day).add(
                    valid_days.get((day,), empty_valid) if day is not None else empty_valid,
                    quarantine_days.get(day, empty_quarantine),
                )
        for staging in days.values():
            staging.finish()
    except BaseException:
        for staging in days.values():
            staging.abort()
        raise
    result_counts: dict[dt.date | None, ExtractCounts] = {}
    for day, staging in days.items():
        # Nothing without an entry date is valid (the date is required): only its quarantine is kept.
        assert day is not None or staging.counts.valid == 0
        staging.publish(with_valid=day is not None)
        result_counts[day] = staging.counts
    return result_counts


def _metadata(counts: ExtractCounts) -> dict[bytes, bytes]:
    # No timing in the file: the same input must give a byte-identical staging file.
    return {METADATA_KEY: counts.to_json(timing=False).encode()}


def _write_table(frame: pl.DataFrame, path: Path, metadata: dict[bytes, bytes]) -> Path:
    table = _to_arrow(frame, VALID_ARROW_SCHEMA).replace_schema_metadata(metadata)
    pq.write_table(table, path, compression="zstd", row_group_size=256_000)
    return path
