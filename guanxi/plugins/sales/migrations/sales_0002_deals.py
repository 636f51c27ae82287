"""sales: deal pipelines and stages, products, deals, contracts, instalments and payments; the
pools' contract return rule (sales_pools.return_after_contract_days)

Revision ID: sales_0002_deals
Revises: sales_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sales_0002_deals"
down_revision = "sales_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 2)


def _fk(table: str, cols: list[str], target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", *cols], [f"{target}.tenant_id", f"{target}.id"], name=f"fk_{table}_tenant_id_{'_'.join(cols)}_{target}"
    )


def _pk(table: str, *cols: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("tenant_id", *cols, name=f"pk_{table}")


def _ix(table: str, *cols: str) -> None:
    op.create_index(f"ix_{table}_tenant_id_{'_'.join(cols)}", table, ["tenant_id", *cols])


def _ids() -> list[sa.Column[object]]:
    return [sa.Column("tenant_id", sa.Uuid(), nullable=False), sa.Column("id", sa.Uuid(), nullable=False)]


def upgrade() -> None:
    op.add_column("sales_pools", sa.Column("return_after_contract_days", sa.Integer(), nullable=True))
    op.create_table(
        "sales_deal_pipelines",
        *_ids(),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_sales_deal_pipelines_tenant_id_tenants"),
        _pk("sales_deal_pipelines", "id"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_sales_deal_pipelines_tenant_id_key"),
    )
    op.create_table(
        "sales_deal_stages",
        *_ids(),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(8), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        _fk("sales_deal_stages", ["pipeline_id"], "sales_deal_pipelines"),
        _pk("sales_deal_stages", "id"),
        sa.UniqueConstraint("tenant_id", "pipeline_id", "key", name="uq_sales_deal_stages_tenant_id_pipeline_id_key"),
    )
    op.create_table(
        "sales_products",
        *_ids(),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("archived_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_sales_products_tenant_id_tenants"),
        _pk("sales_products", "id"),
        sa.UniqueConstraint("tenant_id", "sku", name="uq_sales_products_tenant_id_sku"),
    )
    op.create_table(
        "sales_deals",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("lost_reason", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        _fk("sales_deals", ["customer_id"], "customers"),
        _fk("sales_deals", ["stage_id"], "sales_deal_stages"),
        _pk("sales_deals", "id"),
    )
    _ix("sales_deals", "customer_id")
    _ix("sales_deals", "status", "closed_at")
    _ix("sales_deals", "owner_id", "status")
    op.create_table(
        "sales_deal_lines",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        _fk("sales_deal_lines", ["customer_id"], "customers"),
        _fk("sales_deal_lines", ["deal_id"], "sales_deals"),
        _pk("sales_deal_lines", "id"),
    )
    _ix("sales_deal_lines", "deal_id")
    op.create_table(
        "sales_deal_moves",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage_id", sa.Uuid(), nullable=True),
        sa.Column("to_stage_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("at", TZ, nullable=False),
        _fk("sales_deal_moves", ["customer_id"], "customers"),
        _pk("sales_deal_moves", "id"),
    )
    _ix("sales_deal_moves", "deal_id", "at")
    op.create_table(
        "sales_contracts",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _fk("sales_contracts", ["customer_id"], "customers"),
        _fk("sales_contracts", ["deal_id"], "sales_deals"),
        _pk("sales_contracts", "id"),
        sa.UniqueConstraint("tenant_id", "deal_id", name="uq_sales_contracts_tenant_id_deal_id"),
    )
    _ix("sales_contracts", "customer_id", "ends_on")
    op.create_table(
        "sales_instalments",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("paid", MONEY, nullable=False),
        sa.Column("notified_at", TZ, nullable=True),
        _fk("sales_instalments", ["customer_id"], "customers"),
        _fk("sales_instalments", ["contract_id"], "sales_contracts"),
        _pk("sales_instalments", "id"),
    )
    _ix("sales_instalments", "due_on")
    _ix("sales_instalments", "contract_id")
    op.create_table(
        "sales_payments",
        *_ids(),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("instalment_id", sa.Uuid(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _fk("sales_payments", ["customer_id"], "customers"),
        _fk("sales_payments", ["instalment_id"], "sales_instalments"),
        _pk("sales_payments", "id"),
    )
    _ix("sales_payments", "contract_id")
    _ix("sales_payments", "received_at")


def downgrade() -> None:
    for table in (
        "sales_payments",
        "sales_instalments",
        "sales_contracts",
        "sales_deal_moves",
        "sales_deal_lines",
        "sales_deals",
        "sales_products",
        "sales_deal_stages",
        "sales_deal_pipelines",
    ):
        op.drop_table(table)
    with op.batch_alter_table("sales_pools") as batch:
        batch.drop_column("return_after_contract_days")
