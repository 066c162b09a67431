"""Issue 11 (load, attack, faults): rate-limit events shared by every worker process
(file incidents are serving's, 0003_issue11_file_incident), and holder transfers that no longer reveal or block anything (the number claimed is kept, the
credential may be unknown, several claims may wait on one credential).

Revision ID: 0005_issue11_guards
Revises: 0002_solicitacoes
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_issue11_guards"
down_revision = "0004_download_log_delivered"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    t = "rate_limit_event"
    op.create_table(
        t,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
    )
    op.create_index("ix_rate_limit_event_bucket_created_at", t, ["bucket", "created_at"])

    op.drop_index("ix_holder_transfer_pending", table_name="holder_transfer")
    op.create_index("ix_holder_transfer_status", "holder_transfer", ["status"])
    with op.batch_alter_table("holder_transfer") as batch:
        batch.add_column(sa.Column("credential_number", sa.String(16), nullable=True))
        batch.alter_column("credential_id", existing_type=sa.Integer, nullable=True)
        batch.alter_column("previous_holder_user_id", existing_type=sa.Integer, nullable=True)
    op.execute(
        "UPDATE holder_transfer SET credential_number = "
        "(SELECT number FROM credential WHERE credential.id = holder_transfer.credential_id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM holder_transfer WHERE credential_id IS NULL")
    with op.batch_alter_table("holder_transfer") as batch:
        batch.drop_column("credential_number")
        batch.alter_column("previous_holder_user_id", existing_type=sa.Integer, nullable=False)
        batch.alter_column("credential_id", existing_type=sa.Integer, nullable=False)
    op.drop_index("ix_holder_transfer_status", table_name="holder_transfer")
    op.create_index(
        "ix_holder_transfer_pending",
        "holder_transfer",
        ["credential_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pendente'"),
        postgresql_where=sa.text("status = 'pendente'"),
    )
    op.drop_index("ix_rate_limit_event_bucket_created_at", table_name="rate_limit_event")
    op.drop_table("rate_limit_event")
