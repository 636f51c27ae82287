"""sales: deal stages can be archived (sales_deal_stages.archived_at): an archived stage takes no
new deal but keeps the history that names it

Revision ID: sales_0004_deal_stages
Revises: sales_0003_ops
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0004_deal_stages"
down_revision = "sales_0003_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sales_deal_stages") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_deal_stages") as batch:
        batch.drop_column("archived_at")
