"""The download log names the HTTP request that started each transfer: ``http_request_id``
is the ``X-Request-ID`` the portal answered with (the caller's, or one it made), so an
entry can be matched with the access logs, the JSON log lines and a user's support call.
Nullable: earlier entries have none, and the hash chain covers it only when filled, so
they verify unchanged.

Revision ID: 0006_download_log_request
Revises: 0005_issue11_guards
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_download_log_request"
down_revision = "0005_issue11_guards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("download_log", sa.Column("http_request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("download_log") as batch:
        batch.drop_column("http_request_id")
