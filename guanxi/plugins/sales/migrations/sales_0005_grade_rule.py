"""sales: the tenant's rule deriving a grade field from the score (``sales_grade_rules``)

Revision ID: sales_0005_grade_rule
Revises: sales_0004_return_rules
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0005_grade_rule"
down_revision = "sales_0004_return_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sales_grade_rules",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("field_key", sa.String(64), nullable=False),
        sa.Column("bands", sa.JSON(), nullable=False),
        sa.Column("otherwise", sa.String(1000), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_sales_grade_rules_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_sales_grade_rules"),
    )


def downgrade() -> None:
    op.drop_table("sales_grade_rules")
