"""The credential-request workflow: user roles (analista), requests and their sections,
child establishments, the public certificate, evidence files, the append-only
transition log and request terms acceptances, credential numbers per year, holder
transfers, refusals by IP range; and, on ``credential``, its API and IP range.

Revision ID: 0002_solicitacoes
Revises: 0001_portal
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_solicitacoes"
down_revision = "0001_portal"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
D1_CSV_API = "vacinacao-d1-csv"
APPEND_ONLY_TABLES = ("workflow_transition", "request_terms_acceptance", "credential_access_refusal")
REQUEST_STATUSES = ("rascunho", "em_analise", "reprovada", "homologacao", "em_analise_producao", "producao", "reprovada_producao")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def _pk(table: str) -> tuple:
    return sa.Column("id", sa.Integer, primary_key=True), sa.PrimaryKeyConstraint("id", name=f"pk_{table}")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    name = f"fk_{table}_{column}_{target}"
    if len(name) > 63:  # PostgreSQL's identifier limit
        name = f"fk_{table}_{column}"
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=name)


def upgrade() -> None:
    op.add_column("credential", sa.Column("api", sa.String(64), nullable=False, server_default=D1_CSV_API))
    op.add_column("credential", sa.Column("ip_range_start", sa.String(45), nullable=True))
    op.add_column("credential", sa.Column("ip_range_end", sa.String(45), nullable=True))

    t = "portal_user_role"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        _fk(t, "user_id", "portal_user"),
        sa.UniqueConstraint("user_id", "role", name="uq_portal_user_role_user_role"),
        sa.CheckConstraint(_in("role", ("analista",)), name="ck_portal_user_role_role"),
    )
    op.create_index("ix_portal_user_role_user_id", t, ["user_id"])

    t = "credential_request"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("requester_user_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ, nullable=True),
        sa.Column("origem", sa.String(32), nullable=True),
        sa.Column("api_code", sa.String(64), nullable=True),
        sa.Column("api_version", sa.String(32), nullable=True),
        sa.Column("est_cnes", sa.String(7), nullable=True),
        sa.Column("est_cnpj", sa.String(14), nullable=True),
        sa.Column("est_razao_social", sa.String(200), nullable=True),
        sa.Column("est_fantasia", sa.String(200), nullable=True),
        sa.Column("est_ibge6", sa.String(6), nullable=True),
        sa.Column("est_uf", sa.String(2), nullable=True),
        sa.Column("est_telefone", sa.String(20), nullable=True),
        sa.Column("est_email", sa.String(254), nullable=True),
        sa.Column("gestor_nome", sa.String(200), nullable=True),
        sa.Column("gestor_cns", sa.String(15), nullable=True),
        sa.Column("gestor_cpf", sa.String(11), nullable=True),
        sa.Column("gestor_email", sa.String(254), nullable=True),
        sa.Column("sistema", sa.JSON, nullable=True),
        sa.Column("credential_id", sa.Integer, nullable=True),
        _fk(t, "requester_user_id", "portal_user"),
        _fk(t, "credential_id", "credential"),
        sa.UniqueConstraint("credential_id", name="uq_credential_request_credential_id"),
        sa.CheckConstraint(_in("status", REQUEST_STATUSES), name="ck_credential_request_status"),
    )
    op.create_index("ix_credential_request_status", t, ["status"])
    op.create_index("ix_credential_request_requester_status", t, ["requester_user_id", "status"])

    t = "credential_request_operation"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        _fk(t, "request_id", "credential_request"),
        sa.UniqueConstraint("request_id", "operation", name="uq_credential_request_operation_request_operation"),
    )
    op.create_index("ix_credential_request_operation_request_id", t, ["request_id"])

    t = "credential_request_establishment"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("cnes", sa.String(7), nullable=False),
        sa.Column("razao_social", sa.String(200), nullable=True),
        sa.Column("fantasia", sa.String(200), nullable=True),
        sa.Column("ibge6", sa.String(6), nullable=True),
        sa.Column("uf", sa.String(2), nullable=False),
        sa.Column("added_via", sa.String(16), nullable=False),
        sa.Column("added_at", TZ, nullable=False),
        _fk(t, "request_id", "credential_request"),
        sa.UniqueConstraint("request_id", "cnes", name="uq_credential_request_establishment_request_cnes"),
        sa.CheckConstraint(_in("added_via", ("manual", "lista")), name="ck_credential_request_establishment_added_via"),
    )
    op.create_index("ix_credential_request_establishment_request_id", t, ["request_id"])

    t = "request_certificate"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("not_before", TZ, nullable=False),
        sa.Column("not_after", TZ, nullable=False),
        sa.Column("holder_kind", sa.String(16), nullable=False),
        sa.Column("cpf", sa.String(11), nullable=True),
        sa.Column("cnpj", sa.String(14), nullable=True),
        sa.Column("responsible_cpf", sa.String(11), nullable=True),
        sa.Column("responsible_name", sa.String(200), nullable=True),
        sa.Column("chain", sa.String(2000), nullable=False),
        sa.Column("uploaded_at", TZ, nullable=False),
        _fk(t, "request_id", "credential_request"),
        sa.UniqueConstraint("request_id", name="uq_request_certificate_request_id"),
        sa.CheckConstraint(_in("kind", ("pem", "der", "pfx")), name="ck_request_certificate_kind"),
        sa.CheckConstraint(
            _in("holder_kind", ("pessoa_fisica", "pessoa_juridica", "aplicacao")), name="ck_request_certificate_holder_kind"
        ),
    )

    t = "request_evidence"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ, nullable=True),
        _fk(t, "request_id", "credential_request"),
        sa.CheckConstraint(_in("media_type", ("application/pdf", "image/png")), name="ck_request_evidence_media_type"),
    )
    op.create_index("ix_request_evidence_request_id", t, ["request_id"])

    t = "workflow_transition"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("actor_user_id", sa.Integer, nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _fk(t, "actor_user_id", "portal_user"),
        sa.CheckConstraint(_in("entity", ("solicitacao", "titularidade")), name="ck_workflow_transition_entity"),
        sa.CheckConstraint(_in("actor_role", ("solicitante", "analista")), name="ck_workflow_transition_actor_role"),
    )
    op.create_index("ix_workflow_transition_entity", t, ["entity", "entity_id"])

    t = "request_terms_acceptance"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("terms_version_id", sa.Integer, nullable=False),
        sa.Column("accepted_at", TZ, nullable=False),
        _fk(t, "request_id", "credential_request"),
        _fk(t, "user_id", "portal_user"),
        _fk(t, "terms_version_id", "terms_version"),
    )
    op.create_index("ix_request_terms_acceptance_request_id", t, ["request_id"])

    op.create_table(
        "credential_number_sequence",
        sa.Column("year", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("last_number", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("year", name="pk_credential_number_sequence"),
    )

    t = "holder_transfer"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("credential_id", sa.Integer, nullable=False),
        sa.Column("requester_user_id", sa.Integer, nullable=False),
        sa.Column("previous_holder_user_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("keep_previous_holder", sa.Boolean, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        _fk(t, "credential_id", "credential"),
        _fk(t, "requester_user_id", "portal_user"),
        _fk(t, "previous_holder_user_id", "portal_user"),
        sa.CheckConstraint(_in("status", ("pendente", "aprovada", "reprovada")), name="ck_holder_transfer_status"),
    )
    op.create_index("ix_holder_transfer_credential_id", t, ["credential_id"])
    op.create_index("ix_holder_transfer_requester_user_id", t, ["requester_user_id"])
    op.create_index(
        "ix_holder_transfer_pending",
        t,
        ["credential_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pendente'"),
        postgresql_where=sa.text("status = 'pendente'"),
    )

    t = "credential_access_refusal"
    op.create_table(
        t,
        *_pk(t),
        sa.Column("credential_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("peer_address", sa.String(64), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _fk(t, "credential_id", "credential"),
        _fk(t, "user_id", "portal_user"),
    )
    op.create_index("ix_credential_access_refusal_credential_id", t, ["credential_id"])
    _append_only_triggers()


def _append_only_triggers() -> None:
    """Same guard as 0001's audit tables (its PostgreSQL function is reused)."""
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY_TABLES:
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION vacina_d1_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION vacina_d1_append_only()"
            )
        elif dialect == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'a tabela {table} é somente inclusão: {action} recusado'); END"
                )


def downgrade() -> None:
    for table in (
        "credential_access_refusal",
        "holder_transfer",
        "credential_number_sequence",
        "request_terms_acceptance",
        "workflow_transition",
        "request_evidence",
        "request_certificate",
        "credential_request_establishment",
        "credential_request_operation",
        "credential_request",
        "portal_user_role",
    ):
        op.drop_table(table)
    # Plain DROP COLUMN (SQLite ≥ 3.35 has it): a batch copy would drop ``credential``,
    # which the foreign keys of its operations and permissions forbid.
    for column in ("ip_range_end", "ip_range_start", "api"):
        op.execute(f"ALTER TABLE credential DROP COLUMN {column}")
