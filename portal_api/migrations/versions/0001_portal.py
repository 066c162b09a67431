"""The portal: users, credentials and their operations, permissions, tokens, terms of
use and their acceptances, the hash-chained download log, refresh requests.

Runs after serving's migrations (the download log references published_file).

Revision ID: 0001_portal
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_portal"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GENESIS_HASH = "0" * 64
APPEND_ONLY_TABLES = ("download_log", "terms_acceptance")


def _id(table: str) -> tuple:
    return (sa.Column("id", sa.Integer, primary_key=True), sa.PrimaryKeyConstraint("id", name=f"pk_{table}"))


def upgrade() -> None:
    column, pk = _id("portal_user")
    op.create_table(
        "portal_user",
        column,
        sa.Column("cpf", sa.String(11), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        pk,
        sa.UniqueConstraint("cpf", name="uq_portal_user_cpf"),
    )
    column, pk = _id("credential")
    op.create_table(
        "credential",
        column,
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("cnes", sa.String(7), nullable=False),
        sa.Column("uf", sa.String(2), nullable=False),
        sa.Column("system_name", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder_user_id", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        pk,
        sa.UniqueConstraint("number", name="uq_credential_number"),
        sa.ForeignKeyConstraint(["holder_user_id"], ["portal_user.id"], name="fk_credential_holder_user_id_portal_user"),
        sa.CheckConstraint("environment in ('homologacao', 'producao')", name="ck_credential_environment"),
        sa.CheckConstraint("status in ('ativa', 'suspensa', 'revogada')", name="ck_credential_status"),
    )
    op.create_index("ix_credential_holder_user_id", "credential", ["holder_user_id"])
    column, pk = _id("credential_operation")
    op.create_table(
        "credential_operation",
        column,
        sa.Column("credential_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        pk,
        sa.ForeignKeyConstraint(["credential_id"], ["credential.id"], name="fk_credential_operation_credential_id_credential"),
        sa.UniqueConstraint("credential_id", "operation", name="uq_credential_operation_credential_operation"),
        sa.CheckConstraint(
            "status in ('solicitada', 'aprovada', 'reprovada', 'suspensa')", name="ck_credential_operation_status"
        ),
    )
    op.create_index("ix_credential_operation_credential_id", "credential_operation", ["credential_id"])
    op.create_index("ix_credential_operation_operation", "credential_operation", ["operation"])
    column, pk = _id("credential_permission")
    op.create_table(
        "credential_permission",
        column,
        sa.Column("credential_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        pk,
        sa.ForeignKeyConstraint(["credential_id"], ["credential.id"], name="fk_credential_permission_credential_id_credential"),
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_credential_permission_user_id_portal_user"),
        sa.UniqueConstraint("credential_id", "user_id", name="uq_credential_permission_credential_user"),
    )
    op.create_index("ix_credential_permission_credential_id", "credential_permission", ["credential_id"])
    op.create_index("ix_credential_permission_user_id", "credential_permission", ["user_id"])
    column, pk = _id("personal_token")
    op.create_table(
        "personal_token",
        column,
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("last_used_at", TZ, nullable=True),
        pk,
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_personal_token_user_id_portal_user"),
        sa.UniqueConstraint("token_hash", name="uq_personal_token_token_hash"),
    )
    op.create_index("ix_personal_token_user_id", "personal_token", ["user_id"])
    column, pk = _id("access_token")
    op.create_table(
        "access_token",
        column,
        sa.Column("personal_token_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        pk,
        sa.ForeignKeyConstraint(
            ["personal_token_id"], ["personal_token.id"], name="fk_access_token_personal_token_id_personal_token"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_access_token_user_id_portal_user"),
        sa.UniqueConstraint("token_hash", name="uq_access_token_token_hash"),
    )
    op.create_index("ix_access_token_personal_token_id", "access_token", ["personal_token_id"])
    op.create_index("ix_access_token_expires_at", "access_token", ["expires_at"])
    column, pk = _id("terms_version")
    op.create_table(
        "terms_version",
        column,
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("published_at", TZ, nullable=False),
        pk,
        sa.UniqueConstraint("operation", "version", name="uq_terms_version_operation_version"),
    )
    op.create_index("ix_terms_version_operation", "terms_version", ["operation"])
    column, pk = _id("terms_acceptance")
    op.create_table(
        "terms_acceptance",
        column,
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("terms_version_id", sa.Integer, nullable=False),
        sa.Column("accepted_at", TZ, nullable=False),
        pk,
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_terms_acceptance_user_id_portal_user"),
        sa.ForeignKeyConstraint(
            ["terms_version_id"], ["terms_version.id"], name="fk_terms_acceptance_terms_version_id_terms_version"
        ),
        sa.UniqueConstraint("user_id", "terms_version_id", name="uq_terms_acceptance_user_version"),
    )
    op.create_index("ix_terms_acceptance_user_id", "terms_acceptance", ["user_id"])
    op.create_table(
        "download_log",
        sa.Column("id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("published_file_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("file_version", sa.Integer, nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("credential_id", sa.Integer, nullable=False),
        sa.Column("representation", sa.String(16), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("range_start", sa.BigInteger, nullable=True),
        sa.Column("range_end", sa.BigInteger, nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_download_log"),
        sa.ForeignKeyConstraint(
            ["published_file_id"], ["published_file.id"], name="fk_download_log_published_file_id_published_file"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_download_log_user_id_portal_user"),
        sa.ForeignKeyConstraint(["credential_id"], ["credential.id"], name="fk_download_log_credential_id_credential"),
        sa.UniqueConstraint("entry_hash", name="uq_download_log_entry_hash"),
    )
    op.create_index("ix_download_log_published_file_id", "download_log", ["published_file_id"])
    op.create_index("ix_download_log_operation_day", "download_log", ["operation", "day"])
    op.create_table(
        "download_log_head",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_download_log_head"),
        sa.CheckConstraint("id = 1", name="ck_download_log_head_single_row"),
    )
    op.execute(sa.text(f"INSERT INTO download_log_head (id, last_id, last_hash) VALUES (1, 0, '{GENESIS_HASH}')"))
    column, pk = _id("refresh_request")
    op.create_table(
        "refresh_request",
        column,
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("published_file_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("uf", sa.String(2), nullable=False),
        sa.Column("partition_key", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("requested_at", TZ, nullable=False),
        pk,
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_refresh_request_user_id_portal_user"),
        sa.ForeignKeyConstraint(
            ["published_file_id"], ["published_file.id"], name="fk_refresh_request_published_file_id_published_file"
        ),
        sa.CheckConstraint("status in ('solicitado', 'lancado', 'falhou')", name="ck_refresh_request_status"),
    )
    op.create_index("ix_refresh_request_user_requested_at", "refresh_request", ["user_id", "requested_at"])
    _append_only_triggers()


def _append_only_triggers() -> None:
    """No UPDATE or DELETE (nor TRUNCATE on PostgreSQL) on the audit tables, whoever asks:
    the database refuses, not just the application."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION vacina_d1_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'a tabela % é somente inclusão: % recusado', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION vacina_d1_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION vacina_d1_append_only()"
            )
    elif dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'a tabela {table} é somente inclusão: {action} recusado'); END"
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in (
        "refresh_request",
        "download_log_head",
        "download_log",
        "terms_acceptance",
        "terms_version",
        "access_token",
        "personal_token",
        "credential_permission",
        "credential_operation",
        "credential",
        "portal_user",
    ):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS vacina_d1_append_only()")
