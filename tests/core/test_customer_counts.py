"""The maintained count of a tenant's live customers (``customer_counts``, kept by triggers on
``customers``: migration ``0023_counts``) equals ``count(*)`` after every kind of write, under
concurrent writers, and is what an unfiltered ``totalCount`` reads; filtered and ownership-scoped
counts stay ``count(*)`` of what the caller sees."""

from __future__ import annotations

import asyncio
import csv
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, func, insert, select, update

from guanxi.core.base.context import RequestContext
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, CustomerCount, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import counts, customers, merge, merge_undo, pipelines, privacy, queries
from guanxi.importer.csv_import import import_customers
from guanxi.testing.sql import count_statements


async def _kept_and_counted(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with runtime.session(tenant_id) as s:
        kept = int((await s.execute(queries.live_count())).scalar_one())
        live = select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None))
        counted = int((await s.execute(live)).scalar_one())
    return kept, counted


async def _assert_exact(runtime: Runtime, tenant_id: uuid.UUID, expected: int) -> None:
    assert await _kept_and_counted(runtime, tenant_id) == (expected, expected)


async def test_the_count_follows_creates_merges_unmerges_erasure_deletes_imports_and_rollbacks(
    runtime: Runtime, tenant_id: uuid.UUID, tmp_path: Path
) -> None:
    """Every write path moves the maintained count exactly as it moves ``count(*)`` of the live
    customers; another tenant's writes leave it alone."""
    ctx = RequestContext(tenant_id=tenant_id)
    await _assert_exact(runtime, tenant_id, 0)
    async with runtime.transaction(ctx) as tx:
        made = [await customers.create_customer(tx, customers.CustomerInput(display_name=f"c{i}")) for i in range(4)]
    await _assert_exact(runtime, tenant_id, 4)

    async with runtime.transaction(ctx) as tx:  # a merge leaves a tombstone: one live customer less
        await merge.merge_customers(tx, made[0].id, made[1].id)
    await _assert_exact(runtime, tenant_id, 3)
    async with runtime.transaction(ctx) as tx:  # undone: live again
        await merge_undo.undo_merge(tx, made[1].id)
    await _assert_exact(runtime, tenant_id, 4)

    async with runtime.transaction(ctx) as tx:  # erasure keeps the row, blanked: still counted
        await privacy.erase_customer(tx, made[2].id)
    await _assert_exact(runtime, tenant_id, 4)

    rows = [
        {"tenant_id": tenant_id, "id": new_id(), "display_name": f"bulk {i}", "merged_into_id": made[0].id if i % 10 == 0 else None}
        for i in range(300)
    ]
    async with runtime.write_session(tenant_id) as s:  # one bulk statement; a tenth born merged
        await s.execute(insert(Customer), rows)
    await _assert_exact(runtime, tenant_id, 4 + 270)
    async with runtime.write_session(tenant_id) as s:  # a plain delete, of a live row and of a tombstone
        await s.execute(delete(Customer).where(Customer.display_name.in_(["bulk 5", "bulk 10"])))
    await _assert_exact(runtime, tenant_id, 273)

    path = tmp_path / "import.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "EMAIL"])
        w.writerows([f"imported {i}", f"i{i}@example.com"] for i in range(25))
    report = await import_customers(runtime, tenant_id, path)
    assert report.errors == [] and report.created == 25
    await _assert_exact(runtime, tenant_id, 298)

    class RollbackError(Exception):
        pass

    try:
        async with runtime.transaction(ctx) as tx:
            await customers.create_customer(tx, customers.CustomerInput(display_name="gone"))
            raise RollbackError
    except RollbackError:
        pass
    await _assert_exact(runtime, tenant_id, 298)

    async with runtime.write_session(tenant_id) as s:  # unmerging by hand, and merging by hand
        await s.execute(update(Customer).where(Customer.display_name == "bulk 0").values(merged_into_id=None))
        await s.execute(update(Customer).where(Customer.display_name == "bulk 1").values(merged_into_id=made[0].id))
        await s.execute(update(Customer).where(Customer.display_name == "bulk 2").values(display_name="renamed"))
    await _assert_exact(runtime, tenant_id, 298)

    async with runtime.write_session(None) as session:
        other = await pipelines.create_tenant(session, f"o-{uuid.uuid4().hex[:8]}", "Other")
    async with runtime.transaction(RequestContext(tenant_id=other)) as tx:
        await customers.create_customer(tx, customers.CustomerInput(display_name="elsewhere"))
    await _assert_exact(runtime, tenant_id, 298)
    await _assert_exact(runtime, other, 1)


