"""tenant time zone, currency and locale; user time zone

Revision ID: 0004_locale
Revises: 0003_auth
Create Date: 2026-12-06 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_locale"
down_revision: str | Sequence[str] | None = "0003_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), server_default="Asia/Shanghai", nullable=False))
        batch.add_column(sa.Column("currency", sa.String(length=3), server_default="CNY", nullable=False))
        batch.add_column(sa.Column("locale", sa.String(length=35), server_default="zh-CN", nullable=False))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("time_zone")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("locale")
        batch.drop_column("currency")
        batch.drop_column("time_zone")
