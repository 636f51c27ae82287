"""sales: recurring follow-up plans and their runs (one task per plan, customer and period); who
may claim from a pool and its daily claim limits per role

Revision ID: sales_0003_ops
Revises: sales_0002_deals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0003_ops"
down_revision = "sales_0002_deals"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sales_pools") as batch:
        batch.add_column(sa.Column("claim_roles", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("claim_teams", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("daily_claim_limits", sa.JSON(), nullable=True))
    op.create_table(
        "sales_followup_plans",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=False),
        sa.Column("due_days", sa.Integer(), nullable=False),
        sa.Column("task_title", sa.String(300), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_sales_followup_plans_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_sales_followup_plans"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_sales_followup_plans_tenant_id_key"),
    )
    op.create_table(
        "sales_followup_runs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name="fk_sales_followup_runs_tenant_id_customer_id_customers",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "plan_id"],
            ["sales_followup_plans.tenant_id", "sales_followup_plans.id"],
            name="fk_sales_followup_runs_tenant_id_plan_id_sales_followup_plans",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "plan_id", "customer_id", "period", name="pk_sales_followup_runs"),
    )


def downgrade() -> None:
    op.drop_table("sales_followup_runs")
    op.drop_table("sales_followup_plans")
    with op.batch_alter_table("sales_pools") as batch:
        batch.drop_column("daily_claim_limits")
        batch.drop_column("claim_teams")
        batch.drop_column("claim_roles")
