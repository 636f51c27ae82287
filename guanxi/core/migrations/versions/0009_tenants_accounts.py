"""channel accounts: a tenant's WeCom corps, Douyin apps, mailboxes, secrets sealed at rest

Revision ID: 0009_tenants_accounts
Revises: 0008_tenants
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tenants_accounts"
down_revision: str | Sequence[str] | None = "0008_tenants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_accounts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("fingerprints", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_channel_accounts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_channel_accounts")),
        sa.UniqueConstraint("channel", "key", name=op.f("uq_channel_accounts_channel_key")),
        sa.UniqueConstraint("channel", "provider_id", name=op.f("uq_channel_accounts_channel_provider_id")),
    )


def downgrade() -> None:
    op.drop_table("channel_accounts")
