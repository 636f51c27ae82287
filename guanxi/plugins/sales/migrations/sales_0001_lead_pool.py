"""sales: lead pools, the leads in them and their moves

Revision ID: sales_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0001"
down_revision = None
branch_labels = ("sales",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name=f"fk_{table}_tenant_id_customer_id_customers"
    )


def upgrade() -> None:
    op.create_table(
        "sales_pools",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hold_limit", sa.Integer(), nullable=True),
        sa.Column("return_after_days", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_sales_pools_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_sales_pools"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_sales_pools_tenant_id_key"),
    )
    op.create_table(
        "sales_pool_leads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("holder_id", sa.Uuid(), nullable=True),
        sa.Column("entered_at", TZ, nullable=False),
        sa.Column("held_at", TZ, nullable=True),
        sa.Column("warned_at", TZ, nullable=True),
        _customer_fk("sales_pool_leads"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "pool_id"], ["sales_pools.tenant_id", "sales_pools.id"], name="fk_sales_pool_leads_tenant_id_pool_id_sales_pools"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name="pk_sales_pool_leads"),
    )
    op.create_index(
        "ix_sales_pool_leads_tenant_id_pool_id_status_entered_at", "sales_pool_leads", ["tenant_id", "pool_id", "status", "entered_at"]
    )
    op.create_index("ix_sales_pool_leads_tenant_id_holder_id_status", "sales_pool_leads", ["tenant_id", "holder_id", "status"])
    op.create_table(
        "sales_pool_moves",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", TZ, nullable=False),
        _customer_fk("sales_pool_moves"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_sales_pool_moves"),
    )
    op.create_index("ix_sales_pool_moves_tenant_id_customer_id_at", "sales_pool_moves", ["tenant_id", "customer_id", "at"])


def downgrade() -> None:
    op.drop_table("sales_pool_moves")
    op.drop_table("sales_pool_leads")
    op.drop_table("sales_pools")
