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


def test_douyin_0002_backfills_the_person_an_ignored_event_is_about_from_its_body() -> None:
    """Events kept before douyin_0002 get their user_open_id / user_union_id from the stored body,
    the way the webhook now records them (the business account is never the person)."""
    import importlib.util
    from pathlib import Path

    import guanxi.plugins.douyin as package

    path = Path(package.__file__).parent / "migrations" / "douyin_0002_event_users.py"
    spec = importlib.util.spec_from_file_location("douyin_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    person = module._person
    body = {"from_user_id": "cust-1", "to_user_id": "biz", "content": {"user_infos": [{"open_id": "cust-1", "union_id": "U1"}]}}
    assert person("im_group_receive_msg", "biz", body) == ("cust-1", "U1")
    assert person("im_group_receive_msg", "biz", '{"from_user_id": "biz", "to_user_id": "cust-2", "content": {}}') == ("cust-2", None)
    comment = {"from_user_id": "biz", "to_user_id": "", "content": {"comment_user_id": "cust-3"}}
    assert person("item_comment_reply", "biz", comment) == ("cust-3", None)
    assert person("im_group_receive_msg", "biz", {"from_user_id": "biz", "to_user_id": "biz"}) == (None, None)
