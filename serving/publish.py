"""Atomic, idempotent, versioned publication of a staged day to a Storage and the Catalog.

The steps, in order:

1. plan      — compare every staged file with the catalog's current version of its
               operation (SHA-256 of the uncompressed CSV and layout version); only
               changed files get a new version (per operation: current + 1). Nothing
               changed: stop here, no new version, no new object.
2. upload    — each changed file under a NEW key that carries its version and this
               attempt's token (``d1/AAAA/MM/DD/<operation>/v0003-<token>/<file>``),
               so no existing object is ever overwritten and no reader is disturbed.
3. verify    — read every uploaded object back and compare its SHA-256 with the one
               computed while partitioning (not a trusted ETag or metadata).
4. manifest  — the day's manifest (every current file after this publication, the
               source counts) under its own new key, read back and verified too.
5. commit    — ONE catalog transaction: check nobody published the day meanwhile,
               mark the replaced versions not current, insert the publication and its
               files as current. This is the commit point.

A failure anywhere before the commit leaves the previous version current, intact
and listable; what an unfinished attempt uploaded is unreferenced and harmless, and
``collect_garbage`` removes it once it is older than a few hours. Versions are
never deleted: an old version stays addressable (``Catalog.versions``).

A full-day publication also gives a new, header-only version to any operation that
was published before and has no records now (a municipality whose records were all
corrected away): the portal then shows the file empty instead of serving stale rows.
A one-UF publication touches only that UF's file and its municipalities' files.

This module takes plain values (``StagedDay``) and imports nothing from ``pipelines``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from serving import datapackage
from serving import manifest as manifests
from serving.catalog import Catalog, FileRecord, PublicationConflict, utcnow
from serving.storage import ObjectNotFound, Storage, StorageError
from serving.verify import damaged

SCOPE_ALL = "BR"
KEY_ROOT = "d1"
DEFAULT_THREADS = 8

STEPS = ("planned", "uploaded", "verified", "manifest_written", "catalog_flipped", "catalog_inserted", "committed")


class PublishError(Exception):
    """A publication that could not complete: one line saying why (nothing was committed)."""


@dataclass(frozen=True)
class StagedRepresentation:
    """Another form of a staged file's content (its typed Parquet, a UF's indicators)."""

    kind: str
    file_name: str
    path: Path
    rows: int
    bytes: int
    sha256: str
    content_type: str

    @classmethod
    def of(cls, staged: Any) -> "StagedRepresentation":
        return cls(**{name: getattr(staged, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class StagedFile:
    operation: str
    scope_kind: str
    uf: str
    ibge6: str | None
    file_name: str
    path: Path
    rows: int
    bytes_csv: int
    bytes_stored: int
    sha256_csv: str
    sha256_stored: str
    content_type: str
    content_encoding: str | None = None
    representations: tuple[StagedRepresentation, ...] = ()

    @classmethod
    def of(cls, staged: Any) -> "StagedFile":
        """From any object with these attributes (e.g. ``pipelines.partition.PartitionedFile``)."""
        values = {name: getattr(staged, name) for name in cls.__dataclass_fields__ if name != "representations"}
        values["representations"] = tuple(StagedRepresentation.of(r) for r in getattr(staged, "representations", ()))
        return cls(**values)


@dataclass(frozen=True)
class StagedDay:
    """A partitioned day, ready to publish."""

    day: dt.date
    scope: str  # "BR" (the whole day) or the UF re-run alone
    input_sha256: str
    layout_version: str
    counts: Mapping[str, Any]  # read, valid, quarantined, outside_day, reasons, source
    files: Sequence[StagedFile]
    # The header-only file (any operation): the content given to operations that lost all records.
    empty_file: StagedFile | None = None
    reason_labels: Mapping[str, str] | None = None
    # Table Schemas ("registros", "indicadores") for the day's data package (serving.datapackage).
    table_schemas: Mapping[str, Any] | None = None


@dataclass
class PublishOutcome:
    day: dt.date
    scope: str
    files: int
    changed: int
    unchanged: int
    rows: int
    bytes_csv: int
    bytes_stored: int
    publication_id: int | None = None
    publication_version: int | None = None
    manifest_key: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Change:
    staged: StagedFile
    version: int
    key: str
    previous_version: int | None
    # (representation, its object key), under the same version prefix as the file.
    representations: tuple[tuple[StagedRepresentation, str], ...] = ()


@dataclass(frozen=True)
class _Object:
    """One object to upload and verify: a file or one of its representations."""

    key: str
    path: Path
    size: int
    sha256: str
    content_type: str
    content_encoding: str | None
    metadata: Mapping[str, str]


def _restageable(f: StagedFile) -> bool:
    return f.path.is_file() and all(r.path.is_file() for r in f.representations)


def _objects(change: _Change) -> list[_Object]:
    f = change.staged
    objects = [
        _Object(
            change.key,
            f.path,
            f.bytes_stored,
            f.sha256_stored,
            f.content_type,
            f.content_encoding,
            {"sha256": f.sha256_stored, "sha256-csv": f.sha256_csv},
        )
    ]
    for r, key in change.representations:
        objects.append(_Object(key, r.path, r.bytes, r.sha256, r.content_type, None, {"sha256": r.sha256}))
    return objects


def object_key(day: dt.date, operation: str, version: int, attempt: str, file_name: str) -> str:
    return f"{KEY_ROOT}/{day:%Y/%m/%d}/{operation}/v{version:04d}-{attempt}/{file_name}"


def manifest_key(day: dt.date, publication_version: int, attempt: str) -> str:
    return f"{KEY_ROOT}/{day:%Y/%m/%d}/manifestos/v{publication_version:04d}-{attempt}.json"


def day_prefix(day: dt.date | None) -> str:
    return f"{KEY_ROOT}/" if day is None else f"{KEY_ROOT}/{day:%Y/%m/%d}/"


class Publisher:
    """Publishes staged days. ``on_step(name)`` is called at every step boundary
    (``STEPS``; the two ``catalog_*`` ones inside the commit transaction): an
    exception raised there aborts the publication at that point (tests inject
    failures this way)."""

    def __init__(
        self,
        storage: Storage,
        catalog: Catalog,
        *,
        threads: int = DEFAULT_THREADS,
        on_step: Callable[[str], None] | None = None,
    ):
        self.storage = storage
        self.catalog = catalog
        self.threads = max(1, threads)
        self.on_step = on_step or (lambda _name: None)
        self._stored: dict[str, Any] = {}  # object key -> what the store said it stored

    # -- the steps ---------------------------------------------------------------------------

    def _scope_files(self, staged: StagedDay, current: dict[str, FileRecord]) -> list[StagedFile]:
        """The staged files plus, for operations in scope that lost all records, a
        header-only file."""
        scope = staged.scope
        files = list(staged.files)
        by_operation = {f.operation: f for f in files}
        if len(by_operation) != len(files):
            raise PublishError("a preparação tem duas vezes o mesmo arquivo")
        if scope != SCOPE_ALL:
            outside = [f.operation for f in files if f.uf != scope]
            if outside:
                raise PublishError(f"a publicação só da UF {scope} trouxe arquivos de outra UF: {outside[:3]}")
        for operation, record in sorted(current.items()):
            if operation in by_operation or (scope != SCOPE_ALL and record.uf != scope):
                continue
            if staged.empty_file is None:
                raise PublishError(f"{operation} já foi publicado e não tem registros agora, e falta o arquivo vazio")
            files.append(
                replace(
                    staged.empty_file,
                    operation=operation,
                    scope_kind=record.scope_kind,
                    uf=record.uf,
                    ibge6=record.ibge6,
                    file_name=record.file_name,
                    # The header-only Parquet is named after the file it stands beside.
                    representations=tuple(
                        replace(r, file_name=record.file_name.removesuffix(".gz").removesuffix(".csv") + ".parquet")
                        for r in staged.empty_file.representations
                        if r.kind == "parquet"
                    ),
                )
            )
        return files

    def _plan(self, staged: StagedDay, attempt: str) -> tuple[list[_Change], list[StagedFile], dict[str, FileRecord]]:
        current = self.catalog.current_by_operation(staged.day)
        max_versions = self.catalog.max_versions(staged.day)
        kinds = {
            file_id: {r.kind for r in reps}
            for file_id, reps in self.catalog.representations([r.id for r in current.values()]).items()
        }
        files = self._scope_files(staged, current)
        unchanged = [
            current[f.operation]
            for f in files
            if f.operation in current
            and current[f.operation].sha256_csv == f.sha256_csv
            and current[f.operation].layout_version == staged.layout_version
        ]
        # Same content, but the stored object no longer is what was published: rewrite it (issue 11),
        # from the staged bytes when they are still here; without them the publication's
        # read-back check reports the object instead.
        broken = damaged(self.storage, unchanged, threads=self.threads)
        changes = []
        for f in files:
            record = current.get(f.operation)
            if (
                record is not None
                and record.sha256_csv == f.sha256_csv
                and record.layout_version == staged.layout_version
                and kinds.get(record.id, set()) == {r.kind for r in f.representations}
                and (record.id not in broken or not _restageable(f))
            ):
                continue
            version = max_versions.get(f.operation, 0) + 1
            key = object_key(staged.day, f.operation, version, attempt, f.file_name)
            extra = tuple((r, object_key(staged.day, f.operation, version, attempt, r.file_name)) for r in f.representations)
            changes.append(_Change(f, version, key, record.version if record is not None else None, extra))
        return changes, files, current

    def _map(self, function: Callable[[Any], Any], changes: Sequence[Any]) -> None:
        if self.threads == 1 or len(changes) < 2:
            for change in changes:
                function(change)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="vacina-d1-publish") as pool:
            for _ in pool.map(function, changes):
                pass

    def _upload(self, item: _Object, uploaded_at: str) -> None:
        self._stored[item.key] = self.storage.put_file(
            item.key,
            item.path,
            content_type=item.content_type,
            content_encoding=item.content_encoding,
            metadata={**item.metadata, "uploaded-at": uploaded_at},
        )

    def _verify(self, item: _Object) -> None:
        """Read the object back (one GET): its size and SHA-256 must be the staged ones.
        A local store hashed the bytes as it stored them: that digest is the read-back."""
        stored = self._stored.get(item.key)
        if stored is not None and stored.sha256_stored is not None:
            if stored.size != item.size or stored.sha256_stored != item.sha256:
                raise PublishError(
                    f"objeto {item.key} não confere com o preparado "
                    f"(SHA-256 {stored.sha256_stored[:12]}…, esperado {item.sha256[:12]}…)"
                )
            return
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in self.storage.iter_range(item.key):
                digest.update(chunk)
                size += len(chunk)
        except ObjectNotFound:
            raise PublishError(f"objeto enviado não encontrado na verificação: {item.key}") from None
        if size != item.size or digest.hexdigest() != item.sha256:
            raise PublishError(
                f"objeto {item.key} não confere com o preparado "
                f"(SHA-256 {digest.hexdigest()[:12]}…, esperado {item.sha256[:12]}…)"
            )

    def _manifest(
        self, staged: StagedDay, version: int, attempt: str, changes: Sequence[_Change], current: dict[str, FileRecord]
    ) -> tuple[str, str]:
        entries: dict[str, manifests.ManifestFile] = {}
        current_representations = self.catalog.representations([r.id for r in current.values()])
        for operation, r in current.items():
            entries[operation] = manifests.ManifestFile(
                r.operation,
                r.scope_kind,
                r.uf,
                r.ibge6,
                r.day,
                r.version,
                r.rows,
                r.bytes_csv,
                r.bytes_stored,
                r.sha256_stored,
                r.sha256_csv,
                r.layout_version,
                r.object_key,
                r.file_name,
                r.content_type,
                r.content_encoding,
                changed=False,
                representations=tuple(x.to_json() for x in current_representations.get(r.id, [])),
            )
        for c in changes:
            f = c.staged
            entries[f.operation] = manifests.ManifestFile(
                f.operation,
                f.scope_kind,
                f.uf,
                f.ibge6,
                staged.day,
                c.version,
                f.rows,
                f.bytes_csv,
                f.bytes_stored,
                f.sha256_stored,
                f.sha256_csv,
                staged.layout_version,
                c.key,
                f.file_name,
                f.content_type,
                f.content_encoding,
                changed=True,
                representations=tuple(_representation_row(r, key) for r, key in c.representations),
            )
        document = manifests.build(
            day=staged.day,
            publication_version=version,
            scope=staged.scope,
            input_sha256=staged.input_sha256,
            layout_version=staged.layout_version,
            counts=staged.counts,
            files=entries.values(),
            reason_labels=staged.reason_labels,
        )
        data = manifests.dumps(document)
        digest = manifests.sha256(data)
        key = manifest_key(staged.day, version, attempt)
        self.storage.put_bytes(
            key, data, content_type="application/json", metadata={"sha256": digest, "uploaded-at": _iso(utcnow())}
        )
        if self.storage.sha256(key) != digest:
            raise PublishError(f"manifesto {key} não confere depois de gravado")
        return key, digest

    def _current_view(self, staged: StagedDay) -> None:
        datapackage.refresh_quietly(self.storage, self.catalog, staged.day, staged.table_schemas)

    # -- the whole ---------------------------------------------------------------------------

    def publish(self, staged: StagedDay) -> PublishOutcome:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        tick = time.perf_counter()
        attempt = uuid.uuid4().hex[:16]
        changes, files, current = self._plan(staged, attempt)
        outcome = PublishOutcome(
            day=staged.day,
            scope=staged.scope,
            files=len(files),
            changed=len(changes),
            unchanged=len(files) - len(changes),
            rows=sum(f.rows for f in files),
            bytes_csv=sum(f.bytes_csv for f in files),
            bytes_stored=sum(f.bytes_stored for f in files),
        )
        timings["plan"] = time.perf_counter() - tick
        self.on_step("planned")
        if not changes:
            self._current_view(staged)
            outcome.seconds = round(time.perf_counter() - started, 3)
            outcome.timings = {k: round(v, 3) for k, v in timings.items()}
            return outcome

        tick = time.perf_counter()
        uploaded_at = _iso(utcnow())
        objects = [item for c in changes for item in _objects(c)]
        with self.storage.deferred_sync():  # a local store syncs once, not twice per object
            self._map(lambda item: self._upload(item, uploaded_at), objects)
        timings["upload"] = time.perf_counter() - tick
        self.on_step("uploaded")

        tick = time.perf_counter()
        self._map(self._verify, objects)
        timings["verify"] = time.perf_counter() - tick
        self.on_step("verified")

        tick = time.perf_counter()
        version = self.catalog.next_publication_version(staged.day)
        key, digest = self._manifest(staged, version, attempt, changes, current)
        timings["manifest"] = time.perf_counter() - tick
        self.on_step("manifest_written")

        tick = time.perf_counter()
        changed_files = [c.staged for c in changes]
        publication = {
            "day": staged.day,
            "version": version,
            "scope": staged.scope,
            "manifest_key": key,
            "manifest_sha256": digest,
            "input_sha256": staged.input_sha256,
            "layout_version": staged.layout_version,
            "records_read": int(staged.counts.get("read", 0)),
            "records_valid": int(staged.counts.get("valid", 0)),
            "records_quarantined": int(staged.counts.get("quarantined", 0)),
            "files": len(changed_files),
            "rows": sum(f.rows for f in changed_files),
            "bytes_csv": sum(f.bytes_csv for f in changed_files),
            "bytes_stored": sum(f.bytes_stored for f in changed_files),
        }
        rows = [
            {
                "operation": c.staged.operation,
                "scope_kind": c.staged.scope_kind,
                "uf": c.staged.uf,
                "ibge6": c.staged.ibge6,
                "day": staged.day,
                "version": c.version,
                "object_key": c.key,
                "file_name": c.staged.file_name,
                "rows": c.staged.rows,
                "bytes_csv": c.staged.bytes_csv,
                "bytes_stored": c.staged.bytes_stored,
                "sha256_csv": c.staged.sha256_csv,
                "sha256_stored": c.staged.sha256_stored,
                "content_type": c.staged.content_type,
                "content_encoding": c.staged.content_encoding,
                "layout_version": staged.layout_version,
                "representations": [_representation_row(r, key) for r, key in c.representations],
            }
            for c in changes
        ]
        try:
            publication_id = self.catalog.commit_publication(
                publication,
                rows,
                {c.staged.operation: c.previous_version for c in changes},
                inside_transaction=self.on_step,
            )
        except PublicationConflict as exc:
            raise PublishError(f"{exc}; nada foi alterado, publique de novo") from exc
        timings["commit"] = time.perf_counter() - tick
        self.on_step("committed")
        tick = time.perf_counter()
        self._current_view(staged)
        timings["current_view"] = time.perf_counter() - tick
        outcome.publication_id = publication_id
        outcome.publication_version = version
        outcome.manifest_key = key
        outcome.seconds = round(time.perf_counter() - started, 3)
        outcome.timings = {k: round(v, 3) for k, v in timings.items()}
        return outcome


def _representation_row(r: StagedRepresentation, key: str) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "object_key": key,
        "file_name": r.file_name,
        "rows": r.rows,
        "bytes": r.bytes,
        "sha256": r.sha256,
        "content_type": r.content_type,
    }


def publish_day(storage: Storage, catalog: Catalog, staged: StagedDay, **options: Any) -> PublishOutcome:
    return Publisher(storage, catalog, **options).publish(staged)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def collect_garbage(
    storage: Storage,
    catalog: Catalog,
    *,
    older_than_hours: float = 24.0,
    day: dt.date | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    threads: int = DEFAULT_THREADS,
) -> list[str]:
    """Delete objects no catalog row points at (what unfinished publications left)
    that were uploaded more than ``older_than_hours`` ago. Objects without our
    ``uploaded-at`` metadata are never touched. Returns the keys removed.

    Run it apart from publications of the same day (e.g. after them, on schedule):
    an attempt in progress has young objects, which the age threshold spares."""
    now = now or utcnow()
    threshold = now - dt.timedelta(hours=older_than_hours)
    # Listed before reading the catalog: an object committed in between is then
    # found referenced, never taken for an orphan.
    keys = list(storage.list_keys(day_prefix(day)))
    referenced = catalog.referenced_keys(day)
    candidates = [key for key in keys if key not in referenced and not datapackage.is_view_key(key)]

    def expired(key: str) -> bool:
        info = storage.head(key)
        stamp = (info.metadata if info else {}).get("uploaded-at")
        if not stamp:
            return False
        try:
            uploaded = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return False
        if uploaded > threshold:
            return False
        if not dry_run:
            storage.delete(key)
        return True

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="vacina-d1-gc") as pool:
        flags = list(pool.map(expired, candidates))
    return [key for key, removed in zip(candidates, flags) if removed]


@dataclass
class Leftovers:
    """What ``collect_leftovers`` found (and removed, unless a dry run)."""

    tmp_objects: list[str] = field(default_factory=list)
    staging_dirs: list[str] = field(default_factory=list)
    bytes_freed: int = 0


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file():
                total += item.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _staging_candidates(home: Path) -> Iterable[Path]:
    """Working trees only an interrupted attempt leaves: ``vacina-d1 publish``'s
    ``<home>/staging/<day>-<scope>-<token>`` (removed when it ends, however it ends,
    unless the process dies), and the pipeline's ``.files-<attempt>`` /
    ``.files-old-<attempt>`` and ``.*.tmp`` records under ``<home>/pipeline``."""
    staging = home / "staging"
    if staging.is_dir():
        yield from (p for p in staging.iterdir())
    pipeline = home / "pipeline"
    if pipeline.is_dir():
        for day_dir in pipeline.iterdir():
            roots = [day_dir, *((day_dir / "uf").iterdir() if (day_dir / "uf").is_dir() else [])]
            for root in roots:
                if root.is_dir():
                    yield from (
                        p
                        for p in root.iterdir()
                        if p.name.startswith(".") and (p.name.startswith(".files-") or p.name.endswith(".tmp"))
                    )


def collect_leftovers(
    storage: Storage,
    home: str | Path | None,
    *,
    older_than_hours: float = 24.0,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> Leftovers:
    """Remove what attempts that never committed left outside the catalog's reach: the
    store's ``.tmp`` half-written objects and the local staging trees, older than the
    threshold (a running attempt's are young). Returns what was (or would be) freed."""
    threshold = (now or utcnow()).timestamp() - older_than_hours * 3600
    found = Leftovers()
    for name, size, mtime in list(storage.temporary_files(KEY_ROOT + "/")):
        if mtime <= threshold:
            if not dry_run:
                storage.delete_temporary(name)
            found.tmp_objects.append(name)
            found.bytes_freed += size
    if home is not None:
        for path in list(_staging_candidates(Path(home))):
            try:
                if path.stat().st_mtime > threshold:
                    continue
                size = _tree_size(path)
            except FileNotFoundError:
                continue
            if not dry_run:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            found.staging_dirs.append(str(path))
            found.bytes_freed += size
    return found


def staged_day_from(result: Any, *, reason_labels: Mapping[str, str] | None = None) -> StagedDay:
    """A ``StagedDay`` from a partition result (any object with ``pipelines.partition.PartitionResult``'s
    attributes), so callers never build one by hand."""
    counts = result.counts
    counts_map = (
        counts
        if isinstance(counts, Mapping)
        else {name: getattr(counts, name) for name in ("read", "valid", "quarantined", "outside_day", "reasons", "source")}
    )
    return StagedDay(
        day=result.day,
        scope=result.uf or SCOPE_ALL,
        input_sha256=result.input_sha256,
        layout_version=result.layout_version,
        counts=counts_map,
        files=[StagedFile.of(f) for f in result.files],
        empty_file=StagedFile.of(result.empty_file) if getattr(result, "empty_file", None) is not None else None,
        reason_labels=reason_labels,
        table_schemas=getattr(result, "table_schemas", None),
    )


def verify_publication(storage: Storage, records: Iterable[FileRecord], *, threads: int = DEFAULT_THREADS) -> list[str]:
    """Problems found reading the catalog's files back from storage (empty when all is well)."""

    def problem(record: FileRecord) -> str | None:
        try:
            digest = storage.sha256(record.object_key)
        except StorageError as exc:
            return f"{record.object_key}: {exc}"
        if digest != record.sha256_stored:
            return f"{record.object_key}: SHA-256 {digest} != {record.sha256_stored}"
        return None

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="vacina-d1-verify") as pool:
        return [p for p in pool.map(problem, list(records)) if p is not None]
