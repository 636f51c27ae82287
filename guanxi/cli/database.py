"""``guanxi db …`` (migrations, row-level security) and ``guanxi tenant …``."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from guanxi.cli.common import run_async, runtime_of
from guanxi.core.runtime import Runtime

T = TypeVar("T")


@click.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply core's and the enabled plugins' pending migrations."""
    from guanxi.core import migrate
    from guanxi.core.services import accounts, reminders

    async def run(rt: Runtime) -> tuple[dict[str, list[str]], tuple[list[str], list[str]]]:
        heads = await migrate.upgrade(rt)
        await reminders.schedule_deployment_jobs(rt)  # the file sweep, the count fold
        return heads, await accounts.import_config_accounts(rt)

    heads, (imported, skipped) = run_async(runtime_of(ctx), run, start_plugins=False, needs_tables=False)
    for owner, revs in heads.items():
        click.echo(f"{owner}: {', '.join(revs) or 'no revisions'}")
    for name in imported:
        click.echo(f"imported the configured account {name}")
    for why in skipped:
        click.echo(f"not imported yet: {why} (run `guanxi db upgrade` again once it exists)", err=True)


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
    Path(target).parent.mkdir(parents=True, exist_ok=True)  # `backups/guanxi-….db` as the docs show it
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
@click.option("--time-zone", default="Asia/Shanghai", show_default=True, help="IANA time zone of the company.")
@click.option("--currency", default="CNY", show_default=True, help="ISO 4217 currency of amounts.")
@click.option("--locale", default="zh-CN", show_default=True, help="BCP 47 language of texts the system writes.")
@click.option("--plugins", default=None, help="Comma-separated loaded plugins it enables (default: all).")
@click.pass_context
def tenant_create(ctx: click.Context, slug: str, name: str, time_zone: str, currency: str, locale: str, plugins: str | None) -> None:
    """Create a tenant with the default pipeline."""
    from guanxi.core.services import tenants

    chosen = [p.strip() for p in plugins.split(",") if p.strip()] if plugins is not None else None

    async def make(rt: Runtime) -> Any:
        return await tenants.create_tenant(rt, slug, name, time_zone=time_zone, currency=currency, locale=locale, plugins_enabled=chosen)

    created = run_async(runtime_of(ctx), make)
    click.echo(f"tenant {slug} created: {created.id}")


@tenant.command("list")
@click.pass_context
def tenant_list(ctx: click.Context) -> None:
    """List the tenants: slug, status, time zone, currency, locale, name."""
    from guanxi.core.services import tenants

    for t in run_async(runtime_of(ctx), tenants.list_tenants, start_plugins=False):
        click.echo(f"{t.slug}\t{t.status}\t{t.time_zone}\t{t.currency}\t{t.locale}\t{t.name}")


@tenant.command("suspend")
@click.argument("slug")
@click.pass_context
def tenant_suspend(ctx: click.Context, slug: str) -> None:
    """Suspend a tenant: its keys get 403, its webhooks are stored but wait."""
    from guanxi.core.services import tenants

    async def run(rt: Runtime) -> Any:
        return await tenants.set_suspended(rt, slug, True)

    run_async(runtime_of(ctx), run, start_plugins=False)
    click.echo(f"tenant {slug} suspended")


@tenant.command("resume")
@click.argument("slug")
@click.pass_context
def tenant_resume(ctx: click.Context, slug: str) -> None:
    """Resume a suspended tenant."""
    from guanxi.core.services import tenants

    async def run(rt: Runtime) -> Any:
        return await tenants.set_suspended(rt, slug, False)

    run_async(runtime_of(ctx), run, start_plugins=False)
    click.echo(f"tenant {slug} resumed")


