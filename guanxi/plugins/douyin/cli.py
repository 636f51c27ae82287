"""``guanxi douyin …`` commands."""

from __future__ import annotations

import click

from guanxi.core.runtime import Runtime
from guanxi.plugins.douyin import service
from guanxi.plugins.douyin.models import DouyinAuthorization


@click.group()
def douyin() -> None:
    """Douyin (抖音) business accounts."""


@douyin.command()
@click.option("--tenant", "tenant_slug", default=None, help="The tenant's slug (default: the configured tenant).")
@click.pass_context
def accounts(ctx: click.Context, tenant_slug: str | None) -> None:
    """List the business accounts connected to the tenant, with their state and fan figures."""
    from guanxi.cli.common import run_async, runtime_of

    async def job(runtime: Runtime) -> list[DouyinAuthorization]:
        return await service.tenant_accounts(runtime, await runtime.tenant_id(tenant_slug))

    rows = run_async(runtime_of(ctx), job)
    if not rows:
        click.echo("no Douyin account is connected (connectDouyinAccount gives an authorization URL)")
        return
    for row in rows:
        fans = f"{row.total_fans} fans on {row.fans_date}" if row.total_fans is not None else "fans unknown"
        app = row.app_key or "deployment app"
        line = f"{row.open_id}  {row.nickname or '-'}  {row.status}  {app}  {fans}"
        click.echo(line + (f"  ({row.reason})" if row.reason else ""))
