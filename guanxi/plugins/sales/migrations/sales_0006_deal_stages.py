"""sales: deal stages can be archived (sales_deal_stages.archived_at): an archived stage takes no
new deal but keeps the history that names it

Revision ID: sales_0004_deal_stages
Revises: sales_0005_grade_rule
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0004_deal_stages"
down_revision = "sales_0005_grade_rule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sales_deal_stages", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("sales_deal_stages", "archived_at")  # native on SQLite 3.35+: no table copy under deals that refer to it
