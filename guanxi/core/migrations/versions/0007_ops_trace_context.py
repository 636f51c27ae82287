"""inbox and outbox rows carry the W3C trace context of the request that wrote them

Revision ID: 0007_ops_trace
Revises: 0006_notify
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_ops_trace"
down_revision: str | Sequence[str] | None = "0006_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(length=64), nullable=True))
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("trace_context")
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_column("trace_context")
