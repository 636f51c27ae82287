"""message receipts: status history of outbox messages, their provider id indexed per tenant and
channel; identities an unreachable mark

Revision ID: 0005_receipts
Revises: 0004_locale
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_receipts"
down_revision: str | Sequence[str] | None = "0004_locale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("status_history", sa.JSON(), server_default="[]", nullable=False))
        batch.create_index("ix_outbox_messages_tenant_id_channel_provider_message_id", ["tenant_id", "channel", "provider_message_id"])
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("unreachable_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("unreachable_at")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_tenant_id_channel_provider_message_id")
        batch.drop_column("status_history")
