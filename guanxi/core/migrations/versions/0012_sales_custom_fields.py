"""custom fields of customers: typed definitions per tenant and a typed value table

Revision ID: 0012_sales_fields
Revises: 0011_tenants_quotas
Create Date: 2026-12-06 23:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sales_fields"
down_revision: str | Sequence[str] | None = "0011_tenants_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "field_definitions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_field_definitions_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_field_definitions")),
        sa.UniqueConstraint("tenant_id", "entity", "key", name=op.f("uq_field_definitions_tenant_id_entity_key")),
    )
    op.create_table(
        "customer_field_values",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("field_id", sa.Uuid(), nullable=False),
        sa.Column("text_value", sa.String(length=1000), nullable=True),
        sa.Column("number_value", sa.Numeric(precision=24, scale=6), nullable=True),
        sa.Column("date_value", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_customer_field_values_tenant_id_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "field_id"],
            ["field_definitions.tenant_id", "field_definitions.id"],
            name=op.f("fk_customer_field_values_tenant_id_field_id_field_definitions"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_customer_field_values")),
    )
    for cols in (["customer_id"], ["field_id", "text_value"], ["field_id", "number_value"], ["field_id", "date_value"]):
        op.create_index(op.f(f"ix_customer_field_values_tenant_id_{'_'.join(cols)}"), "customer_field_values", ["tenant_id", *cols])


def downgrade() -> None:
    op.drop_table("customer_field_values")
    op.drop_table("field_definitions")
