"""``guanxi wecom …`` commands."""

from __future__ import annotations

import click

from guanxi.core.runtime import Runtime
from guanxi.plugins.wecom import service
from guanxi.plugins.wecom.state import wecom_state


@click.group()
def wecom() -> None:
    """WeCom (企业微信) customer contact."""


@wecom.command()
@click.option("--corp", "corp_key", default=None, help="The corp's key in [plugins.wecom] (optional with one corp).")
@click.pass_context
def sync(ctx: click.Context, corp_key: str | None) -> None:
    """Pull every follower's customers (paged), with a progress bar. Idempotent."""
    from guanxi.cli.common import run_async, runtime_of

    async def job(runtime: Runtime) -> service.SyncResult:
        settings = wecom_state(runtime).settings
        corp = settings.corp(corp_key) if corp_key else (settings.corps[0] if len(settings.corps) == 1 else None)
        if corp is None:
            known = ", ".join(c.key for c in settings.corps) or "none"
            raise click.UsageError(f"no WeCom corp {corp_key!r} is configured; give --corp (one of: {known})")
        tenant = await runtime.tenant_id(corp.tenant or None)
        with click.progressbar(length=0, label="customers", show_pos=True) as bar:
            return await service.initial_sync(runtime, tenant, corp.key, progress=bar.update)

    result = run_async(runtime_of(ctx), job)  # WeCom errors are GuanxiErrors: a clean message, no secret
    click.echo(f"staff: {result.staff}, customers: {result.customers}, new: {result.created}")
