"""referral campaigns, tokens, attributions, credits, reward ledger, coupon pool

Revision ID: referral_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "referral_0001"
down_revision = None
branch_labels = ("referral",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, name: str | None = None) -> sa.ForeignKeyConstraint:
    """Named like the models' convention, or ``name`` where that would pass PostgreSQL's 63 characters."""
    return sa.ForeignKeyConstraint(
        ["tenant_id", column], [f"{target}.tenant_id", f"{target}.id"], name=name or f"fk_{table}_tenant_id_{column}_{target}"
    )


def upgrade() -> None:
    op.create_table(
        "referral_campaigns",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("landing_url", sa.String(1000), nullable=False),
        sa.Column("goal", sa.Integer(), nullable=False),
        sa.Column("starts_at", TZ, nullable=True),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("qualify_stage", sa.String(64), nullable=True),
        sa.Column("reversal_days", sa.Integer(), nullable=False),
        sa.Column("reward_kind", sa.String(16), nullable=True),
        sa.Column("reward_points", sa.Integer(), nullable=False),
        sa.Column("reward_title", sa.String(300), nullable=True),
        sa.Column("poster", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_referral_campaigns_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_referral_campaigns"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_referral_campaigns_tenant_id_key"),
    )
    op.create_table(
        "referral_tokens",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(30), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("inviter_key", sa.String(40), nullable=False),
        sa.Column("inviter_user_id", sa.Uuid(), nullable=True),
        sa.Column("inviter_customer_id", sa.Uuid(), nullable=True),
        sa.Column("entry_points", sa.JSON(), nullable=False),
        sa.Column("anonymous_visits", sa.Integer(), nullable=False),
        sa.Column("known_visits", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _fk("referral_tokens", "campaign_id", "referral_campaigns"),
        _fk("referral_tokens", "inviter_user_id", "users"),
        _fk("referral_tokens", "inviter_customer_id", "customers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_referral_tokens"),
        sa.UniqueConstraint("tenant_id", "token", name="uq_referral_tokens_tenant_id_token"),
        sa.UniqueConstraint("tenant_id", "campaign_id", "inviter_key", name="uq_referral_tokens_tenant_id_campaign_id_inviter_key"),
    )
    op.create_index("ix_referral_tokens_tenant_id_inviter_customer_id", "referral_tokens", ["tenant_id", "inviter_customer_id"])
    op.create_table(
        "referral_attributions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("inviter_customer_id", sa.Uuid(), nullable=True),
        sa.Column("inviter_user_id", sa.Uuid(), nullable=True),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_token_id", sa.Uuid(), nullable=False),
        sa.Column("first_channel", sa.String(32), nullable=False),
        sa.Column("first_at", TZ, nullable=False),
        sa.Column("last_token_id", sa.Uuid(), nullable=False),
        sa.Column("last_channel", sa.String(32), nullable=False),
        sa.Column("last_at", TZ, nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.Column("left_at", TZ, nullable=True),
        _fk("referral_attributions", "customer_id", "customers"),
        _fk("referral_attributions", "inviter_customer_id", "customers", "fk_referral_attributions_inviter_customers"),
        _fk("referral_attributions", "campaign_id", "referral_campaigns", "fk_referral_attributions_campaign_id_campaigns"),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name="pk_referral_attributions"),
    )
    op.create_index(
        "ix_referral_attributions_tenant_id_inviter_customer_id_status",
        "referral_attributions",
        ["tenant_id", "inviter_customer_id", "status"],
    )
    op.create_index(
        "ix_referral_attributions_tenant_id_inviter_user_id_status", "referral_attributions", ["tenant_id", "inviter_user_id", "status"]
    )
    op.create_table(
        "referral_credits",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("inviter_key", sa.String(40), nullable=False),
        sa.Column("qualified_at", TZ, nullable=False),
        sa.Column("reversed_at", TZ, nullable=True),
        _fk("referral_credits", "customer_id", "customers"),
        _fk("referral_credits", "campaign_id", "referral_campaigns"),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "customer_id", name="pk_referral_credits"),
    )
    op.create_index(
        "ix_referral_credits_tenant_id_campaign_id_inviter_key", "referral_credits", ["tenant_id", "campaign_id", "inviter_key"]
    )
    op.create_table(
        "referral_rewards",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("inviter_key", sa.String(40), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("redeemed_at", TZ, nullable=True),
        sa.Column("reversed_at", TZ, nullable=True),
        _fk("referral_rewards", "campaign_id", "referral_campaigns"),
        _fk("referral_rewards", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_referral_rewards"),
    )
    op.create_index(
        "ix_referral_rewards_tenant_id_campaign_id_inviter_key", "referral_rewards", ["tenant_id", "campaign_id", "inviter_key"]
    )
    op.create_index("ix_referral_rewards_tenant_id_customer_id", "referral_rewards", ["tenant_id", "customer_id"])
    op.create_table(
        "referral_coupons",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reward_id", sa.Uuid(), nullable=True),
        _fk("referral_coupons", "campaign_id", "referral_campaigns"),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "code", name="pk_referral_coupons"),
    )


def downgrade() -> None:
    for table in (
        "referral_coupons",
        "referral_rewards",
        "referral_credits",
        "referral_attributions",
        "referral_tokens",
        "referral_campaigns",
    ):
        op.drop_table(table)
