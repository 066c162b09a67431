"""Representations of a published file: the typed Parquet beside each CSV, and the
day's indicator table (CSV and Parquet) beside each UF file. Same version, same
publication, same commit as the file they belong to.

Revision ID: 0003_published_representation
Revises: 0002_published_file_day_index
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_published_representation"
down_revision = "0002_published_file_day_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_representation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "published_file_id",
            sa.Integer,
            sa.ForeignKey("published_file.id", name="fk_published_representation_published_file_id_published_file"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_published_representation"),
        sa.UniqueConstraint("object_key", name="uq_published_representation_object_key"),
        sa.UniqueConstraint("published_file_id", "kind", name="uq_published_representation_file_kind"),
    )


def downgrade() -> None:
    op.drop_table("published_representation")
