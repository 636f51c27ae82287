"""tenant plugins: which loaded plugins a tenant enables, and its setting overrides

Revision ID: 0008_tenants
Revises: 0007_ops_trace
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_tenants"
down_revision: str | Sequence[str] | None = "0007_ops_trace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_plugins",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("plugin", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_plugins_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "plugin", name=op.f("pk_tenant_plugins")),
    )


def downgrade() -> None:
    op.drop_table("tenant_plugins")
