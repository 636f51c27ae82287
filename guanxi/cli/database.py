"""``guanxi db …`` (migrations, row-level security) and ``guanxi tenant …``."""

from __future__ import annotations

from typing import Any

import click

from guanxi.cli.common import run_async, runtime_of
from guanxi.core.runtime import Runtime


@click.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply core's and the enabled plugins' pending migrations."""
    from guanxi.core import migrate

    heads = run_async(runtime_of(ctx), migrate.upgrade, start_plugins=False, needs_tables=False)
    for owner, revs in heads.items():
        click.echo(f"{owner}: {', '.join(revs) or 'no revisions'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the applied revisions and what is pending."""
    from guanxi.core import migrate

    async def show(rt: Runtime) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        return await migrate.current(rt), await migrate.pending(rt)

    heads, todo = run_async(runtime_of(ctx), show, start_plugins=False, needs_tables=False)
    for owner in heads:
        click.echo(f"{owner}: applied {', '.join(heads[owner]) or 'nothing'}; pending {', '.join(todo.get(owner, [])) or 'nothing'}")


@db.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def db_backup(ctx: click.Context, target: str) -> None:
    """SQLite: copy the database to TARGET while the server runs (SQLite's online backup API).
    PostgreSQL: use pg_dump (see docs/operations.md, Backup and restore)."""
    import sqlite3
    from pathlib import Path

    url = runtime_of(ctx).engine.url
    if url.get_backend_name() != "sqlite":
        raise click.UsageError("guanxi db backup copies a SQLite database; for PostgreSQL use pg_dump -Fc (docs/operations.md)")
    source = url.database
    if not source or source == ":memory:" or not Path(source).is_file():
        raise click.UsageError(f"no SQLite database file at {source!r}")
    if Path(target).exists():
        raise click.UsageError(f"{target} exists; choose a new file")
    src = sqlite3.connect(f"file:{Path(source).resolve()}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        # page by page, releasing the read lock between steps: writers are not held up
        src.backup(dst, pages=1024, sleep=0.005)
        (check,) = dst.execute("PRAGMA integrity_check").fetchone()
    finally:
        dst.close()
        src.close()
    if check != "ok":
        Path(target).unlink(missing_ok=True)
        raise click.ClickException(f"the copy failed its integrity check ({check}); nothing was kept")
    click.echo(f"backed up {source} to {target} ({Path(target).stat().st_size} bytes)")


@db.command("rls")
@click.argument("action", type=click.Choice(["enable", "disable", "status"]))
@click.pass_context
def db_rls(ctx: click.Context, action: str) -> None:
    """PostgreSQL row-level security on every tenant table (a second wall behind the ORM's
    tenant filter). Then set database.row_level_security = true and run as a non-superuser."""
    from guanxi.core.storage import rls

    async def run(rt: Runtime) -> Any:
        if rt.engine.dialect.name != "postgresql":
            raise click.ClickException(f"row-level security needs PostgreSQL (this database is {rt.engine.dialect.name})")
        async with rt.engine.begin() as conn:
            return await conn.run_sync(getattr(rls, action))

    result = run_async(runtime_of(ctx), run, start_plugins=False)
    if action == "status":
        for table, state in result.items():
            flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in state.items())
            click.echo(f"{table}: {flags}")
        return
    click.echo(f"row-level security {action}d on {len(result)} tables: {', '.join(result)}")
    if action == "enable" and not runtime_of(ctx).settings.database.row_level_security:
        click.echo("now set database.row_level_security = true (GUANXI__DATABASE__ROW_LEVEL_SECURITY=true) and restart", err=True)


@click.group()
def tenant() -> None:
    """Tenants (companies) in this database."""


@tenant.command("create")
@click.argument("slug")
@click.argument("name")
@click.pass_context
def tenant_create(ctx: click.Context, slug: str, name: str) -> None:
    """Create a tenant with the default pipeline."""
    from guanxi.core.services.pipelines import create_tenant

    async def make(rt: Runtime) -> Any:
        async with rt.write_session(None) as session:
            return await create_tenant(session, slug, name)

    click.echo(f"tenant {slug} created: {run_async(runtime_of(ctx), make)}")


def register(group: click.Group) -> None:
    """Add these commands to the ``guanxi`` group."""
    group.add_command(db)
    group.add_command(tenant)
