"""An index on the day's files (day, operation): the day's listing, the manifest and
publication planning read a whole day at once.

Revision ID: 0002_published_file_day_index
Revises: 0001_catalog
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002_published_file_day_index"
down_revision = "0001_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_published_file_day_operation", "published_file", ["day", "operation"])


def downgrade() -> None:
    op.drop_index("ix_published_file_day_operation", table_name="published_file")
