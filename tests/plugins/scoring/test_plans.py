"""The incremental update of one customer reads only that customer's rows, whatever the tenant's size.

Each statement of ``rescore`` is planned by SQLite (``EXPLAIN QUERY PLAN``, with the parameters it
was sent with) and every table it reads must be reached through an index range bounded by the
customer (``customer_id=?`` or ``id=?``), never a scan of the table or a range of the tenant.
SQLite plans a new tenant without statistics, as these tests do, so the plans are the ones a
freshly imported tenant of a million customers gets.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Base
from guanxi.core.runtime import Runtime
from tests.plugins.scoring.conftest import NOW, Shop

pytestmark = pytest.mark.plugins("scoring")

#: one line of a plan that reads a table: how (SCAN or SEARCH), which table, and the rest
_ACCESS = re.compile(r"^(SCAN|SEARCH) (\w+)(.*)$")


async def _plans_of_rescore(runtime: Runtime, ctx: RequestContext, customer_id: Any) -> list[tuple[str, list[str]]]:
    from guanxi.plugins.scoring.recompute import rescore

    sent: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            sent.append((statement, parameters))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    try:
        await rescore(runtime, ctx.tenant_id, customer_id, "test")
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)
    plans = []
    async with runtime.engine.connect() as conn:
        for statement, parameters in sent:
            rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
            plans.append((statement, [str(r[3]) for r in rows]))
    return plans


async def test_one_customer_s_update_reads_only_that_customer_s_rows(shop: Shop, runtime: Runtime, ctx: RequestContext) -> None:
    """Interactions, identities (followers and engagement rate per channel), the profile and
    the score of the customer: each read is a range of an index bounded by the
    customer. (The social component's ``GROUP BY customer_id, channel`` made SQLite read every
    identity of the tenant through the unique ``(tenant, channel, external id)`` index, which
    yields that order: 60 ms per update at a million customers.) And no statement reads the
    customer's interactions more than twice (once for engagement, once for the purchases, which
    recency, frequency and monetary value share; they read them three times once)."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans (PostgreSQL plans these tiny tables by statistics: seq scans)")
    customers = [await shop.customer(f"Customer {i}", company="ACME", emails=[f"c{i}@example.com"]) for i in range(3)]
    for cid in customers:
        await shop.identity(cid, "douyin", 1200, engagement_rate=0.05)
        await shop.identity(cid, "wecom", 30)
        await shop.interact(cid, "message_in", at=NOW)
        await shop.interact(cid, "purchase", at=NOW, amount=120)
    tables = set(Base.metadata.tables)
    plans = await _plans_of_rescore(runtime, ctx, customers[1])
    read = set()
    for statement, lines in plans:
        interactions_read = 0
        for line in lines:
            found = _ACCESS.match(line)
            if found is None or found.group(2) not in tables:
                continue  # subqueries, co-routines, temporary b-trees
            how, table, rest = found.groups()
            read.add(table)
            interactions_read += table == "interactions"
            assert how == "SEARCH" and re.search(r"\b(customer_id|id)=\?", rest), f"{line}\nin: {statement[:300]}"
        # engagement reads them once; recency, frequency and monetary value share one aggregate
        # of the purchases (a CTE)
        assert interactions_read <= 2, f"interactions read {interactions_read} times by: {statement[:300]}"
    assert {"interactions", "identities", "customers", "scoring_scores"} <= read
