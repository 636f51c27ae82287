"""email: per mailbox, how it receives (IMAP IDLE or polling), the lease of the process holding
its IDLE connection, and the last SMTP error (a wrong password)

Revision ID: email_0002
Revises: email_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "email_0002"
down_revision = "email_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "email_mailbox_state",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("receiving", sa.String(16), nullable=False),
        sa.Column("idle_holder", sa.String(64), nullable=True),
        sa.Column("idle_until", TZ, nullable=True),
        sa.Column("idle_error", sa.Text(), nullable=True),
        sa.Column("smtp_error", sa.Text(), nullable=True),
        sa.Column("smtp_error_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_email_mailbox_state_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "mailbox", name="pk_email_mailbox_state"),
    )


def downgrade() -> None:
    op.drop_table("email_mailbox_state")
