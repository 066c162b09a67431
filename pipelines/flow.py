"""The D-1 flow of one day, step by step, without Dagster: extract → stage the
files → publish. The Dagster assets (``assets/``) and ``vacina-d1 run`` call these
functions; each step leaves its result on disk, so the next step can run in
another process (a Dagster step, a retry, a re-run hours later).

Where a day's work lives (``DayWork``)::

    <home>/pipeline/<AAAA-MM-DD>/            the whole day (scope BR)
        staging.parquet                      the canonical staging object (pipelines.extract)
        quarantine.parquet                   what validation refused, with the reasons
        files/                               the day's CSV.gz files, staged (pipelines.partition)
        partition.json                       what the partitioner wrote: rows, sizes, SHA-256 per file
        publication.json                     what the last publication of these files committed
    <home>/pipeline/<AAAA-MM-DD>/uf/<UF>/    the same, for one UF re-run alone

The staging object stays on the pipeline's local disk, never in the object store:
it holds record-level data that only the published files should expose, and
partitioning reads it at disk speed. Staged files are removed once published
(the object store keeps them; ``stage_files`` rebuilds them from the Parquet in
seconds).

Publication is ``serving.publish.Publisher`` on ``serving.publish.staged_day_from``
of ``pipelines.partition.partition_day``'s result: exactly what ``vacina-d1
publish`` does (``pipelines.publish_day.run_publish``), split in two so that checks can run
on the staged files before anything is uploaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from pipelines.extract import ExtractCounts, extract, read_counts
from pipelines.partition import PartitionedFile, PartitionResult, Representation, partition_day
from pipelines.settings import PipelineSettings
from pipelines.sources import Source

SCOPE_ALL = "BR"  # serving.publish.SCOPE_ALL: the whole day
PARTITION_RECORD_FORMAT = "vacina-d1/preparacao/1"
PUBLICATION_RECORD_FORMAT = "vacina-d1/publicacao-local/1"


class FlowError(ValueError):
    """A step asked for something an earlier step did not leave: one line saying what to run."""


class FlowSettings(PipelineSettings):
    """The orchestration's own settings (``VACINA_D1_*``), on top of the pipeline's."""

    # First entry day the pipeline knows (Dagster's daily partitions start here).
    partitions_start: dt.date = dt.date(2026, 1, 1)
    # Largest share of a day's records that may go to quarantine before publication stops.
    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)
    # First wait before retrying a source or storage failure (doubles each attempt).
    retry_delay_seconds: float = Field(30.0, ge=0.0)
    retry_max: int = Field(3, ge=0, le=10)
    # Threads uploading a day's files.
    publish_threads: int = Field(8, ge=1, le=64)


@dataclasses.dataclass(frozen=True)
class DayWork:
    """The working area of one day (``uf=None``) or of one UF of a day re-run alone."""

    home: Path
    day: dt.date
    uf: str | None = None

    def __post_init__(self) -> None:
        if self.uf is not None:
            object.__setattr__(self, "uf", self.uf.strip().upper())

    @property
    def scope(self) -> str:
        return self.uf or SCOPE_ALL

    @property
    def root(self) -> Path:
        day_dir = Path(self.home).absolute() / "pipeline" / self.day.isoformat()
        return day_dir if self.uf is None else day_dir / "uf" / self.uf

    @property
    def staging(self) -> Path:
        return self.root / "staging.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.parquet"

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def partition_record(self) -> Path:
        return self.root / "partition.json"

    @property
    def publication_record(self) -> Path:
        return self.root / "publication.json"


# -- step 1: extract ------------------------------------------------------------------------


def extract_day(work: DayWork, source: Source, *, today: dt.date) -> ExtractCounts:
    """The day's records from ``source`` into the staging object and the quarantine
    (``pipelines.extract.extract``: both appear whole or not at all)."""
    return extract(source.batches(), work.staging, work.quarantine, today=today, day=work.day, source=source)


def staging_counts(work: DayWork) -> ExtractCounts:
    if not work.staging.is_file():
        raise FlowError(f"o dia {work.day} ({work.scope}) ainda não foi extraído: falta {work.staging}")
    counts = read_counts(work.staging)
    if counts is None:
        raise FlowError(f"{work.staging} não traz os contadores da extração")
    return counts


# -- step 2: stage the files ----------------------------------------------------------------


def _file_record(f: PartitionedFile) -> dict[str, Any]:
    return {
        "operation": f.operation,
        "scope_kind": f.scope_kind,
        "uf": f.uf,
        "ibge6": f.ibge6,
        "file_name": f.file_name,
        "rows": f.rows,
        "bytes_csv": f.bytes_csv,
        "bytes_stored": f.bytes_stored,
        "sha256_csv": f.sha256_csv,
        "sha256_stored": f.sha256_stored,
        "content_type": f.content_type,
        "content_encoding": f.content_encoding,
        # Issue 12: the file's Parquet and, for a UF file, its indicator table.
        "representations": [
            {
                "kind": r.kind,
                "file_name": r.file_name,
                "rows": r.rows,
                "bytes": r.bytes,
                "sha256": r.sha256,
                "content_type": r.content_type,
            }
            for r in f.representations
        ],
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, sort_keys=True, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def stage_files(work: DayWork, *, writers: int = 1) -> PartitionResult:
    """Partition the staging object into the day's CSV.gz files (all UFs, or ``work.uf``
    alone) under ``work.files_dir``, replacing what an earlier run staged, and record
    the partitioner's accounting in ``partition.json``."""
    staging_counts(work)
    work.root.mkdir(parents=True, exist_ok=True)
    attempt = uuid.uuid4().hex[:12]
    fresh = work.root / f".files-{attempt}"
    result = partition_day(work.staging, fresh, day=work.day, uf=work.uf, writers=writers)
    # New files in place of the old ones; the old publication record no longer describes them.
    work.publication_record.unlink(missing_ok=True)
    work.partition_record.unlink(missing_ok=True)
    stale = work.root / f".files-old-{attempt}"
    if work.files_dir.exists():
        work.files_dir.rename(stale)
    fresh.rename(work.files_dir)
    shutil.rmtree(stale, ignore_errors=True)
    _write_json(
        work.partition_record,
        {
            "format": PARTITION_RECORD_FORMAT,
            "day": work.day.isoformat(),
            "uf": work.uf,
            "input_sha256": result.input_sha256,
            "counts": dataclasses.asdict(result.counts),
            "records": result.records,
            "compressed": result.compressed,
            "layout_version": result.layout_version,
            "seconds": result.seconds,
            "timings": result.timings,
            "files": [_file_record(f) for f in result.files],
            "empty_file": _file_record(result.empty_file) if result.empty_file is not None else None,
        },
    )
    return load_staged(work)


