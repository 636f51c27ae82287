"""Data commands of the CLI: ``guanxi demo`` and ``guanxi import customers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@click.command()
@click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant, 'demo').")
@click.option("--customers", type=int, default=300, show_default=True, help="How many customers to generate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (the same seed gives the same data).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the tenant already has customers.")
@click.pass_context
def demo(ctx: click.Context, slug: str | None, customers: int, seed: int, if_empty: bool) -> None:
    """Load a realistic demo tenant: staff, customers on several channels, months of interactions."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.demo.generator import load_demo

    rt = runtime_of(ctx)
    summary = run_async(rt, lambda r: load_demo(r, slug=slug or r.settings.tenant, customers=customers, seed=seed, if_empty=if_empty))
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(summary)).decode())


@click.group("import")
def import_group() -> None:
    """Import data from files."""


@import_group.command("customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")
@click.option("--dry-run", is_flag=True, help="Validate only; write nothing.")
@click.pass_context
def import_customers_cmd(ctx: click.Context, file: Path, slug: str | None, dry_run: bool) -> None:
    """Import customers from a CSV file (header row required; the columns are listed in
    docs/operations.md, section "Importing customers from CSV").

    The whole file is checked first: if any row is invalid, nothing is written and every
    error is listed with its row number."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.importer.csv_import import import_customers

    rt = runtime_of(ctx)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(f"checking {file.name}", total=None)

        def on_progress(done: int, total: int | None) -> None:
            # pass 1 validates (total unknown), pass 2 writes (total = rows checked)
            phase = "checking" if total is None else "writing"
            progress.update(task, completed=done, total=total, description=f"{phase} {file.name}")

        async def job(r: Any) -> Any:
            tenant_id = await r.tenant_id(slug)
            return await import_customers(r, tenant_id, file, dry_run=dry_run, on_progress=on_progress)

        report = run_async(rt, job)
    for err in report.errors:
        click.echo(f"row {err.row}, column {err.column}: {err.message}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    verb = "would create" if report.dry_run else "created"
    click.echo(f"{report.rows_read} rows read; {verb} {report.created}, updated {report.updated}; {len(report.errors)} errors")
    if report.errors:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(demo)
    group.add_command(import_group)
