"""Browser sessions of the portal's pages (issue 9): one row per login, so that
"Sair com segurança" ends it on the server and an old cookie gets nothing.

Revision ID: 0003_web_session
Revises: 0002_solicitacoes
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_web_session"
down_revision = "0002_solicitacoes"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sid_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("id_token", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_web_session"),
        sa.ForeignKeyConstraint(["user_id"], ["portal_user.id"], name="fk_web_session_user_id_portal_user"),
        sa.UniqueConstraint("sid_hash", name="uq_web_session_sid_hash"),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_web_session_user_id", table_name="web_session")
    op.drop_table("web_session")
