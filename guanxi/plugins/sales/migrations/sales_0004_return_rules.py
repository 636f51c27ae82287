"""sales: a pool's contributed return rules with their parameters (``return_rules``, JSON),
replacing the dedicated ``return_after_contract_days`` column (its value becomes the rule
``sales.contract_lapsed``)

Revision ID: sales_0004_return_rules
Revises: sales_0003_ops
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "sales_0004_return_rules"
down_revision = "sales_0003_ops"
branch_labels = None
depends_on = None

CONTRACT_RULE = "sales.contract_lapsed"


def _pools(*columns: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table("sales_pools", sa.column("tenant_id", sa.Uuid()), sa.column("id", sa.Uuid()), *columns)


def upgrade() -> None:
    op.add_column("sales_pools", sa.Column("return_rules", sa.JSON(), nullable=True))
    bind = op.get_bind()
    pools = _pools(sa.column("return_after_contract_days", sa.Integer()), sa.column("return_rules", sa.JSON()))
    rows = bind.execute(sa.select(pools.c.tenant_id, pools.c.id, pools.c.return_after_contract_days).where(
        pools.c.return_after_contract_days.is_not(None)
    )).all()  # fmt: skip
    for tenant_id, pool_id, days in rows:
        bind.execute(
            pools.update().where(pools.c.tenant_id == tenant_id, pools.c.id == pool_id).values(return_rules={CONTRACT_RULE: int(days)})
        )
    op.drop_column("sales_pools", "return_after_contract_days")  # native on SQLite 3.35+: no table copy under rows that refer to it


def downgrade() -> None:
    op.add_column("sales_pools", sa.Column("return_after_contract_days", sa.Integer(), nullable=True))
    bind = op.get_bind()
    pools = _pools(sa.column("return_after_contract_days", sa.Integer()), sa.column("return_rules", sa.JSON()))
    for tenant_id, pool_id, rules in bind.execute(sa.select(pools.c.tenant_id, pools.c.id, pools.c.return_rules)).all():
        days = (rules or {}).get(CONTRACT_RULE)
        if days is not None:
            bind.execute(
                pools.update().where(pools.c.tenant_id == tenant_id, pools.c.id == pool_id).values(return_after_contract_days=int(days))
            )
    op.drop_column("sales_pools", "return_rules")