def load_staged(work: DayWork) -> PartitionResult:
    """The partition result ``stage_files`` recorded, its files under ``work.files_dir``."""
    try:
        record = json.loads(work.partition_record.read_text())
    except FileNotFoundError:
        raise FlowError(f"os arquivos de {work.day} ({work.scope}) não foram preparados: falta {work.partition_record}") from None
    if record.get("format") != PARTITION_RECORD_FORMAT:
        raise FlowError(f"{work.partition_record} em formato desconhecido: {record.get('format')!r}")

    def staged(entry: dict[str, Any]) -> PartitionedFile:
        entry = dict(entry)
        representations = tuple(
            Representation(path=work.files_dir / r["file_name"], **r) for r in entry.pop("representations", [])
        )
        return PartitionedFile(day=work.day, path=work.files_dir / entry["file_name"], representations=representations, **entry)

    return PartitionResult(
        day=work.day,
        uf=record["uf"],
        input_path=work.staging,
        input_sha256=record["input_sha256"],
        counts=ExtractCounts(**record["counts"]),
        records=record["records"],
        files=[staged(entry) for entry in record["files"]],
        staging_dir=work.files_dir,
        compressed=record["compressed"],
        empty_file=staged(record["empty_file"]) if record.get("empty_file") else None,
        layout_version=record["layout_version"],
        seconds=record["seconds"],
        timings=record.get("timings") or {},
    )


