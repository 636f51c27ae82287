"""``guanxi pipelines``: list a tenant's pipelines, create one with its arrival rule, and add,
rename, reorder, archive, restore and delete stages (the GraphQL admin mutations' twins; each
change is audited as the CLI)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from guanxi.cli.common import run_async, runtime_of
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import stages as svc
from guanxi.core.services.pipelines import CATEGORIES, StageSpec

CLI_ACTOR = Actor(kind="system", name="cli")
T = TypeVar("T")
TENANT = click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")


def _in_tx(ctx: click.Context, slug: str | None, fn: Callable[[Tx], Awaitable[T]]) -> T:
    async def job(rt: Runtime) -> T:
        tenant_id = await rt.tenant_id(slug)
        async with rt.transaction(RequestContext(tenant_id=tenant_id, actor=CLI_ACTOR)) as tx:
            return await fn(tx)

    return run_async(runtime_of(ctx), job, start_plugins=False)


def _removal(r: svc.StageRemoval) -> str:
    moved = f"; {r.moved} customers moved to {r.moved_to}" if r.moved else ""
    return f"stage {r.stage} {'deleted' if r.deleted else 'archived' if r.archived else 'restored'}{moved}"


@click.group("pipelines")
def pipelines() -> None:
    """Pipelines and their stages."""


@pipelines.command("list")
@TENANT
@click.option("--archived", is_flag=True, help="Show archived stages too.")
@click.pass_context
def list_cmd(ctx: click.Context, slug: str | None, archived: bool) -> None:
    """List pipelines (default first) with their stages in order."""

    async def show(tx: Tx) -> list[str]:
        lines = []
        for p in await svc.list_pipelines(tx.session):
            rule = f" sources={','.join(p.sources)}" if p.sources else ""
            lines.append(f"{p.key}{' (default)' if p.is_default else ''}: {p.name}{rule}")
            for s in await svc.pipeline_stages(tx.session, p.id, archived=archived):
                lines.append(f"  {s.position}. {s.key} [{s.category}] {s.name}{' (archived)' if s.archived_at else ''}")
        return lines

    for line in _in_tx(ctx, slug, show):
        click.echo(line)


@pipelines.command("create")
@click.argument("key")
@click.argument("name")
@TENANT
@click.option("--source", "sources", multiple=True, help="Arrival rule: new customers with this source (or channel) start here.")
@click.option("--stage", "stage_specs", multiple=True, help="A stage as key:name[:category], in order (default: the default lifecycle).")
@click.option("--default", "is_default", is_flag=True, help="Make it the default pipeline.")
@click.pass_context
def create_cmd(
    ctx: click.Context, key: str, name: str, slug: str | None, sources: tuple[str, ...], stage_specs: tuple[str, ...], is_default: bool
) -> None:
    """Create a pipeline."""
    specs = []
    for raw in stage_specs:
        parts = raw.split(":")
        if len(parts) not in (2, 3):
            raise click.BadParameter(f"{raw!r}: write key:name or key:name:category", param_hint="--stage")
        specs.append(StageSpec(parts[0], parts[1], parts[2] if len(parts) == 3 else "open"))
    data = svc.PipelineInput(key=key, name=name, sources=list(sources), stages=specs, is_default=is_default)
    created = _in_tx(ctx, slug, lambda tx: svc.create_pipeline(tx, data))
    click.echo(f"pipeline {created.key} created")


@pipelines.command("add-stage")
@click.argument("pipeline")
@click.argument("key")
@click.argument("name")
@TENANT
@click.option("--category", type=click.Choice(sorted(CATEGORIES)), default="open", show_default=True)
@click.option("--position", type=int, default=None, help="Place among the live stages, from 0 (default: last).")
@click.pass_context
def add_stage_cmd(ctx: click.Context, pipeline: str, key: str, name: str, slug: str | None, category: str, position: int | None) -> None:
    """Add a stage to a pipeline."""
    stage = _in_tx(ctx, slug, lambda tx: svc.add_stage(tx, pipeline, StageSpec(key, name, category), position))
    click.echo(f"stage {stage.key} added at {stage.position}")


@pipelines.command("rename-stage")
@click.argument("pipeline")
@click.argument("stage")
@click.argument("name")
@TENANT
@click.pass_context
def rename_stage_cmd(ctx: click.Context, pipeline: str, stage: str, name: str, slug: str | None) -> None:
    """Rename a stage (its key and history stay)."""
    row = _in_tx(ctx, slug, lambda tx: svc.update_stage(tx, pipeline, stage, name=name))
    click.echo(f"stage {row.key} is now {row.name!r}")


@pipelines.command("reorder")
@click.argument("pipeline")
@click.argument("keys", nargs=-1, required=True)
@TENANT
@click.pass_context
def reorder_cmd(ctx: click.Context, pipeline: str, keys: tuple[str, ...], slug: str | None) -> None:
    """Put a pipeline's stages in this order (name each live stage once)."""
    ordered = _in_tx(ctx, slug, lambda tx: svc.reorder_stages(tx, pipeline, list(keys)))
    click.echo(" → ".join(s.key for s in ordered))


@pipelines.command("archive-stage")
@click.argument("pipeline")
@click.argument("stage")
@TENANT
@click.option("--move-to", default=None, help="Move the stage's customers to this stage first.")
@click.option("--restore", is_flag=True, help="Bring an archived stage back (last).")
@click.pass_context
def archive_stage_cmd(ctx: click.Context, pipeline: str, stage: str, slug: str | None, move_to: str | None, restore: bool) -> None:
    """Archive a stage (refused while it holds customers, unless --move-to)."""
    click.echo(_removal(_in_tx(ctx, slug, lambda tx: svc.archive_stage(tx, pipeline, stage, move_to=move_to, restore=restore))))


@pipelines.command("delete-stage")
@click.argument("pipeline")
@click.argument("stage")
@TENANT
@click.option("--move-to", default=None, help="Move the stage's customers to this stage first.")
@click.pass_context
def delete_stage_cmd(ctx: click.Context, pipeline: str, stage: str, slug: str | None, move_to: str | None) -> None:
    """Delete a stage (refused while it holds customers, unless --move-to; archived instead when history names it)."""
    click.echo(_removal(_in_tx(ctx, slug, lambda tx: svc.delete_stage(tx, pipeline, stage, move_to=move_to))))


def register(group: click.Group) -> None:
    group.add_command(pipelines)
