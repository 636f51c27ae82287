"""Migrations: core and plugin histories, and models that match them."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from guanxi.core.domain.models import Base
from guanxi.core.migrate import core_head, upgrade
from guanxi.core.runtime import Runtime


async def test_migrated_database_matches_the_models(runtime: Runtime) -> None:
    """A model change without a migration fails here."""
    import guanxi_loyalty.models  # noqa: F401 - its table is on Base.metadata once imported

    # plugin models imported by other tests are on Base.metadata too: compare core's tables only
    core_tables = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == "guanxi.core.domain.models"}
    assert "customers" in core_tables and "loyalty_accounts" not in core_tables

    def core_only(obj, name, type_, _r, _c):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in core_tables

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": core_only})
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_plugin_tables_exist_only_once_enabled_and_survive_disabling(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"

    async def tables(rt: Runtime) -> set[str]:
        async with rt.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    core_only = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": ""})
    assert (await upgrade(core_only)) == {"core": [core_head()]}
    assert "loyalty_accounts" not in await tables(core_only)
    await core_only.stop()

    with_plugin = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "loyalty"})
    assert (await upgrade(with_plugin)) == {"core": [core_head()], "loyalty": ["loyalty_0001"]}
    assert {"loyalty_accounts", "alembic_version_loyalty"} <= await tables(with_plugin)
    await with_plugin.stop()

    disabled_again = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": ""})
    assert (await upgrade(disabled_again)) == {"core": [core_head()]}  # no error about loyalty's revision
    assert "loyalty_accounts" in await tables(disabled_again)
    await disabled_again.stop()


def test_each_migration_history_has_a_single_head() -> None:
    """Core and every builtin plugin keep one linear history: a branch merged with a migration
    made on an older main shows up here as two heads (rebase it onto the latest revision)."""
    from alembic.script import ScriptDirectory

    from guanxi.core.migrate import CORE_MIGRATIONS

    root = Path(__file__).resolve().parents[2] / "guanxi"
    folders = [CORE_MIGRATIONS / "versions", *sorted(p for p in (root / "plugins").glob("*/migrations") if p.is_dir())]
    assert len(folders) >= 4  # core, wecom, referral, scoring
    for folder in folders:
        script = ScriptDirectory(str(CORE_MIGRATIONS), version_locations=[str(folder)])
        heads = script.get_heads()
        assert len(heads) == 1, f"{folder.relative_to(root)} has heads {heads}"


async def test_sqlite_stores_the_rows_that_are_their_key_once(runtime: Runtime) -> None:
    """Contact points and tag links have no id: their primary key is the row. On SQLite they are
    ``WITHOUT ROWID`` tables, migrated and created from the models alike, so the key is not kept a
    second time in an automatic index beside a hidden rowid (~340 bytes per imported customer)."""
    import pytest
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateTable

    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL tables have no rowid")
    async with runtime.engine.connect() as conn:
        for table in ("contact_points", "customer_tags"):
            sql = (await conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table})).scalar_one()
            assert "WITHOUT ROWID" in sql, sql
            assert "WITHOUT ROWID" in str(CreateTable(Base.metadata.tables[table]).compile(dialect=runtime.engine.dialect))
