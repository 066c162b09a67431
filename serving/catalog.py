"""The catalog of published files: what the portal lists and serves.

Three tables. A ``publication`` is one committed publication of a day (all UFs,
or one UF re-run alone), numbered per day, with its manifest and the day's
source counts. A ``published_file`` is one version of one file (an operation
and a day); exactly one version per operation and day is current. Versions are
never deleted, so an old version stays addressable for audit. A
``published_representation`` is another form of a file version's content (its
typed Parquet; a UF file's indicator table), committed with it.

The catalog transaction that marks a publication's files current is the commit
point of a publication: until it commits, the portal lists the previous version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from serving import db

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Publication(Base):
    __tablename__ = "publication"
    __table_args__ = (sa.UniqueConstraint("day", "version", name="uq_publication_day_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date, index=True)
    version: Mapped[int]
    # "BR" for the whole day, or the UF re-run alone.
    scope: Mapped[str] = mapped_column(sa.String(2))
    manifest_key: Mapped[str] = mapped_column(sa.String(512))
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    input_sha256: Mapped[str] = mapped_column(sa.String(64))
    layout_version: Mapped[str] = mapped_column(sa.String(64))
    records_read: Mapped[int] = mapped_column(sa.BigInteger)
    records_valid: Mapped[int] = mapped_column(sa.BigInteger)
    records_quarantined: Mapped[int] = mapped_column(sa.BigInteger)
    files: Mapped[int]
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    bytes_csv: Mapped[int] = mapped_column(sa.BigInteger)
    bytes_stored: Mapped[int] = mapped_column(sa.BigInteger)
    published_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class PublishedFile(Base):
    __tablename__ = "published_file"
    __table_args__ = (
        # A day's files (current_files_of_day, manifests, publication planning): 0002.
        sa.Index("ix_published_file_day_operation", "day", "operation"),
        sa.UniqueConstraint("operation", "day", "version", name="uq_published_file_operation_day_version"),
        # One current version per operation and day, enforced by the database.
        sa.Index(
            "ux_published_file_current",
            "operation",
            "day",
            unique=True,
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        ),
        sa.CheckConstraint("scope_kind in ('uf', 'municipio')", name="scope_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(sa.ForeignKey("publication.id"), index=True)
    operation: Mapped[str] = mapped_column(sa.String(64), index=True)
    scope_kind: Mapped[str] = mapped_column(sa.String(16))
    uf: Mapped[str] = mapped_column(sa.String(2))
    ibge6: Mapped[str | None] = mapped_column(sa.String(6))
    day: Mapped[dt.date] = mapped_column(sa.Date)
    version: Mapped[int]
    object_key: Mapped[str] = mapped_column(sa.String(512), unique=True)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    bytes_csv: Mapped[int] = mapped_column(sa.BigInteger)
    bytes_stored: Mapped[int] = mapped_column(sa.BigInteger)
    sha256_csv: Mapped[str] = mapped_column(sa.String(64))
    sha256_stored: Mapped[str] = mapped_column(sa.String(64))
    content_type: Mapped[str] = mapped_column(sa.String(128))
    content_encoding: Mapped[str | None] = mapped_column(sa.String(32))
    layout_version: Mapped[str] = mapped_column(sa.String(64))
    published_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    is_current: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class PublishedRepresentation(Base):
    """Another form of a published file's content (migration 0003): ``parquet`` beside
    every CSV; ``indicadores.csv`` and ``indicadores.parquet`` beside every UF file."""

    __tablename__ = "published_representation"
    __table_args__ = (sa.UniqueConstraint("published_file_id", "kind", name="uq_published_representation_file_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    published_file_id: Mapped[int] = mapped_column(sa.ForeignKey("published_file.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    object_key: Mapped[str] = mapped_column(sa.String(512), unique=True)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content_type: Mapped[str] = mapped_column(sa.String(128))


@dataclass(frozen=True)
class RepresentationRecord:
    published_file_id: int
    kind: str
    object_key: str
    file_name: str
    rows: int
    bytes: int
    sha256: str
    content_type: str

    @classmethod
    def of(cls, row: PublishedRepresentation) -> "RepresentationRecord":
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object_key": self.object_key,
            "file_name": self.file_name,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "content_type": self.content_type,
        }


class FileIncident(Base):
    """A published object found not to match its row (issue 11): that version is served
    no more until a republication gives the file a new version."""

    __tablename__ = "file_incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    published_file_id: Mapped[int] = mapped_column(sa.ForeignKey("published_file.id"), unique=True)
    object_key: Mapped[str] = mapped_column(sa.String(512))
    detected_by: Mapped[str] = mapped_column(sa.String(16))  # portal, verify, scrub
    reason: Mapped[str] = mapped_column(sa.String(500))
    expected_sha256: Mapped[str] = mapped_column(sa.String(64))
    found_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    detected_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class FileRecord:
    """A published file as readers see it (detached from any session)."""

    id: int
    publication_id: int
    operation: str
    scope_kind: str
    uf: str
    ibge6: str | None
    day: dt.date
    version: int
    object_key: str
    file_name: str
    rows: int
    bytes_csv: int
    bytes_stored: int
    sha256_csv: str
    sha256_stored: str
    content_type: str
    content_encoding: str | None
    layout_version: str
    published_at: dt.datetime
    is_current: bool

    @classmethod
    def of(cls, row: PublishedFile) -> "FileRecord":
        published_at = row.published_at
        if published_at.tzinfo is None:  # SQLite returns naive datetimes; we store UTC
            published_at = published_at.replace(tzinfo=dt.timezone.utc)
        return cls(
            **{name: getattr(row, name) for name in cls.__dataclass_fields__ if name != "published_at"},
            published_at=published_at,
        )


T = TypeVar("T")

# IN-lists are sent in chunks this size (SQLite's and drivers' parameter limits).
_IN_CHUNK = 500


class PublicationConflict(Exception):
    """Another publication of the same day committed first: nothing was changed."""


def _chunks(values: Sequence[T], size: int = _IN_CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    offset: int
    limit: int


class Catalog:
    """Reads (and, through ``serving.publish``, writes) the catalog database."""

    PACKAGE = "serving"

    def __init__(self, url_or_engine: str | sa.Engine):
        self.engine = db.create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.url = self.engine.url.render_as_string(hide_password=False)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls) -> "Catalog":
        from serving.settings import ServingSettings

        return cls(ServingSettings().resolved_catalog_url)

    def upgrade(self) -> "Catalog":
        """Create or migrate the catalog tables (idempotent)."""
        db.upgrade(self.PACKAGE, self.url)
        return self

    def session(self) -> Session:
        return self.sessions()

    # -- reads ---------------------------------------------------------------------------

    def _current(self, operation: str):
        return sa.select(PublishedFile).where(PublishedFile.operation == operation, PublishedFile.is_current.is_(True))

    def years(self, operation: str) -> list[int]:
        year = sa.extract("year", PublishedFile.day)
        query = (
            sa.select(year)
            .where(PublishedFile.operation == operation, PublishedFile.is_current.is_(True))
            .distinct()
            .order_by(year.desc())
        )
        with self.session() as session:
            return [int(value) for value in session.scalars(query)]

    def months(self, operation: str, year: int) -> list[int]:
        month = sa.extract("month", PublishedFile.day)
        query = (
            sa.select(month)
            .where(
                PublishedFile.operation == operation,
                PublishedFile.is_current.is_(True),
                PublishedFile.day >= dt.date(year, 1, 1),
                PublishedFile.day <= dt.date(year, 12, 31),
            )
            .distinct()
            .order_by(month.desc())
        )
        with self.session() as session:
            return [int(value) for value in session.scalars(query)]

    def files(self, operation: str, year: int, month: int, *, offset: int = 0, limit: int = 10) -> Page[FileRecord]:
        """Current files of an operation in a month, newest day first."""
        first = dt.date(year, month, 1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        where = self._current(operation).where(PublishedFile.day >= first, PublishedFile.day <= last)
        with self.session() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(where.subquery())) or 0
            rows = session.scalars(where.order_by(PublishedFile.day.desc()).offset(offset).limit(limit)).all()
            return Page([FileRecord.of(row) for row in rows], int(total), offset, limit)

    def file(self, file_id: int) -> FileRecord | None:
        with self.session() as session:
            row = session.get(PublishedFile, file_id)
            return FileRecord.of(row) if row is not None else None

    def current_file(self, operation: str, day: dt.date) -> FileRecord | None:
        with self.session() as session:
            row = session.scalars(self._current(operation).where(PublishedFile.day == day)).one_or_none()
            return FileRecord.of(row) if row is not None else None

    def versions(self, operation: str, day: dt.date) -> list[FileRecord]:
        """Every version of a file, newest first (the audit trail)."""
        query = (
            sa.select(PublishedFile)
            .where(PublishedFile.operation == operation, PublishedFile.day == day)
            .order_by(PublishedFile.version.desc())
        )
        with self.session() as session:
            return [FileRecord.of(row) for row in session.scalars(query)]

    def current_files_of_day(self, day: dt.date) -> list[FileRecord]:
        query = (
            sa.select(PublishedFile)
            .where(PublishedFile.day == day, PublishedFile.is_current.is_(True))
            .order_by(PublishedFile.operation)
        )
        with self.session() as session:
            return [FileRecord.of(row) for row in session.scalars(query)]

    def representations(self, file_ids: Sequence[int]) -> dict[int, list[RepresentationRecord]]:
        """The representations of each file (by file id), in kind order."""
        result: dict[int, list[RepresentationRecord]] = {file_id: [] for file_id in file_ids}
        with self.session() as session:
            for chunk in _chunks(list(file_ids)):
                query = (
                    sa.select(PublishedRepresentation)
                    .where(PublishedRepresentation.published_file_id.in_(chunk))
                    .order_by(PublishedRepresentation.published_file_id, PublishedRepresentation.kind)
                )
                for row in session.scalars(query):
                    result[row.published_file_id].append(RepresentationRecord.of(row))
        return result

    def representation(self, file_id: int, kind: str) -> RepresentationRecord | None:
        query = sa.select(PublishedRepresentation).where(
            PublishedRepresentation.published_file_id == file_id, PublishedRepresentation.kind == kind
        )
        with self.session() as session:
            row = session.scalars(query).one_or_none()
            return RepresentationRecord.of(row) if row is not None else None

    def latest_publication(self, day: dt.date) -> Publication | None:
        query = sa.select(Publication).where(Publication.day == day).order_by(Publication.version.desc()).limit(1)
        with self.session() as session:
            return session.scalars(query).one_or_none()

    # -- verification (serving.verify) --------------------------------------------------------

    def published_days(self, since: dt.date | None = None) -> list[dt.date]:
        query = sa.select(Publication.day).distinct().order_by(Publication.day)
        if since is not None:
            query = query.where(Publication.day >= since)
        with self.session() as session:
            return list(session.scalars(query))

    def files_of_day(self, day: dt.date) -> list[FileRecord]:
        """Every version of every file of the day (old versions stay addressable)."""
        query = sa.select(PublishedFile).where(PublishedFile.day == day).order_by(PublishedFile.id)
        with self.session() as session:
            return [FileRecord.of(row) for row in session.scalars(query)]

    def manifests_of_day(self, day: dt.date) -> list[tuple[str, str]]:
        """(manifest key, its SHA-256) of every publication of the day."""
        query = (
            sa.select(Publication.manifest_key, Publication.manifest_sha256)
            .where(Publication.day == day)
            .order_by(Publication.version)
        )
        with self.session() as session:
            return [(key, digest) for key, digest in session.execute(query)]

    def incident(self, file_id: int, session: Session | None = None) -> FileIncident | None:
        query = sa.select(FileIncident).where(FileIncident.published_file_id == file_id)
        if session is not None:
            return session.scalar(query)
        with self.session() as own:
            return own.scalar(query)

    def record_incident(self, record: FileRecord, *, detected_by: str, reason: str, found_sha256: str | None = None) -> bool:
        """Mark a file version damaged (once); True when this call recorded it."""
        try:
            with self.session() as session, session.begin():
                if self.incident(record.id, session) is not None:
                    return False
                session.add(
                    FileIncident(
                        published_file_id=record.id,
                        object_key=record.object_key,
                        detected_by=detected_by,
                        reason=reason[:500],
                        expected_sha256=record.sha256_stored,
                        found_sha256=found_sha256,
                        detected_at=utcnow(),
                    )
                )
        except sa.exc.IntegrityError:  # recorded meanwhile by another process
            return False
        return True

    # -- writes and publication planning (serving.publish) ---------------------------------

    def current_by_operation(self, day: dt.date) -> dict[str, FileRecord]:
        """The day's current files keyed by operation."""
        return {record.operation: record for record in self.current_files_of_day(day)}

    def max_versions(self, day: dt.date) -> dict[str, int]:
        """The highest version of every operation of the day (current or not)."""
        query = (
            sa.select(PublishedFile.operation, sa.func.max(PublishedFile.version))
            .where(PublishedFile.day == day)
            .group_by(PublishedFile.operation)
        )
        with self.session() as session:
            return {operation: int(version) for operation, version in session.execute(query)}

    def next_publication_version(self, day: dt.date) -> int:
        query = sa.select(sa.func.max(Publication.version)).where(Publication.day == day)
        with self.session() as session:
            return int(session.scalar(query) or 0) + 1

    def already_published(self, day: dt.date, input_sha256: str, layout_version: str, uf: str | None = None) -> bool:
        """True when every current file in scope came from publications of this very input
        and layout, and every UF file in scope exists: publishing it again would change
        nothing, so the caller may skip partitioning altogether."""
        query = (
            sa.select(PublishedFile.operation, PublishedFile.scope_kind, Publication.input_sha256, Publication.layout_version)
            .join(Publication, Publication.id == PublishedFile.publication_id)
            .where(PublishedFile.day == day, PublishedFile.is_current.is_(True))
        )
        if uf is not None:
            query = query.where(PublishedFile.uf == uf)
        with self.session() as session:
            rows = session.execute(query).all()
        if not rows or any(sha != input_sha256 or layout != layout_version for _, _, sha, layout in rows):
            return False
        uf_files = sum(1 for _, kind, _, _ in rows if kind == "uf")
        return uf_files == (1 if uf is not None else 27)

    def commit_publication(
        self,
        publication: dict[str, Any],
        files: Sequence[dict[str, Any]],
        expected_current: dict[str, int | None],
        *,
        inside_transaction: Callable[[str], None] | None = None,
    ) -> int:
        """The commit point of a publication, in ONE transaction: check that the day's
        current versions are still the ones the publication was planned against
        (``expected_current``: operation -> current version, None for a new file), mark
        them no longer current, insert the publication and its files as current.
        Raises ``PublicationConflict`` (and changes nothing) when another publication
        got there first. Returns the publication id."""
        day = publication["day"]
        now = publication.get("published_at") or utcnow()
        operations = sorted(expected_current)
        step = inside_transaction or (lambda _name: None)
        try:
            with self.session() as session, session.begin():
                found: dict[str, int] = {}
                for chunk in _chunks(operations):
                    query = sa.select(PublishedFile.operation, PublishedFile.version).where(
                        PublishedFile.day == day, PublishedFile.is_current.is_(True), PublishedFile.operation.in_(chunk)
                    )
                    if session.get_bind().dialect.name == "postgresql":
                        query = query.with_for_update()
                    found.update({op: int(version) for op, version in session.execute(query)})
                for operation in operations:
                    if found.get(operation) != expected_current[operation]:
                        raise PublicationConflict(
                            f"{operation} de {day} mudou durante a publicação "
                            f"(versão corrente {found.get(operation)}, esperada {expected_current[operation]})"
                        )
                replaced = [op for op in operations if expected_current[op] is not None]
                for chunk in _chunks(replaced):
                    result = cast(
                        CursorResult[Any],
                        session.execute(  # an UPDATE: a cursor result, with its rowcount
                            sa.update(PublishedFile)
                            .where(
                                PublishedFile.day == day, PublishedFile.is_current.is_(True), PublishedFile.operation.in_(chunk)
                            )
                            .values(is_current=False)
                            .execution_options(synchronize_session=False)
                        ),
                    )
                    if result.rowcount != len(chunk):
                        raise PublicationConflict(f"os arquivos correntes de {day} mudaram durante a publicação")
                step("catalog_flipped")
                row = Publication(**{**publication, "published_at": now})
                session.add(row)
                session.flush()
                extra = {f["object_key"]: f.get("representations") or () for f in files}
                if files:
                    session.execute(
                        sa.insert(PublishedFile),
                        [
                            {
                                **{k: v for k, v in f.items() if k != "representations"},
                                "publication_id": row.id,
                                "published_at": now,
                                "is_current": True,
                            }
                            for f in files
                        ],
                    )
                if any(extra.values()):
                    ids = session.execute(
                        sa.select(PublishedFile.object_key, PublishedFile.id).where(PublishedFile.publication_id == row.id)
                    ).all()
                    session.execute(
                        sa.insert(PublishedRepresentation),
                        [{**r, "published_file_id": file_id} for key, file_id in ids for r in extra[key]],
                    )
                step("catalog_inserted")
                return row.id
        except sa.exc.IntegrityError as exc:
            raise PublicationConflict(f"outra publicação de {day} foi registrada ao mesmo tempo") from exc

    def referenced_keys(self, day: dt.date | None = None) -> set[str]:
        """Every object key the catalog points at (all versions, and manifests)."""
        files = sa.select(PublishedFile.object_key)
        manifests = sa.select(Publication.manifest_key)
        representations = sa.select(PublishedRepresentation.object_key).join(
            PublishedFile, PublishedFile.id == PublishedRepresentation.published_file_id
        )
        if day is not None:
            files = files.where(PublishedFile.day == day)
            manifests = manifests.where(Publication.day == day)
            representations = representations.where(PublishedFile.day == day)
        with self.session() as session:
            return set(session.scalars(files)) | set(session.scalars(manifests)) | set(session.scalars(representations))
