"""Is what is stored still what was published? Re-read objects and compare.

``verify_days`` re-reads every object the catalog points at for the days asked (every
version of every file, and each publication's manifest): the size and the SHA-256 of
the bytes read back must be the catalog's, each manifest's bytes must hash to the
digest its publication recorded, and every file the manifest lists must agree with the
catalog row of the same object (size, digest). ``damaged`` is the same reading for a
list of catalog rows (republication uses it: a damaged current object is rewritten
under a new version even when its content did not change).

No Dagster, no FastAPI: ``vacina-d1 verify``, the Dagster scrub job and publication
call these functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from serving import manifest as manifests
from serving.catalog import Catalog, FileRecord
from serving.storage import ObjectNotFound, Storage, StorageError

DEFAULT_THREADS = 4


@dataclass(frozen=True)
class Problem:
    key: str
    reason: str
    file_id: int | None = None
    found_sha256: str | None = None

    def as_dict(self) -> dict:
        return {"key": self.key, "reason": self.reason, "file_id": self.file_id}


@dataclass
class Report:
    days: list[dt.date] = field(default_factory=list)
    objects: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "days": len(self.days),
            "first_day": min(self.days).isoformat() if self.days else None,
            "last_day": max(self.days).isoformat() if self.days else None,
            "objects": self.objects,
            "bytes_read": self.bytes_read,
            "bad": len(self.problems),
            "bad_keys": sorted({p.key for p in self.problems}),
            "problems": [p.as_dict() for p in self.problems[:50]],
        }


def read_back(storage: Storage, key: str) -> tuple[int, str]:
    """Size and SHA-256 of the stored bytes (raises ObjectNotFound / StorageError)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in storage.iter_range(key):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def file_problem(storage: Storage, record: FileRecord) -> tuple[Problem | None, int]:
    try:
        size, found = read_back(storage, record.object_key)
    except ObjectNotFound:
        return Problem(record.object_key, "objeto ausente do armazenamento", record.id), 0
    except StorageError as exc:
        return Problem(record.object_key, f"ilegível: {exc}", record.id), 0
    if size != record.bytes_stored:
        return Problem(record.object_key, f"tamanho {size} != {record.bytes_stored} do catálogo", record.id, found), size
    if found != record.sha256_stored:
        return Problem(record.object_key, f"SHA-256 {found} != {record.sha256_stored} do catálogo", record.id, found), size
    return None, size


def damaged(storage: Storage, records: Sequence[FileRecord], *, threads: int = DEFAULT_THREADS) -> dict[int, Problem]:
    """The catalog rows whose stored object no longer matches them, by file id."""
    if not records:
        return {}
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="vacina-d1-verify") as pool:
        results = list(pool.map(lambda r: file_problem(storage, r)[0], records))
    return {r.id: p for r, p in zip(records, results) if p is not None}


def _manifest_problems(
    storage: Storage, key: str, expected_sha256: str, rows: dict[str, FileRecord]
) -> tuple[list[Problem], int]:
    try:
        data = storage.get_bytes(key)
    except ObjectNotFound:
        return [Problem(key, "manifesto ausente do armazenamento")], 0
    except StorageError as exc:
        return [Problem(key, f"manifesto ilegível: {exc}")], 0
    if manifests.sha256(data) != expected_sha256:
        return [Problem(key, f"SHA-256 do manifesto {manifests.sha256(data)} != {expected_sha256} do catálogo")], len(data)
    problems = []
    try:
        listed = manifests.loads(data)["files"]
    except (ValueError, KeyError) as exc:
        return [Problem(key, f"manifesto ilegível: {exc}")], len(data)
    for entry in listed:
        row = rows.get(entry.get("object_key"))
        if row is None:
            problems.append(Problem(entry.get("object_key") or key, f"listado no manifesto {key} e ausente do catálogo"))
        elif (entry.get("bytes_stored"), entry.get("sha256_stored")) != (row.bytes_stored, row.sha256_stored):
            problems.append(Problem(row.object_key, f"manifesto {key} e catálogo divergem (tamanho ou SHA-256)", row.id))
    return problems, len(data)


def verify_days(storage: Storage, catalog: Catalog, days: Iterable[dt.date], *, threads: int = DEFAULT_THREADS) -> Report:
    report = Report(days=sorted(set(days)))
    for day in report.days:
        records = catalog.files_of_day(day)
        rows = {r.object_key: r for r in records}
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="vacina-d1-verify") as pool:
            for problem, size in pool.map(lambda r: file_problem(storage, r), records):
                report.objects += 1
                report.bytes_read += size
                if problem is not None:
                    report.problems.append(problem)
        for key, digest in catalog.manifests_of_day(day):
            problems, size = _manifest_problems(storage, key, digest, rows)
            report.objects += 1
            report.bytes_read += size
            report.problems.extend(problems)
    return report


def record_incidents(catalog: Catalog, report: Report, *, detected_by: str) -> list[Problem]:
    """Mark every damaged file version of the report (the portal then answers 503 for
    it until it is republished); returns the problems recorded for the first time."""
    new = []
    for problem in report.problems:
        if problem.file_id is None:
            continue
        record = catalog.file(problem.file_id)
        if record is not None and catalog.record_incident(
            record, detected_by=detected_by, reason=problem.reason, found_sha256=problem.found_sha256
        ):
            new.append(problem)
    return new
