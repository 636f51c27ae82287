"""The automation plugin's own Alembic history creates exactly its models' tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from guanxi.core.domain.models import Base
from guanxi.core.runtime import Runtime

pytestmark = pytest.mark.plugins("automation")


async def test_migrated_database_matches_the_automation_models(runtime: Runtime) -> None:
    """A change of the automation models without a migration fails here."""
    tables = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__.startswith("guanxi.plugins.automation.")}
    assert {"automation_segments", "automation_segment_members", "automation_bulk_sends", "automation_bulk_recipients"} <= tables

    def ours(obj, name, type_, _r, _c):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in tables

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": ours})
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
