"""The catalog: publications and published files.

Revision ID: 0001_catalog
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_catalog"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publication",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("scope", sa.String(2), nullable=False),
        sa.Column("manifest_key", sa.String(512), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("layout_version", sa.String(64), nullable=False),
        sa.Column("records_read", sa.BigInteger, nullable=False),
        sa.Column("records_valid", sa.BigInteger, nullable=False),
        sa.Column("records_quarantined", sa.BigInteger, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes_csv", sa.BigInteger, nullable=False),
        sa.Column("bytes_stored", sa.BigInteger, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_publication"),
        sa.UniqueConstraint("day", "version", name="uq_publication_day_version"),
    )
    op.create_index("ix_publication_day", "publication", ["day"])
    op.create_table(
        "published_file",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("publication_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("scope_kind", sa.String(16), nullable=False),
        sa.Column("uf", sa.String(2), nullable=False),
        sa.Column("ibge6", sa.String(6), nullable=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes_csv", sa.BigInteger, nullable=False),
        sa.Column("bytes_stored", sa.BigInteger, nullable=False),
        sa.Column("sha256_csv", sa.String(64), nullable=False),
        sa.Column("sha256_stored", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("content_encoding", sa.String(32), nullable=True),
        sa.Column("layout_version", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_published_file"),
        sa.ForeignKeyConstraint(["publication_id"], ["publication.id"], name="fk_published_file_publication_id_publication"),
        sa.UniqueConstraint("object_key", name="uq_published_file_object_key"),
        sa.UniqueConstraint("operation", "day", "version", name="uq_published_file_operation_day_version"),
        sa.CheckConstraint("scope_kind in ('uf', 'municipio')", name="ck_published_file_scope_kind"),
    )
    op.create_index("ix_published_file_publication_id", "published_file", ["publication_id"])
    op.create_index("ix_published_file_operation", "published_file", ["operation"])
    op.create_index(
        "ux_published_file_current",
        "published_file",
        ["operation", "day"],
        unique=True,
        postgresql_where=sa.text("is_current"),
        sqlite_where=sa.text("is_current"),
    )


def downgrade() -> None:
    op.drop_table("published_file")
    op.drop_table("publication")
