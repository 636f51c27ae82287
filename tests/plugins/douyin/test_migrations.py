"""The plugin's Alembic history creates exactly the tables its models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import guanxi.plugins.douyin.models  # noqa: F401 - puts the douyin_ tables on Base.metadata
from guanxi import Runtime
from guanxi.core.domain.models import Base


@pytest.mark.plugins("douyin")
async def test_the_douyin_migration_matches_the_models(runtime: Runtime) -> None:
    tables = {t for t in Base.metadata.tables if t.startswith("douyin_")}
    assert len(tables) == 4

    def diff(conn):  # type: ignore[no-untyped-def]
        opts = {"compare_type": True, "include_object": lambda _o, name, type_, _r, _c: type_ != "table" or name in tables}
        return compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)

    async with runtime.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
