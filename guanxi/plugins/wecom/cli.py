"""``guanxi wecom …`` commands."""

from __future__ import annotations

import click

from guanxi.core.runtime import Runtime
from guanxi.plugins.wecom import service


@click.group()
def wecom() -> None:
    """WeCom (企业微信) customer contact."""


@wecom.command()
@click.option("--corp", "corp_key", default=None, help="The corp's account key (optional when the tenant has one corp).")
@click.option("--tenant", "tenant_slug", default=None, help="The tenant's slug (default: the configured tenant).")
@click.pass_context
def sync(ctx: click.Context, corp_key: str | None, tenant_slug: str | None) -> None:
    """Pull every follower's customers (paged), with a progress bar. Idempotent."""
    from guanxi.cli.common import run_async, runtime_of

    async def job(runtime: Runtime) -> service.SyncResult:
        tenant = await runtime.tenant_id(tenant_slug)
        corps = await service.tenant_corps(runtime, tenant)
        corp = next((c for c in corps if c.key == corp_key), None) if corp_key else (corps[0] if len(corps) == 1 else None)
        if corp is None:
            known = ", ".join(c.key for c in corps) or "none"
            raise click.UsageError(f"no WeCom corp {corp_key!r} is connected for this tenant; give --corp (one of: {known})")
        with click.progressbar(length=0, label="customers", show_pos=True) as bar:
            return await service.initial_sync(runtime, tenant, corp.key, progress=bar.update)

    result = run_async(runtime_of(ctx), job)  # WeCom errors are GuanxiErrors: a clean message, no secret
    click.echo(f"staff: {result.staff}, customers: {result.customers}, new: {result.created}")
