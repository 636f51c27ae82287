"""``guanxi plugins`` (what is installed and enabled) and ``guanxi schema`` (the GraphQL SDL)."""

from __future__ import annotations

import json
from typing import Any

import click

from guanxi.cli.common import runtime_of
from guanxi.core.hooks.manager import installed_plugins
from guanxi.core.runtime import Runtime


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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Check the enabled plugins' duties (personal data export and erasure); exit 1 on a gap.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, check: bool) -> None:
    """List installed and enabled plugins, their versions and the hooks they implement."""
    if check:
        from guanxi.core.services.privacy import personal_data_gaps

        gaps = personal_data_gaps(runtime_of(ctx))
        for gap in gaps:
            click.echo(f"problem: {gap}")
        if gaps:
            ctx.exit(1)
        click.echo("ok: every enabled plugin that stores personal data can export and erase it")
        return
    report = plugin_report(runtime_of(ctx))
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


@click.command()
@click.pass_context
def schema(ctx: click.Context) -> None:
    """Print the GraphQL schema (SDL) for the current configuration."""
    from guanxi.graphql.schema import build_schema

    click.echo(build_schema(runtime_of(ctx)).as_str())


def register(group: click.Group) -> None:
    """Add these commands to the ``guanxi`` group."""
    group.add_command(plugins)
    group.add_command(schema)
