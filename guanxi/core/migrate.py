"""Alembic migrations for core and the enabled plugins (``guanxi db upgrade``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from guanxi.core.errors import PluginError
from guanxi.core.runtime import Runtime

CORE_MIGRATIONS = Path(__file__).parent / "migrations"


def version_locations(runtime: Runtime) -> list[Path]:
    """Core's version folder plus each enabled plugin's (from ``guanxi_migrations``)."""
    locations = [CORE_MIGRATIONS / "versions"]
    for found in runtime.pm.hook.guanxi_migrations():
        if found is None:
            continue
        path = Path(found)
        if not path.is_dir():
            raise PluginError(f"a plugin's guanxi_migrations() names {path}, which is not a folder")
        locations.append(path)
    return locations


def alembic_config(runtime: Runtime) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in version_locations(runtime)))
    cfg.attributes["database_settings"] = runtime.settings.database
    return cfg


def _with_connection(cfg: Config, fn: Any) -> Any:
    def run(sync_conn: Connection) -> Any:
        cfg.attributes["connection"] = sync_conn
        try:
            return fn(sync_conn)
        finally:
            cfg.attributes.pop("connection", None)

    return run


async def upgrade(runtime: Runtime, target: str = "heads") -> list[str]:
    """Apply every pending revision of core and the enabled plugins; return the new heads."""
    cfg = alembic_config(runtime)
    async with runtime.engine.begin() as conn:
        await conn.run_sync(_with_connection(cfg, lambda _c: command.upgrade(cfg, target)))
    return await current(runtime)


async def current(runtime: Runtime) -> list[str]:
    async with runtime.engine.connect() as conn:
        heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    return sorted(heads)


async def pending(runtime: Runtime) -> list[str]:
    """Revisions known to the enabled set that the database has not applied."""
    cfg = alembic_config(runtime)
    script = ScriptDirectory.from_config(cfg)
    applied = set(await current(runtime))
    todo = []
    for head in script.get_heads():
        for rev in script.iterate_revisions(head, "base"):
            if rev.revision in applied:
                break
            todo.append(rev.revision)
    return todo
