"""The ``guanxi`` command line. Enabled plugins add their own commands (``guanxi_cli`` hook)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import click

from guanxi.core.errors import GuanxiError
from guanxi.core.logs import configure_logging
from guanxi.core.plugins import installed_plugins
from guanxi.core.runtime import Runtime

T = TypeVar("T")


def run_async(runtime: Runtime, fn: Callable[[Runtime], Awaitable[T]], *, start_plugins: bool = True) -> T:
    """Run one async job with the runtime started (plugins' ``guanxi_startup`` called unless
    ``start_plugins`` is false, as for migrations, which run before plugin tables exist), and
    stop it afterwards."""

    async def job() -> T:
        if start_plugins:
            await runtime.start()
        try:
            return await fn(runtime)
        finally:
            if start_plugins:
                await runtime.stop()
            else:
                await runtime.engine.dispose()

    try:
        return asyncio.run(job())
    except GuanxiError as exc:
        raise click.ClickException(str(exc)) from None


def _rt(ctx: click.Context) -> Runtime:
    runtime = ctx.find_object(Runtime)
    if runtime is None:  # pragma: no cover - main() always provides one
        raise click.UsageError("no runtime")
    return runtime


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="guanxi")
def cli() -> None:
    """Guanxi (关系): a plugin-based, headless social CRM.

    Configuration comes from guanxi.toml in the working directory (or GUANXI_CONFIG) and
    GUANXI_* environment variables; see docs/operations.md."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: server.port, 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: server.workers).")
