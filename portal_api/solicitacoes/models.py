"""The credential-request workflow's tables (migration ``0002_solicitacoes``), on the
portal's own ``Base``: a request issues and promotes a row of ``credential`` — the
same model the download API authorises — never a table of its own.

Audit tables (``workflow_transition``, ``request_terms_acceptance``,
``credential_access_refusal``) are append-only: database triggers refuse UPDATE and
DELETE, as for the download log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal_api.models import TZ, Base, _in
from serving.catalog import utcnow

ROLES = ("analista",)
REQUEST_STATUSES = (
    "rascunho",
    "em_analise",
    "reprovada",
    "homologacao",
    "em_analise_producao",
    "producao",
    "reprovada_producao",
)
TRANSFER_STATUSES = ("pendente", "aprovada", "reprovada")
ENTITIES = ("solicitacao", "titularidade")
ACTOR_ROLES = ("solicitante", "analista")
CERTIFICATE_KINDS = ("pem", "der", "pfx")
HOLDER_KINDS = ("pessoa_fisica", "pessoa_juridica", "aplicacao")
EVIDENCE_TYPES = ("application/pdf", "image/png")
ADDED_VIA = ("manual", "lista")


class UserRole(Base):
    """A role a user holds beyond the default (the analyst of DATASUS)."""

    __tablename__ = "portal_user_role"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "role", name="uq_portal_user_role_user_role"),
        sa.CheckConstraint(_in("role", ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    granted_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class CredentialRequest(Base):
    """A solicitação: the form's sections (filled in a draft, locked once sent), its
    state, and the credential it issued."""

    __tablename__ = "credential_request"
    __table_args__ = (
        sa.CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        sa.Index("ix_credential_request_requester_status", "requester_user_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    requester_user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    status: Mapped[str] = mapped_column(sa.String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(TZ)

    origem: Mapped[str | None] = mapped_column(sa.String(32))
    api_code: Mapped[str | None] = mapped_column(sa.String(64))
    api_version: Mapped[str | None] = mapped_column(sa.String(32))

    # The main establishment, as the CNES table had it when chosen (phone and e-mail editable).
    est_cnes: Mapped[str | None] = mapped_column(sa.String(7))
    est_cnpj: Mapped[str | None] = mapped_column(sa.String(14))
    est_razao_social: Mapped[str | None] = mapped_column(sa.String(200))
    est_fantasia: Mapped[str | None] = mapped_column(sa.String(200))
    est_ibge6: Mapped[str | None] = mapped_column(sa.String(6))
    est_uf: Mapped[str | None] = mapped_column(sa.String(2))
    est_telefone: Mapped[str | None] = mapped_column(sa.String(20))
    est_email: Mapped[str | None] = mapped_column(sa.String(254))

    # The responsible manager, linked to the main establishment.
    gestor_nome: Mapped[str | None] = mapped_column(sa.String(200))
    gestor_cns: Mapped[str | None] = mapped_column(sa.String(15))
    gestor_cpf: Mapped[str | None] = mapped_column(sa.String(11))
    gestor_email: Mapped[str | None] = mapped_column(sa.String(254))

    # The system section as validated (schemas.SistemaIn, JSON mode).
    sistema: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    credential_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credential.id"), unique=True)


class RequestOperation(Base):
    """An operation asked for, in the order chosen."""

    __tablename__ = "credential_request_operation"
    __table_args__ = (sa.UniqueConstraint("request_id", "operation", name="uq_credential_request_operation_request_operation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("credential_request.id"), index=True)
    operation: Mapped[str] = mapped_column(sa.String(64))
    position: Mapped[int]


class RequestEstablishment(Base):
    """A child establishment (same UF as the main one)."""

    __tablename__ = "credential_request_establishment"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "cnes", name="uq_credential_request_establishment_request_cnes"),
        sa.CheckConstraint(_in("added_via", ADDED_VIA), name="added_via"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("credential_request.id"), index=True)
    cnes: Mapped[str] = mapped_column(sa.String(7))
    razao_social: Mapped[str | None] = mapped_column(sa.String(200))
    fantasia: Mapped[str | None] = mapped_column(sa.String(200))
    ibge6: Mapped[str | None] = mapped_column(sa.String(6))
    uf: Mapped[str] = mapped_column(sa.String(2))
    added_via: Mapped[str] = mapped_column(sa.String(16))
    added_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class RequestCertificate(Base):
    """The public certificate only (DER). The private key and the password of an A1
    ``.pfx`` are read in memory to open it and never written anywhere."""

    __tablename__ = "request_certificate"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", CERTIFICATE_KINDS), name="kind"),
        sa.CheckConstraint(_in("holder_kind", HOLDER_KINDS), name="holder_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("credential_request.id"), unique=True)
    der: Mapped[bytes] = mapped_column(sa.LargeBinary)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(8))
    subject: Mapped[str] = mapped_column(sa.String(1000))
    issuer: Mapped[str] = mapped_column(sa.String(1000))
    serial: Mapped[str] = mapped_column(sa.String(64))
    not_before: Mapped[dt.datetime] = mapped_column(TZ)
    not_after: Mapped[dt.datetime] = mapped_column(TZ)
    holder_kind: Mapped[str] = mapped_column(sa.String(16))
    cpf: Mapped[str | None] = mapped_column(sa.String(11))
    cnpj: Mapped[str | None] = mapped_column(sa.String(14))
    responsible_cpf: Mapped[str | None] = mapped_column(sa.String(11))
    responsible_name: Mapped[str | None] = mapped_column(sa.String(200))
    chain: Mapped[str] = mapped_column(sa.String(2000))  # subjects from the certificate to the root, " > "
    uploaded_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class RequestEvidence(Base):
    """An evidence file of the homologação tests (PDF or PNG, by content)."""

    __tablename__ = "request_evidence"
    __table_args__ = (sa.CheckConstraint(_in("media_type", EVIDENCE_TYPES), name="media_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("credential_request.id"), index=True)
    file_name: Mapped[str] = mapped_column(sa.String(200))
    media_type: Mapped[str] = mapped_column(sa.String(32))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    uploaded_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(TZ)  # sent to analysis with "enviar para produção"


class WorkflowTransition(Base):
    """Every state change of a request or a holder transfer: who, when, why (append-only)."""

    __tablename__ = "workflow_transition"
    __table_args__ = (
        sa.Index("ix_workflow_transition_entity", "entity", "entity_id"),
        sa.CheckConstraint(_in("entity", ENTITIES), name="entity"),
        sa.CheckConstraint(_in("actor_role", ACTOR_ROLES), name="actor_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(sa.String(16))
    entity_id: Mapped[int]
    action: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(32))
    to_status: Mapped[str] = mapped_column(sa.String(32))
    actor_user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    actor_role: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class RequestTermsAcceptance(Base):
    """The requester's "Li e aceito" of the request's terms of use (append-only).
    The versions live in ``terms_version`` under the key ``solicitacao-credencial``."""

    __tablename__ = "request_terms_acceptance"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("credential_request.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    terms_version_id: Mapped[int] = mapped_column(sa.ForeignKey("terms_version.id"))
    accepted_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class CredentialNumberSequence(Base):
    """The last credential number issued in a year (``3804/2024``): one row a year,
    updated under its row lock so concurrent approvals never share a number."""

    __tablename__ = "credential_number_sequence"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int]


class HolderTransfer(Base):
    """ "Adquirir titularidade de credencial": a user asks, an analyst decides."""

    __tablename__ = "holder_transfer"
    __table_args__ = (
        sa.CheckConstraint(_in("status", TRANSFER_STATUSES), name="status"),
        # Several claims may wait on one credential (issue 11: a stranger's claim must
        # never block the real holder's); the analyst sees them all.
        sa.Index("ix_holder_transfer_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The number claimed, as typed; the credential only when that number is an active
    # credential the claimant does not already hold (the claimant is never told which).
    credential_number: Mapped[str | None] = mapped_column(sa.String(16))
    credential_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credential.id"), index=True)
    requester_user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"), index=True)
    previous_holder_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("portal_user.id"))
    status: Mapped[str] = mapped_column(sa.String(16))
    justification: Mapped[str] = mapped_column(sa.Text)
    keep_previous_holder: Mapped[bool | None] = mapped_column(sa.Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class CredentialAccessRefusal(Base):
    """A call made with a credential from outside its registered IP range (append-only)."""

    __tablename__ = "credential_access_refusal"

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(sa.ForeignKey("credential.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_user.id"))
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    peer_address: Mapped[str | None] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
