"""email: drafts (subject, HTML, mailbox of an outbox message), address deliverability, IMAP state

Revision ID: email_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "email_0001"
down_revision = None
branch_labels = ("email",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name=f"fk_{table}_tenant_id_customer_id_customers"
    )


def upgrade() -> None:
    op.create_table(
        "email_drafts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _customer_fk("email_drafts"),
        sa.PrimaryKeyConstraint("tenant_id", "outbox_id", name="pk_email_drafts"),
    )
    op.create_table(
        "email_addresses",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("hard_bounces", sa.Integer(), nullable=False),
        sa.Column("complaints", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("suppressed", sa.String(16), nullable=True),
        sa.Column("suppressed_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        _customer_fk("email_addresses"),
        sa.PrimaryKeyConstraint("tenant_id", "address", name="pk_email_addresses"),
    )
    op.create_index("ix_email_addresses_tenant_id_customer_id", "email_addresses", ["tenant_id", "customer_id"])
    op.create_table(
        "email_imap_state",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox", sa.String(64), nullable=False),
        sa.Column("folder", sa.String(200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("polled_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_email_imap_state_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "mailbox", "folder", name="pk_email_imap_state"),
    )


def downgrade() -> None:
    op.drop_table("email_imap_state")
    op.drop_table("email_addresses")
    op.drop_table("email_drafts")
