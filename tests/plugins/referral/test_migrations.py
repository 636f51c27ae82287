"""The referral plugin's own Alembic history creates exactly its models' tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from guanxi import Runtime
from guanxi.core.domain.models import Base
from guanxi.plugins.referral import models

pytestmark = pytest.mark.plugins("referral")


async def test_the_migrated_tables_match_the_models(runtime: Runtime) -> None:
    mine = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == models.__name__}
    assert mine == {
        "referral_campaigns",
        "referral_tokens",
        "referral_attributions",
        "referral_closure",
        "referral_credits",
        "referral_rewards",
        "referral_coupons",
    }

    def only_mine(obj, name, type_, _r, _c):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": only_mine})
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
