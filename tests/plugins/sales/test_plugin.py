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
    assert tables == {"sales_pools", "sales_pool_leads", "sales_pool_moves", "sales_followup_plans", "sales_followup_runs"}

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
