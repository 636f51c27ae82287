"""scoring tables: scores, parts, history

Revision ID: scoring_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scoring_0001"
down_revision = None
branch_labels = ("scoring",)
depends_on = None  # a separate history; core is always upgraded first

TS = sa.DateTime(timezone=True)


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name=f"fk_{table}_tenant_id_customer_id_customers"
    )


def upgrade() -> None:
    op.create_table(
        "scoring_scores",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("recorded_total", sa.Float(), nullable=False),
        sa.Column("computed_at", TS, nullable=False),
        _customer_fk("scoring_scores"),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name="pk_scoring_scores"),
    )
    op.create_index("ix_scoring_scores_tenant_id_total_customer_id", "scoring_scores", ["tenant_id", "total", "customer_id"])
    op.create_table(
        "scoring_parts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("item", sa.String(100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("measure", sa.Float(), nullable=True),
        sa.Column("first_at", TS, nullable=True),
        sa.Column("last_at", TS, nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        _customer_fk("scoring_parts"),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "component", "item", name="pk_scoring_parts"),
    )
    op.create_table(
        "scoring_history",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("cause", sa.String(200), nullable=False),
        _customer_fk("scoring_history"),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "at", name="pk_scoring_history"),
    )
    op.create_table(
        "scoring_assignments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("last_assigned_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], name="fk_scoring_assignments_tenant_id_user_id_users"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="pk_scoring_assignments"),
    )


def downgrade() -> None:
    op.drop_table("scoring_assignments")
    op.drop_table("scoring_history")
    op.drop_table("scoring_parts")
    op.drop_index("ix_scoring_scores_tenant_id_total_customer_id", table_name="scoring_scores")
    op.drop_table("scoring_scores")
