"""The portal's tables, on their own ``Base`` (their own Alembic history and version
table, ``alembic_version_portal_api``) in the catalog's database.

Identity: a user (CPF) is granted credentials; a credential is the system of an
establishment (number such as ``3804/2024``, CNES, UF, environment) with operations
(``imunizacao-total-df``) each with a status. What a user may see is the set of
*approved* operations of the *active* credentials they hold a live permission on.
The credential-request workflow (issue 6) issues and promotes these same rows.

Audit: terms acceptances and the download log are append-only (database triggers);
each download-log entry carries a SHA-256 chained to the previous one.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from serving.catalog import NAMING_CONVENTION, utcnow

ENVIRONMENTS = ("homologacao", "producao")
CREDENTIAL_STATUSES = ("ativa", "suspensa", "revogada")
OPERATION_STATUSES = ("solicitada", "aprovada", "reprovada", "suspensa")
REFRESH_STATUSES = ("solicitado", "lancado", "falhou")
# The operation names a credential can carry: a state's file or a municipality's.
OPERATION_PATTERN = r"^imunizacao-total-[a-z]{2}(-[0-9]{6})?$"
# The API of the portal's catalogue this API serves (the others are only requested and
# analysed here): the credentials of other APIs never reach the download routes.
D1_CSV_API = "vacinacao-d1-csv"

TZ = sa.DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


class User(Base):
    __tablename__ = "portal_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    cpf: Mapped[str] = mapped_column(sa.String(11), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(254))
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Credential(Base):
    __tablename__ = "credential"
    __table_args__ = (
        sa.CheckConstraint(_in("environment", ENVIRONMENTS), name="environment"),
        sa.CheckConstraint(_in("status", CREDENTIAL_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    cnes: Mapped[str] = mapped_column(sa.String(7))
    uf: Mapped[str] = mapped_column(sa.String(2))
    system_name: Mapped[str] = mapped_column(sa.String(200))
    environment: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="ativa")
    holder_user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)
    # Issue 6 (migration 0002): the catalogue API the credential is for, and the public
    # IP range its system registered (None: no range, any address; admin-made credentials).
    api: Mapped[str] = mapped_column(sa.String(64), default=D1_CSV_API, server_default=D1_CSV_API)
    ip_range_start: Mapped[str | None] = mapped_column(sa.String(45))
    ip_range_end: Mapped[str | None] = mapped_column(sa.String(45))


class CredentialOperation(Base):
    __tablename__ = "credential_operation"
    __table_args__ = (
        sa.UniqueConstraint("credential_id", "operation", name="uq_credential_operation_credential_operation"),
        sa.CheckConstraint(_in("status", OPERATION_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(sa.ForeignKey("credential.id"), index=True)
    operation: Mapped[str] = mapped_column(sa.String(64), index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)


class Permission(Base):
    """A user's access to a credential's operations (the holder has one too)."""

    __tablename__ = "credential_permission"
    __table_args__ = (sa.UniqueConstraint("credential_id", "user_id", name="uq_credential_permission_credential_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(sa.ForeignKey("credential.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    granted_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class PersonalToken(Base):
    """A user's API token: shown once, stored as a keyed hash, expiring, revocable."""

    __tablename__ = "personal_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(TZ)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class AccessToken(Base):
    """A short-lived bearer token from ``POST /token``. It is valid only while its
    personal token is: revoking the personal token kills every bearer made from it."""

    __tablename__ = "access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    personal_token_id: Mapped[int] = mapped_column(sa.ForeignKey("personal_token.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(TZ, index=True)


class TermsVersion(Base):
    __tablename__ = "terms_version"
    __table_args__ = (sa.UniqueConstraint("operation", "version", name="uq_terms_version_operation_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(sa.String(64), index=True)
    version: Mapped[int]
    text: Mapped[str] = mapped_column(sa.Text)
    text_sha256: Mapped[str] = mapped_column(sa.String(64))
    published_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class TermsAcceptance(Base):
    """ "Li e aceito os termos de uso": who, which version, when (append-only)."""

    __tablename__ = "terms_acceptance"
    __table_args__ = (sa.UniqueConstraint("user_id", "terms_version_id", name="uq_terms_acceptance_user_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    terms_version_id: Mapped[int] = mapped_column(sa.ForeignKey("terms_version.id"))
    accepted_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class DownloadLogEntry(Base):
    """One authorised transfer of a published file, written before its first byte.

    ``id`` is the entry's position in the chain, assigned under the head lock (not
    by the database), and ``entry_hash`` covers every field plus ``prev_hash``.
    ``published_file_id`` references ``published_file.id`` (serving's table; the
    foreign key is declared in the migration, the two packages keep separate
    metadata)."""

    __tablename__ = "download_log"
    __table_args__ = (sa.Index("ix_download_log_operation_day", "operation", "day"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    published_file_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    operation: Mapped[str] = mapped_column(sa.String(64))
    day: Mapped[dt.date] = mapped_column(sa.Date)
    file_version: Mapped[int]
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    credential_id: Mapped[int] = mapped_column(sa.ForeignKey("credential.id"))
    representation: Mapped[str] = mapped_column(sa.String(16))
    # SHA-256 of what was sent when it is not the stored .csv.gz (the Parquet's): migration 0004.
    delivered_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # The X-Request-ID of the HTTP request that started the transfer: migration 0006.
    http_request_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    delivery: Mapped[str] = mapped_column(sa.String(16))
    range_start: Mapped[int | None] = mapped_column(sa.BigInteger)
    range_end: Mapped[int | None] = mapped_column(sa.BigInteger)
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(TZ)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    entry_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class DownloadLogHead(Base):
    """The single row appends lock to stay in one chain; also the last entry's hash."""

    __tablename__ = "download_log_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_hash: Mapped[str] = mapped_column(sa.String(64))


class RefreshRequest(Base):
    """An "Atualizar" request: the rate limit counts these; the run id links to Dagster."""

    __tablename__ = "refresh_request"
    __table_args__ = (
        sa.Index("ix_refresh_request_user_requested_at", "user_id", "requested_at"),
        sa.CheckConstraint(_in("status", REFRESH_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    published_file_id: Mapped[int] = mapped_column(sa.Integer)
    operation: Mapped[str] = mapped_column(sa.String(64))
    day: Mapped[dt.date] = mapped_column(sa.Date)
    uf: Mapped[str] = mapped_column(sa.String(2))
    partition_key: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16))
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
