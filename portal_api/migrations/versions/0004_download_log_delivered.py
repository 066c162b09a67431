"""The download log tells which bytes were delivered: ``representation`` already
names the form (``csv.gz``, ``csv``, now ``parquet``); ``delivered_sha256`` is the
SHA-256 of what was sent when it is not the stored ``.csv.gz`` (the Parquet's), so
an entry identifies the exact object handed over. Nullable: earlier entries and
``csv.gz``/``csv`` downloads leave it empty (``file_sha256`` describes them), and
the hash chain covers it only when filled, so earlier entries verify unchanged.

Revision ID: 0004_download_log_delivered
Revises: 0003_web_session
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_download_log_delivered"
down_revision = "0003_web_session"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("download_log", sa.Column("delivered_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("download_log") as batch:
        batch.drop_column("delivered_sha256")
