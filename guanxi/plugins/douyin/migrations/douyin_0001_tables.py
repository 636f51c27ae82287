"""douyin: authorized business accounts, OAuth states, conversations, account-level events

Revision ID: douyin_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "douyin_0001"
down_revision = None
branch_labels = ("douyin",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "douyin_authorizations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("open_id", sa.String(128), nullable=False),
        sa.Column("client_key", sa.String(64), nullable=False),
        sa.Column("app_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("nickname", sa.String(200), nullable=True),
        sa.Column("avatar_url", sa.String(1000), nullable=True),
        sa.Column("union_id", sa.String(128), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("access_expires_at", TZ, nullable=True),
        sa.Column("refresh_expires_at", TZ, nullable=True),
        sa.Column("renewals", sa.Integer(), nullable=False),
        sa.Column("total_fans", sa.Integer(), nullable=True),
        sa.Column("new_fans", sa.Integer(), nullable=True),
        sa.Column("fans_date", sa.String(10), nullable=True),
        sa.Column("fans_updated_at", TZ, nullable=True),
        sa.Column("connected_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "open_id", name="pk_douyin_authorizations"),
    )
    op.create_index("ix_douyin_authorizations_client_key_open_id", "douyin_authorizations", ["client_key", "open_id"])
    op.create_table(
        "douyin_oauth_states",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("app_key", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "state", name="pk_douyin_oauth_states"),
    )
    op.create_table(
        "douyin_conversations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_open_id", sa.String(128), nullable=False),
        sa.Column("open_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("server_message_id", sa.String(200), nullable=False),
        sa.Column("last_in_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_open_id", "open_id", name="pk_douyin_conversations"),
    )
    op.create_index("ix_douyin_conversations_tenant_id_customer_id", "douyin_conversations", ["tenant_id", "customer_id"])
    op.create_table(
        "douyin_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("account_open_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "dedupe_key", name="pk_douyin_events"),
    )


def downgrade() -> None:
    for table in ("douyin_events", "douyin_conversations", "douyin_oauth_states", "douyin_authorizations"):
        op.drop_table(table)