@tenant.command("delete")
@click.argument("slug")
@click.option("--export-dir", default=None, help="Where the export is written first (default: server.export_dir).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def tenant_delete(ctx: click.Context, slug: str, export_dir: str | None, yes: bool) -> None:
    """Export a tenant's data, then remove every row of it. There is no undo."""
    from guanxi.core.services import tenants

    if not yes:
        click.confirm(f"delete tenant {slug} and all its data (exported first)?", abort=True)
    runtime = runtime_of(ctx)

    async def run(rt: Runtime) -> Any:
        return await tenants.delete_tenant(rt, slug, export_dir or rt.settings.server.export_dir)

    path, counts = run_async(runtime, run)
    click.echo(f"tenant {slug} exported to {path} and deleted ({sum(counts.values())} rows)")


@click.group()
def operator() -> None:
    """Platform-operator keys (for /operator/graphql: tenants' lifecycle)."""


@operator.command("key")
@click.argument("name")
@click.pass_context
def operator_key(ctx: click.Context, name: str) -> None:
    """Create an operator key; it is printed once."""
    from guanxi.core import auth

    async def run(rt: Runtime) -> Any:
        return await auth.create_operator_key(rt, auth.server_secret(rt.settings.auth), name=name)

    info, key = run_async(runtime_of(ctx), run, start_plugins=False)
    click.echo(f"operator key {info.key_id} ({info.name}); store it now, it is not shown again:")
    click.echo(key)


@operator.command("revoke")
@click.argument("key_id")
@click.pass_context
def operator_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke an operator key by its key id."""
    from guanxi.core import auth

    async def run(rt: Runtime) -> None:
        await auth.revoke_operator_key(rt, key_id)

    run_async(runtime_of(ctx), run, start_plugins=False)
    click.echo(f"operator key {key_id} revoked")


def _in_tenant(slug: str, fn: Callable[[Any], Awaitable[T]]) -> Callable[[Runtime], Awaitable[T]]:
    """A job acting in tenant ``slug`` as the command line (an admin), in one transaction."""

    async def job(rt: Runtime) -> T:
        from guanxi.core.base.context import Actor, RequestContext

        ctx = RequestContext(tenant_id=await rt.tenant_id(slug), actor=Actor(kind="system", name="cli"))
        async with rt.transaction(ctx) as tx:
            return await fn(tx)

    return job


@tenant.command("plugins")
@click.argument("slug")
@click.pass_context
def tenant_plugins(ctx: click.Context, slug: str) -> None:
    """List the loaded plugins and whether the tenant enables each."""
    from guanxi.core.services.tenant_plugins import plugin_choices

    async def show(tx: Any) -> list[tuple[str, bool]]:
        return await plugin_choices(tx.session, tx.runtime)

    choices = run_async(runtime_of(ctx), _in_tenant(slug, show), start_plugins=False)
    if not choices:
        click.echo("no plugins are loaded (plugins.enabled in guanxi.toml, or GUANXI_PLUGINS)")
    for name, enabled in choices:
        click.echo(f"{name}: {'enabled' if enabled else 'disabled'}")


@tenant.command("plugin")
@click.argument("slug")
@click.argument("plugin")
@click.argument("state", type=click.Choice(["enable", "disable"]))
@click.pass_context
def tenant_plugin(ctx: click.Context, slug: str, plugin: str, state: str) -> None:
    """Enable or disable a loaded plugin for one tenant (its data is kept)."""
    from guanxi.core.services.tenant_plugins import set_plugin_enabled

    async def change(tx: Any) -> None:
        await set_plugin_enabled(tx, plugin, state == "enable")

    run_async(runtime_of(ctx), _in_tenant(slug, change), start_plugins=False)
    click.echo(f"{plugin} {state}d for {slug}")


@tenant.command("plugin-settings")
@click.argument("slug")
@click.argument("plugin")
@click.option("--set", "new", default=None, help="Replace the tenant's overrides with this JSON object ('{}': none).")
@click.pass_context
def tenant_plugin_settings(ctx: click.Context, slug: str, plugin: str, new: str | None) -> None:
    """Show a tenant's overrides of a plugin's settings, or replace them (--set)."""
    from guanxi.core.services import tenant_plugins

    values: dict[str, Any] | None = None
    if new is not None:
        try:
            values = json.loads(new)
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"--set is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise click.UsageError("--set must be a JSON object")

    async def run(tx: Any) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        if values is not None:
            await tenant_plugins.set_plugin_settings(tx, plugin, values)
            await tx.session.flush()
        return await tenant_plugins.plugin_settings_view(tx.session, tx.runtime, plugin)

    keys, overrides, _effective = run_async(runtime_of(ctx), _in_tenant(slug, run), start_plugins=False)
    click.echo(f"overridable: {', '.join(keys) or 'nothing'}")
    click.echo(f"overrides: {json.dumps(overrides, ensure_ascii=False, sort_keys=True)}")


def _secret_value(name: str, source: str | None) -> str:
    if source is None:
        return str(click.prompt(f"{name}", hide_input=True, default="", show_default=False))
    if source.startswith("env:"):
        value = os.environ.get(source[4:])
        if value is None:
            raise click.UsageError(f"--secret {name}: the environment variable {source[4:]} is not set")
        return value
    raise click.UsageError(f"--secret {name}=…: give env:VARIABLE (a secret on the command line would stay in the shell history)")


@tenant.command("account-set")
@click.argument("slug")
@click.argument("channel")
@click.argument("key")
@click.option("--settings", "settings_json", default=None, help="The public settings as a JSON object (required to create).")
@click.option(
    "--secret",
    "secret_specs",
    multiple=True,
    help="A secret field: NAME (asked for, not echoed) or NAME=env:VARIABLE. Repeat for each; fields not named are kept.",
)
@click.pass_context
def tenant_account_set(
    ctx: click.Context, slug: str, channel: str, key: str, settings_json: str | None, secret_specs: tuple[str, ...]
) -> None:
    """Create or update a channel account of a tenant (a WeCom corp: channel wecom)."""
    from guanxi.core.services import accounts

    try:
        settings = json.loads(settings_json) if settings_json is not None else None
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--settings is not JSON: {exc}") from None
    if settings is not None and not isinstance(settings, dict):
        raise click.UsageError("--settings must be a JSON object")
    secrets: dict[str, str | None] = {}
    for spec in secret_specs:
        name, _, source = spec.partition("=")
        secrets[name] = _secret_value(name, source or None)

    async def save(tx: Any) -> accounts.Account:
        return await accounts.save_account(tx, channel, key, settings=settings, secrets=secrets)

    account = run_async(runtime_of(ctx), _in_tenant(slug, save), start_plugins=False)
    click.echo(f"{channel} account {account.key} saved for {slug} ({account.provider_id})")


@tenant.command("accounts")
@click.argument("slug")
@click.pass_context
def tenant_accounts(ctx: click.Context, slug: str) -> None:
    """List a tenant's channel accounts: key, provider id, which secrets are set, broken or not."""
    from guanxi.core.services import accounts

    async def show(tx: Any) -> list[accounts.Account]:
        return await accounts.tenant_accounts(tx.runtime, tx.tenant_id, session=tx.session)

    for a in run_async(runtime_of(ctx), _in_tenant(slug, show), start_plugins=False):
        secrets = ", ".join(f"{n}={'set ' + f if f else 'unset'}" for n, f in a.fingerprints.items())
        state = f"BROKEN: {a.broken}" if a.broken else "ok"
        click.echo(f"{a.channel}/{a.key}: {a.provider_id}; {secrets}; {state}")


@tenant.command("account-delete")
@click.argument("slug")
@click.argument("channel")
@click.argument("key")
@click.pass_context
def tenant_account_delete(ctx: click.Context, slug: str, channel: str, key: str) -> None:
    """Remove a channel account of a tenant."""
    from guanxi.core.services import accounts

    async def delete(tx: Any) -> None:
        await accounts.delete_account(tx, channel, key)

    run_async(runtime_of(ctx), _in_tenant(slug, delete), start_plugins=False)
    click.echo(f"{channel} account {key} deleted from {slug}")


@tenant.command("accounts-rekey")
@click.pass_context
def tenant_accounts_rekey(ctx: click.Context) -> None:
    """Re-seal every channel account's secrets under the current server secret (after a
    rotation with the old secret in auth.previous_secrets)."""
    from guanxi.core.services import accounts

    resealed, broken = run_async(runtime_of(ctx), accounts.rekey, start_plugins=False)
    click.echo(f"re-sealed {resealed} accounts; {broken} could not be opened (broken)")


def register(group: click.Group) -> None:
    """Add these commands to the ``guanxi`` group."""
    group.add_command(db)
    group.add_command(tenant)
    group.add_command(operator)
