"""insights tables: tag rules (keyword and behaviour), keyword hits, and the tags rules gave

Revision ID: insights_0002
Revises: insights_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "insights_0002"
down_revision = "insights_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "insights_tag_rules",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(201), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("interaction_kind", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("min_count", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=True),
        sa.Column("remove_when_false", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_insights_tag_rules_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_insights_tag_rules"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_insights_tag_rules_tenant_id_key"),
    )
    op.create_table(
        "insights_keyword_hits",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("keyword", sa.String(50), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name="fk_insights_keyword_hits_tenant_id_customer_id_customers",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "rule_id"],
            ["insights_tag_rules.tenant_id", "insights_tag_rules.id"],
            name="fk_insights_keyword_hits_tenant_id_rule_id_insights_tag_rules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "interaction_id", "rule_id", "keyword", name="pk_insights_keyword_hits"),
    )
    op.create_index(
        "ix_insights_keyword_hits_tenant_id_customer_id_occurred_at", "insights_keyword_hits", ["tenant_id", "customer_id", "occurred_at"]
    )
    op.create_index(
        "ix_insights_keyword_hits_tenant_id_rule_id_occurred_at", "insights_keyword_hits", ["tenant_id", "rule_id", "occurred_at"]
    )
    op.create_table(
        "insights_rule_tags",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(201), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("since", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name="fk_insights_rule_tags_tenant_id_customer_id_customers",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "rule_id"],
            ["insights_tag_rules.tenant_id", "insights_tag_rules.id"],
            name="fk_insights_rule_tags_tenant_id_rule_id_insights_tag_rules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "rule_id", name="pk_insights_rule_tags"),
    )
    op.create_index("ix_insights_rule_tags_tenant_id_rule_id", "insights_rule_tags", ["tenant_id", "rule_id"])


def downgrade() -> None:
    op.drop_index("ix_insights_rule_tags_tenant_id_rule_id", table_name="insights_rule_tags")
    op.drop_table("insights_rule_tags")
    op.drop_index("ix_insights_keyword_hits_tenant_id_rule_id_occurred_at", table_name="insights_keyword_hits")
    op.drop_index("ix_insights_keyword_hits_tenant_id_customer_id_occurred_at", table_name="insights_keyword_hits")
    op.drop_table("insights_keyword_hits")
    op.drop_table("insights_tag_rules")
