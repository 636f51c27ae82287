"""pipelines as tenant data: a pipeline's arrival rule (sources) and archived stages

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


def downgrade() -> None:
    with op.batch_alter_table("stages") as batch:
        batch.drop_column("archived_at")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("sources")
