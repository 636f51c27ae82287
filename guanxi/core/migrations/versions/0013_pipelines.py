"""pipelines as tenant data (a pipeline's arrival rule, archived stages) and merge records for undo

Revision ID: 0013_pipelines
Revises: 0012_sales_fields
Create Date: 2026-12-07 00:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_pipelines"
down_revision: str | Sequence[str] | None = "0012_sales_fields"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(sa.Column("sources", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("stages") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "customer_merges",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("merged_id", sa.Uuid(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survivor_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_merges_tenant_id_survivor_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "merged_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_merges_tenant_id_merged_id_customers"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_customer_merges")),
    )
    op.create_index(op.f("ix_customer_merges_tenant_id_merged_id"), "customer_merges", ["tenant_id", "merged_id"])
    op.create_index(op.f("ix_customer_merges_tenant_id_survivor_id"), "customer_merges", ["tenant_id", "survivor_id"])


def downgrade() -> None:
    op.drop_table("customer_merges")
    with op.batch_alter_table("stages") as batch:
        batch.drop_column("archived_at")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("sources")
