"""insights: a tag rule's points in the score component ``insights.tags``

Revision ID: insights_0003
Revises: insights_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "insights_0003"
down_revision = "insights_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("insights_tag_rules") as batch:
        batch.add_column(sa.Column("score_points", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("insights_tag_rules") as batch:
        batch.drop_column("score_points")
