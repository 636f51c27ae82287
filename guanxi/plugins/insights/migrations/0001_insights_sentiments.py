"""insights tables: the sentiment of inbound texts

Revision ID: insights_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "insights_0001"
down_revision = None
branch_labels = ("insights",)
depends_on = None  # a separate history; core is always upgraded first


def upgrade() -> None:
    op.create_table(
        "insights_sentiments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("alert", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name="fk_insights_sentiments_tenant_id_customer_id_customers",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "interaction_id"],
            ["interactions.tenant_id", "interactions.id"],
            name="fk_insights_sentiments_tenant_id_interaction_id_interactions",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "interaction_id", name="pk_insights_sentiments"),
    )
    op.create_index(
        "ix_insights_sentiments_tenant_id_customer_id_occurred_at", "insights_sentiments", ["tenant_id", "customer_id", "occurred_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_insights_sentiments_tenant_id_customer_id_occurred_at", table_name="insights_sentiments")
    op.drop_table("insights_sentiments")
