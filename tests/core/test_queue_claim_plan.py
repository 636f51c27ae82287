"""Claiming one tenant's inbox rows searches the due rows by (tenant, status), however many rows
the tenant has received: bench/soak.py found this statement's work growing with the inbox
(SQLite read every row of the tenant through its (tenant_id, received_at) index)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event

from guanxi import Runtime
from guanxi.core.queues import inbox


async def test_a_tenant_claim_searches_the_tenant_claim_index(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's (PostgreSQL plans with statistics)")
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("UPDATE inbox_events"):
            seen.append((statement, parameters))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", listener)
    try:
        await inbox.run_once(runtime, tenant_id=tenant_id)
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", listener)
    statement, parameters = seen[0]
    async with runtime.engine.connect() as conn:
        plan = " / ".join(str(row[3]) for row in (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all())
    assert "ix_inbox_events_tenant_claim (tenant_id=? AND status=?)" in plan, plan
    assert "received_at" not in plan, plan
