"""``guanxi sales deal-pipelines …`` and ``guanxi sales products …``: deal pipelines and the
product catalogue from the command line (the twins
of the GraphQL mutations of :mod:`guanxi.plugins.sales.deals.stages_graphql`; each change is
audited as the CLI)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy import select

from guanxi.cli.common import run_async, runtime_of
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import NotFoundError
from guanxi.core.runtime import Runtime, Tx
from guanxi.plugins.sales.deals import service as svc
from guanxi.plugins.sales.deals import stages as ssvc
from guanxi.plugins.sales.deals.models import SalesProduct

CLI_ACTOR = Actor(kind="system", name="cli")
T = TypeVar("T")
TENANT = click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")
MOVE_TO = click.option("--move-to", default=None, help="Move the stage's open deals to this open stage first.")


def _in_tx(ctx: click.Context, slug: str | None, fn: Callable[[Tx], Awaitable[T]]) -> T:
    async def job(rt: Runtime) -> T:
        tenant_id = await rt.tenant_id(slug)
        async with rt.transaction(RequestContext(tenant_id=tenant_id, actor=CLI_ACTOR)) as tx:
            return await fn(tx)

    return run_async(runtime_of(ctx), job, start_plugins=False)


def _removal(r: ssvc.StageRemoval) -> str:
    moved = f"; {r.moved} open deals moved to {r.moved_to}" if r.moved else ""
    return f"stage {r.stage} {'deleted' if r.deleted else 'archived' if r.archived else 'restored'}{moved}"


@click.group("deal-pipelines")
def deal_pipelines() -> None:
    """Deal pipelines and their stages (with probabilities)."""


@deal_pipelines.command("list")
@TENANT
@click.option("--archived", is_flag=True, help="Show archived stages too.")
@click.pass_context
def list_cmd(ctx: click.Context, slug: str | None, archived: bool) -> None:
    """List deal pipelines with their stages in order."""

    async def show(tx: Tx) -> list[str]:
        lines = []
        for p in await svc.list_pipelines(tx.session):
            lines.append(f"{p.key}: {p.name}")
            for s in await ssvc.stages(tx.session, p.id, archived=archived):
                flag = " (archived)" if s.archived_at else ""
                lines.append(f"  {s.position}. {s.key} [{s.category}] {s.probability}% {s.name}{flag}")
        return lines

    for line in _in_tx(ctx, slug, show):
        click.echo(line)


@deal_pipelines.command("rename")
@click.argument("pipeline")
@click.argument("name")
@TENANT
@click.pass_context
def rename_cmd(ctx: click.Context, pipeline: str, name: str, slug: str | None) -> None:
    """Rename a deal pipeline."""
    row = _in_tx(ctx, slug, lambda tx: ssvc.rename_pipeline(tx, pipeline, name))
    click.echo(f"deal pipeline {row.key} is now {row.name!r}")


@deal_pipelines.command("add-stage")
@click.argument("pipeline")
@click.argument("key")
@click.argument("name")
@TENANT
@click.option("--probability", type=int, required=True, help="0 to 100: the weight of its open deals.")
@click.option("--category", type=click.Choice(list(svc.CATEGORIES)), default="open", show_default=True)
@click.option("--position", type=int, default=None, help="Place among the live stages, from 0 (default: last).")
@click.pass_context
def add_stage_cmd(
    ctx: click.Context, pipeline: str, key: str, name: str, slug: str | None, probability: int, category: str, position: int | None
) -> None:
    """Add a stage to a deal pipeline."""
    spec = svc.StageInput(key=key, name=name, probability=probability, category=category)
    stage = _in_tx(ctx, slug, lambda tx: ssvc.add_stage(tx, pipeline, spec, position))
    click.echo(f"stage {stage.key} added at {stage.position}")


@deal_pipelines.command("update-stage")
@click.argument("pipeline")
@click.argument("stage")
@TENANT
@click.option("--name", default=None, help="A new name (the key and history stay).")
@click.option("--probability", type=int, default=None, help="A new probability, 0 to 100.")
@click.pass_context
def update_stage_cmd(ctx: click.Context, pipeline: str, stage: str, slug: str | None, name: str | None, probability: int | None) -> None:
    """Rename a stage or change its probability."""
    row = _in_tx(ctx, slug, lambda tx: ssvc.update_stage(tx, pipeline, stage, name=name, probability=probability))
    click.echo(f"stage {row.key}: {row.name!r}, {row.probability}%")


@deal_pipelines.command("reorder")
@click.argument("pipeline")
@click.argument("keys", nargs=-1, required=True)
@TENANT
@click.pass_context
def reorder_cmd(ctx: click.Context, pipeline: str, keys: tuple[str, ...], slug: str | None) -> None:
    """Put a deal pipeline's live stages in this order (name each once)."""
    ordered = _in_tx(ctx, slug, lambda tx: ssvc.reorder_stages(tx, pipeline, list(keys)))
    click.echo(" → ".join(s.key for s in ordered))


@deal_pipelines.command("archive-stage")
@click.argument("pipeline")
@click.argument("stage")
@TENANT
@MOVE_TO
@click.option("--restore", is_flag=True, help="Bring an archived stage back (last).")
@click.pass_context
def archive_stage_cmd(ctx: click.Context, pipeline: str, stage: str, slug: str | None, move_to: str | None, restore: bool) -> None:
    """Archive a stage (refused while it holds open deals, unless --move-to)."""
    click.echo(_removal(_in_tx(ctx, slug, lambda tx: ssvc.archive_stage(tx, pipeline, stage, move_to=move_to, restore=restore))))


@deal_pipelines.command("delete-stage")
@click.argument("pipeline")
@click.argument("stage")
@TENANT
@MOVE_TO
@click.pass_context
def delete_stage_cmd(ctx: click.Context, pipeline: str, stage: str, slug: str | None, move_to: str | None) -> None:
    """Delete a stage (refused while it holds open deals, unless --move-to; archived instead when history names it)."""
    click.echo(_removal(_in_tx(ctx, slug, lambda tx: ssvc.delete_stage(tx, pipeline, stage, move_to=move_to))))


@click.group("products")
def products() -> None:
    """The product catalogue."""


@products.command("archive")
@click.argument("sku")
@TENANT
@click.option("--restore", is_flag=True, help="Bring an archived product back.")
@click.pass_context
def archive_product_cmd(ctx: click.Context, sku: str, slug: str | None, restore: bool) -> None:
    """Archive a product (new deals cannot take it; deals that have it keep it)."""

    async def change(tx: Tx) -> SalesProduct:
        found = (await tx.session.execute(select(SalesProduct.id).where(SalesProduct.sku == sku))).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"no product {sku!r} in the catalogue", field="sku")
        return await svc.archive_product(tx, found, not restore)

    row = _in_tx(ctx, slug, change)
    click.echo(f"product {row.sku} {'archived' if row.archived_at else 'restored'}")