# -- step 3: publish ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PublicationRecord:
    """What the last publication of a day's staged files left in the catalog."""

    day: dt.date
    scope: str
    input_sha256: str
    changed: int
    unchanged: int
    files: int
    rows: int
    bytes_csv: int
    bytes_stored: int
    # The publication this run committed; None when nothing had changed.
    publication_version: int | None
    # The day's current manifest after this run (this run's, or the one already current).
    current_version: int
    manifest_key: str
    manifest_sha256: str
    storage_url: str
    seconds: float

    @property
    def manifest_location(self) -> str:
        """Where a person finds the manifest: a local path or an s3:// URL."""
        base = self.storage_url.rstrip("/")
        return f"{base}/{self.manifest_key}"


def publish_staged(work: DayWork, *, storage, catalog, threads: int = 8, keep_files: bool = False) -> PublicationRecord:
    """Publish the staged files (upload, read-back SHA-256, manifest, one catalog
    commit: ``serving.publish``), record the outcome in ``publication.json`` and,
    unless ``keep_files``, remove the staged copies the store now holds."""
    from pipelines.validation import REASON_LABELS
    from serving.publish import Publisher, staged_day_from

    started = time.perf_counter()
    result = load_staged(work)
    missing = [f.file_name for f in result.files if not f.path.is_file()]
    if missing and not _already_current(result, catalog):
        raise FlowError(
            f"{len(missing)} arquivo(s) preparado(s) sumiram de {work.files_dir} (ex.: {missing[0]}): prepare o dia de novo"
        )
    # (Already published and cleaned up: publishing again changes nothing and needs no file,
    # which makes re-running the publication a re-verification of what the store holds.)
    staged = staged_day_from(result, reason_labels=REASON_LABELS)
    outcome = Publisher(storage, catalog, threads=threads).publish(staged)
    latest = catalog.latest_publication(work.day)
    if latest is None:
        raise FlowError(f"o catálogo não tem publicação de {work.day} depois de publicar")
    manifest_key = outcome.manifest_key or latest.manifest_key
    if manifest_key == latest.manifest_key:
        manifest_sha256 = latest.manifest_sha256
    else:  # someone published the day right after us: our manifest's own digest
        from serving import manifest as manifests

        manifest_sha256 = manifests.sha256(storage.get_bytes(manifest_key))
    record = PublicationRecord(
        day=work.day,
        scope=work.scope,
        input_sha256=result.input_sha256,
        changed=outcome.changed,
        unchanged=outcome.unchanged,
        files=outcome.files,
        rows=outcome.rows,
        bytes_csv=outcome.bytes_csv,
        bytes_stored=outcome.bytes_stored,
        publication_version=outcome.publication_version,
        current_version=outcome.publication_version or latest.version,
        manifest_key=manifest_key,
        manifest_sha256=manifest_sha256,
        storage_url=storage.url,
        seconds=round(time.perf_counter() - started, 3),
    )
    _write_json(work.publication_record, {"format": PUBLICATION_RECORD_FORMAT, **dataclasses.asdict(record)})
    if not keep_files:
        shutil.rmtree(work.files_dir, ignore_errors=True)
    return record


def _already_current(result: PartitionResult, catalog) -> bool:
    """True when the catalog's current files in scope are exactly these staged files
    (same uncompressed content and layout), so publishing them changes nothing."""
    current = catalog.current_by_operation(result.day)
    staged = {f.operation: f for f in result.files}
    in_scope = {op: r for op, r in current.items() if result.uf is None or r.uf == result.uf}
    for operation, record in in_scope.items():
        f = staged.get(operation)
        expected = f.sha256_csv if f is not None else (result.empty_file.sha256_csv if result.empty_file else None)
        if record.sha256_csv != expected or record.layout_version != result.layout_version:
            return False
    return set(staged) <= set(in_scope)


def load_publication(work: DayWork) -> PublicationRecord:
    try:
        payload = json.loads(work.publication_record.read_text())
    except FileNotFoundError:
        raise FlowError(
            f"{work.day} ({work.scope}) não foi publicado por este pipeline: falta {work.publication_record}"
        ) from None
    if payload.pop("format", None) != PUBLICATION_RECORD_FORMAT:
        raise FlowError(f"{work.publication_record} em formato desconhecido")
    payload["day"] = dt.date.fromisoformat(payload["day"])
    return PublicationRecord(**payload)
