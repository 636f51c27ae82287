"""wecom: corp events of a suspended tenant are stored and applied when it resumes

Revision ID: wecom_0002
Revises: wecom_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "wecom_0002"
down_revision = "wecom_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wecom_events") as batch:
        batch.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE wecom_events SET applied_at = received_at")  # every earlier event was applied on arrival


def downgrade() -> None:
    with op.batch_alter_table("wecom_events") as batch:
        batch.drop_column("applied_at")
