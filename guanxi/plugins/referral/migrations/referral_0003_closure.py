"""referral_closure: the referral forest's transitive closure, backfilled from the attributions

Revision ID: referral_0003
Revises: referral_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "referral_0003"
down_revision = "referral_0002"
branch_labels = None
depends_on = None

#: every (ancestor, descendant, steps) of the active attributions by a customer, per tenant
BACKFILL = """
INSERT INTO referral_closure (tenant_id, ancestor_id, depth, descendant_id)
WITH RECURSIVE walk (tenant_id, ancestor_id, depth, descendant_id) AS (
    SELECT tenant_id, inviter_customer_id, 1, customer_id
    FROM referral_attributions
    WHERE status = 'active' AND inviter_customer_id IS NOT NULL
  UNION ALL
    SELECT w.tenant_id, w.ancestor_id, w.depth + 1, a.customer_id
    FROM walk w
    JOIN referral_attributions a
      ON a.tenant_id = w.tenant_id AND a.inviter_customer_id = w.descendant_id AND a.status = 'active'
    WHERE w.depth < 10000
)
SELECT tenant_id, ancestor_id, depth, descendant_id FROM walk
"""


def upgrade() -> None:
    op.create_table(
        "referral_closure",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("ancestor_id", sa.Uuid(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("descendant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ancestor_id"], ["customers.tenant_id", "customers.id"], name="fk_referral_closure_ancestor_customers"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "descendant_id"], ["customers.tenant_id", "customers.id"], name="fk_referral_closure_descendant_customers"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "ancestor_id", "depth", "descendant_id", name="pk_referral_closure"),
    )
    op.create_index("ix_referral_closure_tenant_id_descendant_id_depth", "referral_closure", ["tenant_id", "descendant_id", "depth"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("referral_closure")
