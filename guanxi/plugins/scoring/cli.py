"""``guanxi scoring …`` commands."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@click.group("scoring")
def scoring() -> None:
    """Lead scores."""


@scoring.command("recompute")
@click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")
@click.option("--batch-size", type=int, default=None, help="Customers per batch (default: plugins.scoring.batch_size).")
@click.pass_context
def recompute(ctx: click.Context, slug: str | None, batch_size: int | None) -> None:
    """Recompute every customer's score in set-based SQL, batch by batch of customer ids."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.plugins.scoring.recompute import recompute_tenant

    rt = runtime_of(ctx)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("scoring customers", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        async def job(r: Any) -> Any:
            tenant_id = await r.tenant_id(slug)
            return await recompute_tenant(r, tenant_id, batch_size=batch_size, on_progress=on_progress)

        report = run_async(rt, job)
    click.echo(
        f"{report.customers} customers scored in {report.batches} batches; "
        f"{report.changed} totals changed; {report.moved} moved by stage rules"
    )
