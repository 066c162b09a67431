"""Issue 11: file incidents — a published object found not to match the catalog (size
or SHA-256) by the portal while streaming it, by ``vacina-d1 verify`` or by the daily
scrub. That version is served no more (503) until a republication gives the file a
new version.

Revision ID: 0004_issue11_file_incident
Revises: 0002_published_file_day_index
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_issue11_file_incident"
down_revision = "0003_published_representation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    t = "file_incident"
    op.create_table(
        t,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("published_file_id", sa.Integer, nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("detected_by", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("expected_sha256", sa.String(64), nullable=False),
        sa.Column("found_sha256", sa.String(64), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.ForeignKeyConstraint(
            ["published_file_id"], ["published_file.id"], name="fk_file_incident_published_file_id_published_file"
        ),
        sa.UniqueConstraint("published_file_id", name="uq_file_incident_published_file_id"),
    )


def downgrade() -> None:
    op.drop_table("file_incident")