@click.option("--dev", is_flag=True, help="Development: GraphiQL and introspection without credentials (loopback hosts only).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None, dev: bool) -> None:
    """Serve the HTTP API (GraphQL at /graphql, GraphiQL in a browser)."""
    import os

    import uvicorn

    settings = _rt(ctx).settings.server
    if dev:
        if (host or settings.host) not in ("127.0.0.1", "::1", "localhost"):
            raise click.UsageError("--dev opens GraphiQL without credentials and is allowed on a loopback host only")
        os.environ["GUANXI__SERVER__DEV"] = "true"  # read by each server process's configuration
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    workers = workers if workers is not None else settings.workers
    click.echo(f"Guanxi on http://{host}:{port}{_rt(ctx).settings.graphql.path} ({workers} worker{'s' if workers > 1 else ''})")
    uvicorn.run("guanxi.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=settings.log_level)


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply core's and the enabled plugins' pending migrations."""
    from guanxi.core import migrate

    heads = run_async(_rt(ctx), migrate.upgrade, start_plugins=False)
    for owner, revs in heads.items():
        click.echo(f"{owner}: {', '.join(revs) or 'no revisions'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the applied revisions and what is pending."""
    from guanxi.core import migrate

    async def show(rt: Runtime) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        return await migrate.current(rt), await migrate.pending(rt)

    heads, todo = run_async(_rt(ctx), show, start_plugins=False)
    for owner in heads:
        click.echo(f"{owner}: applied {', '.join(heads[owner]) or 'nothing'}; pending {', '.join(todo.get(owner, [])) or 'nothing'}")


@db.command("rls")
@click.argument("action", type=click.Choice(["enable", "disable", "status"]))
@click.pass_context
def db_rls(ctx: click.Context, action: str) -> None:
    """PostgreSQL row-level security on every tenant table (a second wall behind the ORM's
    tenant filter). Then set database.row_level_security = true and run as a non-superuser."""
    from guanxi.core import rls

    async def run(rt: Runtime) -> Any:
        if rt.engine.dialect.name != "postgresql":
            raise click.ClickException(f"row-level security needs PostgreSQL (this database is {rt.engine.dialect.name})")
        async with rt.engine.begin() as conn:
            return await conn.run_sync(getattr(rls, action))

    result = run_async(_rt(ctx), run, start_plugins=False)
    if action == "status":
        for table, state in result.items():
            flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in state.items())
            click.echo(f"{table}: {flags}")
        return
    click.echo(f"row-level security {action}d on {len(result)} tables: {', '.join(result)}")
    if action == "enable" and not _rt(ctx).settings.database.row_level_security:
        click.echo("now set database.row_level_security = true (GUANXI__DATABASE__ROW_LEVEL_SECURITY=true) and restart", err=True)


def plugin_report(runtime: Runtime) -> dict[str, Any]:
    """Enabled and installed plugins with versions and the hooks each enabled one implements."""
    installed = installed_plugins()
    enabled = []
    core = []
    for name, plugin in runtime.pm.list_name_plugin():
        if plugin is None:
            continue
        if name.startswith("guanxi."):
            core.append({"name": name, "hooks": sorted(c.name for c in runtime.pm.get_hookcallers(plugin) or [])})
            continue
        ep = installed.get(name)
        dist = ep.dist if ep is not None else None
        hooks = sorted(caller.name for caller in runtime.pm.get_hookcallers(plugin) or [])
        enabled.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "distribution": dist.name if dist else None,
                "version": dist.version if dist else None,
                "hooks": hooks,
            }
        )
    return {
        "core": core,
        "enabled": sorted(enabled, key=lambda p: p["name"]),
        "installed": sorted(
            (
                {
                    "name": n,
                    "value": ep.value,
                    "distribution": ep.dist.name if ep.dist else None,
                    "version": ep.dist.version if ep.dist else None,
                    "enabled": n in runtime.enabled_plugins,
                }
                for n, ep in installed.items()
            ),
            key=lambda p: str(p["name"]),
        ),
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Check the enabled plugins' duties (personal data export and erasure); exit 1 on a gap.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, check: bool) -> None:
    """List installed and enabled plugins, their versions and the hooks they implement."""
    if check:
        from guanxi.core.services.privacy import personal_data_gaps

        gaps = personal_data_gaps(_rt(ctx))
        for gap in gaps:
            click.echo(f"problem: {gap}")
        if gaps:
            ctx.exit(1)
        click.echo("ok: every enabled plugin that stores personal data can export and erase it")
        return
    report = plugin_report(_rt(ctx))
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo("enabled:")
    for p in report["enabled"] or []:
        click.echo(f"  {p['name']} {p['version'] or ''}  hooks: {', '.join(p['hooks'])}")
    if not report["enabled"]:
        click.echo("  (none)")
    click.echo("installed:")
    for p in report["installed"] or []:
        click.echo(f"  {p['name']} {p['version'] or ''} ({p['value']}){'' if p['enabled'] else '  [disabled]'}")
    if not report["installed"]:
        click.echo("  (none)")


@cli.command()
@click.pass_context
def schema(ctx: click.Context) -> None:
    """Print the GraphQL schema (SDL) for the current configuration."""
    from guanxi.graphql.schema import build_schema

    click.echo(build_schema(_rt(ctx)).as_str())


@cli.group()
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

    click.echo(f"tenant {slug} created: {run_async(_rt(ctx), make)}")


def _version() -> str:
    try:
        return version("guanxi")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def build_cli(runtime: Runtime) -> click.Group:
    """A fresh command group: core's commands plus the enabled plugins' (so two runtimes with
    different plugins never share commands)."""
    from guanxi import cli_access, cli_data, cli_queues

    group = click.Group(
        name="guanxi",
        commands=dict(cli.commands),
        help=cli.help,
        params=list(cli.params),
        context_settings=cli.context_settings,
        callback=cli.callback,
    )
    cli_data.register(group)
    cli_access.register(group)
    cli_queues.register(group)
    runtime.pm.hook.guanxi_cli(group=group)
    return group


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``guanxi`` command."""
    try:
        runtime = Runtime.from_config()
    except GuanxiError as exc:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        click.echo(f"guanxi: {exc}", err=True)
        sys.exit(2)
    configure_logging(runtime.settings.server.log_level, trace=runtime.settings.plugins.trace)
    group = build_cli(runtime)
    try:
        group.main(args=argv, obj=runtime, standalone_mode=True)
    except GuanxiError as exc:  # pragma: no cover - standalone_mode exits first
        click.echo(f"guanxi: {exc}", err=True)
        sys.exit(1)


__all__ = ["build_cli", "cli", "main", "run_async"]
