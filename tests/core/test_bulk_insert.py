"""``guanxi.core.storage.bulk.insert_rows``: the CSV import's driver-level executemany."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

import pytest
from sqlalchemy import select

from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Tag
from guanxi.core.runtime import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.storage.bulk import insert_rows
from guanxi.core.storage.tenancy import TenantScopeError

TAGS = cast(Any, Tag).__table__


def _tag(name: str, at: dt.datetime) -> dict[str, Any]:
    return {"id": new_id(), "group_name": "bulk", "name": name, "color": None, "created_at": at}


async def test_rows_are_written_for_the_sessions_tenant_and_read_back_as_the_orm_wrote_them(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Values go through their column types (UUIDs, aware timestamps), the same timestamp object
    shared by rows is converted once and lands on every row, and the tenant is the session's."""
    at = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    rows = [_tag(f"t{i}", at) for i in range(3)]
    async with runtime.session(tenant_id) as s, s.begin():
        await insert_rows(s, TAGS, rows)
    async with runtime.session(tenant_id) as s:
        found = (await s.execute(select(Tag).where(Tag.group_name == "bulk").order_by(Tag.name))).scalars().all()
    assert [(t.id, t.name, t.created_at) for t in found] == [(r["id"], r["name"], at) for r in rows]
    async with runtime.write_session(None) as session:
        other_tenant_id = await create_tenant(session, f"bulk-{uuid.uuid4().hex[:8]}", "Other")
    async with runtime.session(other_tenant_id) as s:
        assert (await s.execute(select(Tag).where(Tag.group_name == "bulk"))).first() is None


async def test_a_tenant_in_the_rows_or_a_session_without_one_is_refused(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    at = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    async with runtime.session(tenant_id) as s, s.begin():
        with pytest.raises(TenantScopeError):
            await insert_rows(s, TAGS, [{**_tag("x", at), "tenant_id": tenant_id}])
    async with runtime.session(None) as s, s.begin():
        with pytest.raises(TenantScopeError):
            await insert_rows(s, TAGS, [_tag("y", at)])
