"""tenant quotas: the operator's limits per tenant, usage counters

Revision ID: 0011_tenants_quotas
Revises: 0010_tenants_lifecycle
Create Date: 2026-12-06 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_tenants_quotas"
down_revision: str | Sequence[str] | None = "0010_tenants_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("quotas", sa.JSON(), server_default="{}", nullable=False))
    op.create_table(
        "tenant_usage",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=80), nullable=False),
        sa.Column("window", sa.String(length=32), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_usage_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "metric", "window", name=op.f("pk_tenant_usage")),
    )


def downgrade() -> None:
    op.drop_table("tenant_usage")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("quotas")
