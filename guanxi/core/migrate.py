"""Alembic migrations for core and the enabled plugins (``guanxi db upgrade``).

Core and each plugin are separate Alembic histories, each with its own version table
(``alembic_version`` for core, ``alembic_version_<plugin>`` for a plugin). Core is upgraded
first, then each enabled plugin in the order of ``plugins.enabled``. A plugin that is later
disabled leaves its tables and its version table alone, and does not stop core or the other
plugins from upgrading.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from guanxi.core.base.errors import NotMigratedError, PluginError
from guanxi.core.hooks.manager import per_plugin
from guanxi.core.runtime import Runtime

CORE_MIGRATIONS = Path(__file__).parent / "migrations"
CORE_VERSION_TABLE = "alembic_version"
#: the PostgreSQL advisory lock that serialises ``guanxi db upgrade`` runs (any 64-bit number
#: no other application on the database uses; this one is "guanxi" in ASCII)
MIGRATION_LOCK_KEY = 0x6775616E7869


def histories(runtime: Runtime) -> list[tuple[str, Path, str]]:
    """(owner, version folder, version table) for core and each enabled plugin with migrations."""
    out = [("core", CORE_MIGRATIONS / "versions", CORE_VERSION_TABLE)]
    order = {name: i for i, name in enumerate(runtime.enabled_plugins)}
    found_all = sorted(per_plugin(runtime.pm.hook.guanxi_migrations), key=lambda pair: order.get(pair[0], len(order)))
    for name, found in found_all:
        path = Path(found)
        if not path.is_dir():
            raise PluginError(f"plugin {name!r}: guanxi_migrations() names {path}, which is not a folder")
        out.append((name, path, f"alembic_version_{name}"))
    return out


def alembic_config(runtime: Runtime, versions: Path, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions))
    cfg.attributes["database_settings"] = runtime.settings.database
    cfg.attributes["version_table"] = version_table
    return cfg


def _with_connection(cfg: Config, fn: Any) -> Any:
    def run(sync_conn: Connection) -> Any:
        cfg.attributes["connection"] = sync_conn
        try:
            return fn(sync_conn)
        finally:
            cfg.attributes.pop("connection", None)

    return run


@asynccontextmanager
async def migration_lock(runtime: Runtime) -> AsyncIterator[None]:
    """On PostgreSQL, hold a session advisory lock while migrating, so that several
    ``guanxi db upgrade`` started at once (one per host or container at deploy time) run one
    after the other: the first applies the pending revisions, the others find nothing to do.
    SQLite is migrated by one process (its write lock does not cover Alembic's version check)."""
    if runtime.engine.dialect.name != "postgresql":
        yield
        return
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()


async def upgrade(runtime: Runtime) -> dict[str, list[str]]:
    """Apply every pending revision of core, then of each enabled plugin; return the heads."""
    async with migration_lock(runtime):
        for _owner, versions, table in histories(runtime):
            cfg = alembic_config(runtime, versions, table)
            async with runtime.engine.begin() as conn:
                await conn.run_sync(_with_connection(cfg, lambda _c, cfg=cfg: command.upgrade(cfg, "heads")))
    return await current(runtime)


async def migrate_to(runtime: Runtime, owner: str, target: str) -> None:
    """Move one history (``core`` or an enabled plugin's) to ``target``: a revision, ``heads``,
    or ``base``; up or down, whichever it is from where the history stands. For a plugin's own
    tests of a data migration: go back before it, write rows as they were, come up again."""
    found = [(versions, table) for name, versions, table in histories(runtime) if name == owner]
    if not found:
        raise PluginError(f"no migration history named {owner!r} (core, or an enabled plugin with migrations)")
    ((versions, table),) = found
    cfg = alembic_config(runtime, versions, table)

    def move(conn: Connection) -> None:
        heads = _current_heads(conn, table)
        below = target == "base"
        if target not in ("heads", "base"):
            script = ScriptDirectory.from_config(cfg)
            passed = {r.revision for head in heads for r in script.iterate_revisions(head, "base")}
            below = target in passed and target not in heads
        (command.downgrade if below else command.upgrade)(cfg, target)

    async with migration_lock(runtime), runtime.engine.begin() as conn:
        await conn.run_sync(_with_connection(cfg, move))


def _current_heads(conn: Connection, version_table: str) -> tuple[str, ...]:
    return MigrationContext.configure(conn, opts={"version_table": version_table}).get_current_heads()


async def current(runtime: Runtime) -> dict[str, list[str]]:
    """Applied revisions per history (core and enabled plugins)."""
    out: dict[str, list[str]] = {}
    async with runtime.engine.connect() as conn:
        for owner, _versions, table in histories(runtime):
            heads = await conn.run_sync(_current_heads, table)
            out[owner] = sorted(heads)
    return out


async def pending(runtime: Runtime) -> dict[str, list[str]]:
    """Revisions not yet applied, per history."""
    applied = await current(runtime)
    out: dict[str, list[str]] = {}
    for owner, versions, table in histories(runtime):
        script = ScriptDirectory.from_config(alembic_config(runtime, versions, table))
        done = set(applied.get(owner, []))
        todo: list[str] = []
        for head in script.get_heads():
            for rev in script.iterate_revisions(head, "base"):
                if rev.revision in done:
                    break
                todo.append(rev.revision)
        out[owner] = todo
    return out


def _missing_sqlite_file(runtime: Runtime) -> str | None:
    """The path of a SQLite database file that does not exist (connecting would create it)."""
    url = runtime.engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return None if os.path.exists(database) else database


async def require_migrated(runtime: Runtime) -> None:
    """Fail with "run `guanxi db upgrade`" unless core's tables are at this version's head.

    Creates nothing: a SQLite database file that does not exist is reported, not created (a
    connection would create it), and the check only reads core's version table."""
    missing = _missing_sqlite_file(runtime)
    if missing is not None:
        raise NotMigratedError(f"the database {missing} does not exist yet: run `guanxi db upgrade` first")
    async with runtime.engine.connect() as conn:
        heads = await conn.run_sync(_current_heads, CORE_VERSION_TABLE)
    head = core_head()
    if not heads:
        raise NotMigratedError("the database has no Guanxi tables yet: run `guanxi db upgrade` first")
    if head not in heads:
        raise NotMigratedError(f"the database is at revision {', '.join(heads)}, this Guanxi needs {head}: run `guanxi db upgrade`")


def core_head() -> str:
    """The newest revision of core's own history."""
    script = ScriptDirectory.from_config(_bare_config(CORE_MIGRATIONS / "versions"))
    (head,) = script.get_heads()
    return head


def _bare_config(versions: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions))
    return cfg
