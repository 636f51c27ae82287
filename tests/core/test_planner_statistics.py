"""After a bulk load, PostgreSQL's planner statistics know the new tenant (``ANALYZE``,
:mod:`guanxi.core.storage.statistics`): without them the planner estimates ~1 row for the tenant
and may read every row of it per customer (a page of 50 took 522 ms instead of 2.6 ms)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, Tenant, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.storage.statistics import refresh_statistics
from guanxi.core.storage.tenancy import UNSCOPED, unscoped
from guanxi.demo.generator import load_demo


def _postgres_only(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics: PostgreSQL only (a no-op on SQLite, pinned below)")


async def _estimated_customers(db: Any, tenant_id: uuid.UUID) -> float:
    """The planner's estimate of the tenant's customers."""
    plan = (
        await db.execute(
            text("EXPLAIN (FORMAT JSON) SELECT * FROM customers WHERE tenant_id = :t").execution_options(**{UNSCOPED: True}),
            {"t": tenant_id},
        )
    ).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


async def test_refresh_statistics_makes_the_planner_know_a_tenant_loaded_in_the_same_transaction(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """400 customers inserted in bulk are invisible to the planner (a new tenant: a handful of
    rows estimated) until ``refresh_statistics`` runs, in the loading transaction itself."""
    _postgres_only(runtime)
    now = utcnow()
    rows = [{"id": new_id(), "tenant_id": tenant_id, "display_name": f"bulk {i}", "created_at": now, "updated_at": now} for i in range(400)]
    async with runtime.write_session(tenant_id) as session:
        await session.execute(insert(Customer), rows)
        before = await _estimated_customers(session, tenant_id)
        assert await refresh_statistics(session, ["customers"]) is True
        after = await _estimated_customers(session, tenant_id)
    assert after >= 200, after
    assert before < after / 2, (before, after)


async def test_the_demo_loader_leaves_statistics_that_know_its_tenant(runtime: Runtime) -> None:
    """``guanxi demo`` loads a tenant in bulk and refreshes the statistics before it commits."""
    _postgres_only(runtime)
    summary = await load_demo(runtime, slug=f"stats-{secrets.token_hex(4)}", customers=120)
    async with runtime.session(None) as session, session.begin():
        with unscoped(session):
            assert (await session.execute(select(Tenant.id).where(Tenant.id == summary.tenant_id))).scalar_one()
        assert await _estimated_customers(session, summary.tenant_id) >= 60


async def test_refresh_statistics_is_a_no_op_on_sqlite(runtime: Runtime) -> None:
    """SQLite plans these lookups without statistics: nothing runs and False says so."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    async with runtime.engine.connect() as conn:
        assert await refresh_statistics(conn) is False
        assert (await conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))).scalar_one() == 0
