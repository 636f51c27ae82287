"""The sales plugin's own Alembic history creates exactly its models' tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from guanxi.core.domain.models import Base
from guanxi.core.runtime import Runtime
from guanxi.plugins.sales import models

pytestmark = pytest.mark.plugins("sales")


async def test_migrated_database_matches_the_sales_models(runtime: Runtime) -> None:
    """A change of the sales models without a migration fails here."""
    tables = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == models.__name__}
    assert tables == {
        "sales_pools", "sales_pool_leads", "sales_pool_moves", "sales_followup_plans", "sales_followup_runs", "sales_grade_rules"
    }  # fmt: skip

    def sales_only(obj, name, type_, _r, _c):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in tables

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": sales_only})
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_migrated_database_matches_the_deal_models(runtime: Runtime) -> None:
    """A change of the deal and receivable models without a migration (sales_0002_deals) fails here."""
    from guanxi.plugins.sales.deals import models as deal_models

    tables = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == deal_models.__name__}
    assert len(tables) == 9

    def deals_only(obj, name, type_, _r, _c):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in tables

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": deals_only})
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_sales_0004_turns_the_contract_days_column_into_the_contract_rule_and_back(runtime: Runtime, tenant_id: object) -> None:
    """A pool of before sales_0004 with ``return_after_contract_days = 45`` applies the rule
    ``sales.contract_lapsed`` with 45 after the upgrade; a downgrade gives the column back."""
    import uuid

    import sqlalchemy as sa

    from guanxi.core.migrate import migrate_to

    pool_id = uuid.uuid4()
    pools = sa.table(
        "sales_pools", sa.column("tenant_id", sa.Uuid()), sa.column("id", sa.Uuid()), sa.column("key", sa.String()),
        sa.column("name", sa.String()), sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("return_after_contract_days", sa.Integer()), sa.column("return_rules", sa.JSON()),
    )  # fmt: skip
    try:
        await migrate_to(runtime, "sales", "sales_0003_ops")
        async with runtime.engine.begin() as conn:
            await conn.execute(
                pools.insert().values(tenant_id=tenant_id, id=pool_id, key="legacy", name="Legacy", return_after_contract_days=45,
                                      created_at=sa.func.current_timestamp())
            )  # fmt: skip
        await migrate_to(runtime, "sales", "heads")
        async with runtime.engine.connect() as conn:
            rules = (await conn.execute(sa.select(pools.c.return_rules).where(pools.c.id == pool_id))).scalar_one()
        assert rules == {"sales.contract_lapsed": 45}
        await migrate_to(runtime, "sales", "sales_0003_ops")
        async with runtime.engine.connect() as conn:
            days = (await conn.execute(sa.select(pools.c.return_after_contract_days).where(pools.c.id == pool_id))).scalar_one()
        assert days == 45
    finally:
        await migrate_to(runtime, "sales", "heads")
