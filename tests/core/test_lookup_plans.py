"""Lookups by a pair of keys search their index, however many rows the tenant has: SQLite planned
``(a, b) IN (VALUES …)`` as a walk over every row of the tenant (bench/soak.py: the inbox
worker's identity lookup did 4.2x the work after 10 minutes of a growing tenant). Each lookup
now names the first key with ``=`` and the second with ``IN``, one statement per first key."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event

from guanxi import Runtime
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.queues import inbox
from guanxi.core.services import customers

T0 = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


async def plans(runtime: Runtime, prefix: str, call: Callable[[], Awaitable[Any]]) -> list[str]:
    """The SQLite plans of the statements starting with ``prefix`` that ``call`` sends."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the plans are SQLite's (PostgreSQL plans with statistics)")
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().startswith(prefix):
            seen.append((statement, parameters))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", listener)
    try:
        await call()
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", listener)
    assert seen, f"no statement starting with {prefix!r}"
    found = []
    async with runtime.engine.connect() as conn:
        for statement, parameters in seen:
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
            found.append(" / ".join(str(row[3]) for row in rows))
    return found


async def test_the_inbox_batch_finds_its_accounts_by_channel_and_external_id(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    for n in range(4):
        event_ = InboundEvent(
            channel="wecom" if n % 2 else "email",
            provider_event_id=f"plan-{n}",
            occurred_at=T0 + dt.timedelta(minutes=n),
            identity=ProfileInput(external_id=f"plan-person-{n % 2}"),
            kind="message_in",
            text=f"hi {n}",
        )
        await inbox.ingest(runtime, tenant_id, event_)

    async def drain() -> None:
        while await inbox.run_once(runtime, tenant_id=tenant_id):
            pass

    found = await plans(runtime, "SELECT identities.", drain)
    lookups = [p for p in found if "external_id=?" in p]
    assert len(lookups) >= 2, found  # one statement per channel of the batch
    for plan in found:
        assert "(tenant_id=?)" not in plan, plan  # never the tenant's whole range


async def test_duplicate_contact_points_are_found_through_the_kind_value_index(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async def look() -> None:
        async with runtime.session(tenant_id) as session:
            await customers.duplicates_of(session, ["+8613800000000"], ["dup@example.com"])

    found = await plans(runtime, "SELECT contact_points.", look)
    assert len(found) == 2, found  # phones, then e-mails
    for plan in found:
        assert "ix_contact_points_tenant_id_kind_value_customer_id (tenant_id=? AND kind=? AND value=?)" in plan, plan
        assert "created_at" not in plan, plan  # not a walk over the tenant's customers by age