async def test_the_count_stays_exact_under_concurrent_writers(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Writers in concurrent transactions (on PostgreSQL, separate connections updating their own
    counter rows) creating, merging and rolling back leave the count equal to ``count(*)``."""

    async def writer(k: int) -> None:
        ctx = RequestContext(tenant_id=tenant_id)
        for round_ in range(3):
            try:
                async with runtime.transaction(ctx) as tx:
                    a = await customers.create_customer(tx, customers.CustomerInput(display_name=f"w{k}-{round_}-a"))
                    b = await customers.create_customer(tx, customers.CustomerInput(display_name=f"w{k}-{round_}-b"))
                    if round_ == 1:
                        await merge.merge_customers(tx, a.id, b.id)
                    if round_ == 2 and k % 2:
                        raise RuntimeError("roll back")
            except RuntimeError:
                pass

    await asyncio.gather(*(writer(k) for k in range(6)))
    # per writer: 2 + 1 (merged) + 2 (odd writers roll back their last round)
    await _assert_exact(runtime, tenant_id, 3 * (2 + 1 + 2) + 3 * (2 + 1))
    await counts.fold(runtime)  # the job core.counts_fold: one row per tenant, the same count
    assert await _rows(runtime, tenant_id) == 1
    await _assert_exact(runtime, tenant_id, 3 * (2 + 1 + 2) + 3 * (2 + 1))


async def _rows(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(CustomerCount))).scalar_one())


async def test_customers_inserted_a_statement_each_in_one_transaction_append_count_rows_that_fold_into_one(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """A driver's ``executemany`` runs the insert once per row, in one transaction. On PostgreSQL
    each firing of the count trigger appends a row (updating one row again and again made every
    update walk the versions before it: quadratic); the fold (the job ``core.counts_fold``, and
    the end of an import) makes them one row per tenant, the count unchanged throughout. On SQLite
    the trigger updates one row in place."""
    before = (await _kept_and_counted(runtime, tenant_id))[0]
    await counts.fold(runtime)
    rows_before = await _rows(runtime, tenant_id)
    async with runtime.write_session(tenant_id) as s:
        for i in range(200):
            await s.execute(insert(Customer), [{"tenant_id": tenant_id, "id": new_id(), "display_name": f"row {i}"}])
        assert (await _kept_and_counted(runtime, tenant_id)) == (before, before)  # another snapshot: none of them yet
    await _assert_exact(runtime, tenant_id, before + 200)
    postgres = runtime.engine.dialect.name == "postgresql"
    rows_after = await _rows(runtime, tenant_id)
    if postgres:  # a row per statement (two that drew the same random slot of 2³¹ add up in one: rare)
        assert rows_before + 190 <= rows_after <= rows_before + 200
    else:
        assert rows_after == 1
    assert await counts.fold(runtime, tenant_id) == (rows_after if postgres else 0)
    assert await _rows(runtime, tenant_id) == 1
    await _assert_exact(runtime, tenant_id, before + 200)


async def test_an_unfiltered_total_count_reads_the_maintained_count_and_scoped_counts_stay_exact(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    """``totalCount`` without a filter, for a caller who sees every customer, reads
    ``customer_counts`` (no ``count(*)`` over customers); a filter or a sales key's ownership
    counts the customers it sees."""
    from guanxi.core.services.users import create_user
    from guanxi.testing.plugin import api_key

    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        seller = await create_user(tx, email="s@example.com", name="S", role="sales")
        for i in range(5):
            await customers.create_customer(tx, customers.CustomerInput(display_name=f"p{i}", owner_id=seller.id if i < 2 else None))
    rows = [{"tenant_id": tenant_id, "id": new_id(), "display_name": f"b{i}", "created_at": utcnow()} for i in range(40)]
    async with runtime.write_session(tenant_id) as s:
        await s.execute(insert(Customer), rows)
    sales = await api_key(runtime, tenant_id, "sales", user_id=seller.id)
    q = "query Q($f: CustomerFilter) { customers(first: 1, filter: $f) { totalCount } }"

    async def total(variables: dict[str, Any], key: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = await client.post("/graphql", json={"query": q, "variables": variables}, headers=headers)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return int(r.json()["data"]["customers"]["totalCount"])

    for _ in range(2):  # the present path, then the SQL layer
        with count_statements(runtime.engine) as seen:
            assert await total({"f": None}) == 45
        assert any("customer_counts" in s for s in seen), seen
        assert not any("count(*)" in s.lower() and "customer_counts" not in s for s in seen), seen
        assert await total({"f": {"unassigned": True}}) == 43
        with count_statements(runtime.engine) as seen:
            assert await total({"f": None}, sales) == 2
        assert not any("customer_counts" in s for s in seen), seen


async def test_0024_count_deltas_down_and_up_keeps_every_tenants_count(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Downgrading ``0024_count_deltas`` folds the appended rows into 0023's slot 0 and restores
    the update-in-place triggers; upgrading again appends. The count is exact at each step, and
    the triggers installed at each step keep counting."""
    from guanxi.core.migrate import migrate_to

    ctx = RequestContext(tenant_id=tenant_id)

    async def create(name: str) -> None:
        async with runtime.transaction(ctx) as tx:
            await customers.create_customer(tx, customers.CustomerInput(display_name=name))

    await create("first")
    await create("second")
    base = (await _kept_and_counted(runtime, tenant_id))[0]
    try:
        await migrate_to(runtime, "core", "0023_counts")
        await _assert_exact(runtime, tenant_id, base)
        assert await _rows(runtime, tenant_id) == 1  # folded into slot 0
        await create("under 0023")
        await _assert_exact(runtime, tenant_id, base + 1)
    finally:
        await migrate_to(runtime, "core", "heads")
    await create("under 0024")
    await _assert_exact(runtime, tenant_id, base + 2)
