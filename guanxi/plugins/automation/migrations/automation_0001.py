"""automation: segments and their members, bulk sends and their recipients

Revision ID: automation_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "automation_0001"
down_revision = None
branch_labels = ("automation",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name=f"fk_{table}_tenant_id_customer_id_customers"
    )


def upgrade() -> None:
    op.create_table(
        "automation_segments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("refreshed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_automation_segments_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_automation_segments"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_automation_segments_tenant_id_key"),
    )
    op.create_table(
        "automation_segment_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["automation_segments.tenant_id", "automation_segments.id"],
            name="fk_automation_segment_members_segment",
        ),
        _customer_fk("automation_segment_members"),
        sa.PrimaryKeyConstraint("tenant_id", "segment_id", "customer_id", name="pk_automation_segment_members"),
    )
    op.create_index("ix_automation_segment_members_tenant_id_customer_id", "automation_segment_members", ["tenant_id", "customer_id"])
    op.create_table(
        "automation_bulk_sends",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_automation_bulk_sends_tenant_id_tenants"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["automation_segments.tenant_id", "automation_segments.id"],
            name="fk_automation_bulk_sends_segment",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_automation_bulk_sends"),
    )
    op.create_index("ix_automation_bulk_sends_tenant_id_created_at", "automation_bulk_sends", ["tenant_id", "created_at"])
    op.create_table(
        "automation_bulk_recipients",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("send_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("processed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "send_id"],
            ["automation_bulk_sends.tenant_id", "automation_bulk_sends.id"],
            name="fk_automation_bulk_recipients_send",
        ),
        _customer_fk("automation_bulk_recipients"),
        sa.PrimaryKeyConstraint("tenant_id", "send_id", "customer_id", name="pk_automation_bulk_recipients"),
    )
    op.create_index(
        "ix_automation_bulk_recipients_tenant_id_send_id_status", "automation_bulk_recipients", ["tenant_id", "send_id", "status"]
    )
    op.create_index("ix_automation_bulk_recipients_tenant_id_customer_id", "automation_bulk_recipients", ["tenant_id", "customer_id"])


def downgrade() -> None:
    op.drop_table("automation_bulk_recipients")
    op.drop_table("automation_bulk_sends")
    op.drop_table("automation_segment_members")
    op.drop_table("automation_segments")
