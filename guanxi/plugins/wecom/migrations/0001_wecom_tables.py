"""wecom tables

Revision ID: wecom_0001
Revises:
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "wecom_0001"
down_revision = None
branch_labels = ("wecom",)
depends_on = None  # a separate history; core is always upgraded first


def _ts(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "wecom_follows",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("external_userid", sa.String(128), nullable=False),
        sa.Column("userid", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("add_way", sa.Integer(), nullable=True),
        sa.Column("remark", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("remark_mobiles", sa.JSON(), nullable=False),
        sa.Column("tag_ids", sa.JSON(), nullable=False),
        _ts("followed_at", True),
        _ts("removed_at", True),
        _ts("arrived_at", True),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name="fk_wecom_follows_customer"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "external_userid", "userid", name="pk_wecom_follows"),
    )
    op.create_index("ix_wecom_follows_tenant_id_customer_id", "wecom_follows", ["tenant_id", "customer_id"])
    op.create_index("ix_wecom_follows_tenant_id_corp_id_userid", "wecom_follows", ["tenant_id", "corp_id", "userid"])
    op.create_table(
        "wecom_staff",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("userid", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], name="fk_wecom_staff_user"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "userid", name="pk_wecom_staff"),
    )
    op.create_index("ix_wecom_staff_tenant_id_user_id", "wecom_staff", ["tenant_id", "user_id"])
    op.create_table(
        "wecom_tags",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("tag_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "tag_id", name="pk_wecom_tags"),
    )
    op.create_table(
        "wecom_contact_ways",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("userid", sa.String(64), nullable=False),
        sa.Column("qr_code", sa.String(1000), nullable=True),
        sa.Column("remark", sa.String(100), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "config_id", name="pk_wecom_contact_ways"),
    )
    op.create_table(
        "wecom_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("change_type", sa.String(64), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("tenant_id", "dedupe_key", name="pk_wecom_events"),
    )
    op.create_table(
        "wecom_chats",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_change", sa.String(32), nullable=True),
        sa.Column("member_changes", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "chat_id", name="pk_wecom_chats"),
    )
    op.create_table(
        "wecom_mass_sends",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("corp_id", sa.String(64), nullable=False),
        sa.Column("msgid", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("failed", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "corp_id", "msgid", name="pk_wecom_mass_sends"),
    )


def downgrade() -> None:
    for table in ("wecom_mass_sends", "wecom_chats", "wecom_events", "wecom_contact_ways", "wecom_tags", "wecom_staff", "wecom_follows"):
        op.drop_table(table)
