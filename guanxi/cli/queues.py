"""Queue commands of the CLI: ``guanxi inbox …``, ``guanxi outbox …``, ``guanxi jobs …``,
``guanxi notifications …`` and ``guanxi worker``."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import Any

import click
import msgspec
from sqlalchemy import select

from guanxi.core.domain.channels import MESSAGE_STATUSES
from guanxi.core.domain.models import InboxEvent, NotificationDelivery, OutboxMessage, ScheduledJob
from guanxi.core.runtime import Runtime

INBOX_COLUMNS = ("id", "channel", "provider_event_id", "status", "attempts", "received_at", "last_error")
OUTBOX_COLUMNS = ("id", "channel", "recipient", "status", "attempts", "created_at", "sent_at", "provider_message_id", "last_error")
JOB_COLUMNS = ("id", "kind", "key", "status", "cron", "next_attempt_at", "attempts", "runs", "last_run_at", "last_error")
DELIVERY_COLUMNS = ("id", "channel", "user_id", "status", "attempts", "next_attempt_at", "sent_at", "last_error")


def _row(model: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: getattr(model, c) for c in columns}


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(rows)).decode())
        return
    if not rows:
        click.echo("(none)")
    for r in rows:
        error = f"  error: {r['last_error'][:80]}" if r.get("last_error") else ""
        what = r["channel"] if "channel" in r else f"{r['kind']}  {r['key']}"
        click.echo(f"{r['id']}  {what:<10} {r['status']:<10} attempts={r['attempts']}{error}")


def _list(
    ctx: click.Context, model: Any, columns: tuple[str, ...], time_col: str, slug: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    from guanxi.cli.common import run_async, runtime_of

    async def job(rt: Runtime) -> list[dict[str, Any]]:
        tenant_id = await rt.tenant_id(slug)
        async with rt.session(tenant_id) as session:
            stmt = select(model).order_by(getattr(model, time_col).desc()).limit(limit)
            if status:
                stmt = stmt.where(model.status == status)
            return [_row(m, columns) for m in (await session.execute(stmt)).scalars()]

    return run_async(runtime_of(ctx), job, start_plugins=False)


def _show(ctx: click.Context, model: Any, slug: str | None, row_id: str) -> dict[str, Any] | None:
    from guanxi.cli.common import run_async, runtime_of

    async def job(rt: Runtime) -> dict[str, Any] | None:
        tenant_id = await rt.tenant_id(slug)
        async with rt.session(tenant_id) as session:
            row = await session.get(model, (tenant_id, uuid.UUID(row_id)))
            if row is None:
                return None
            return {c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs if c.key != "tenant_id"}

    found = run_async(runtime_of(ctx), job, start_plugins=False)
    if found is None:
        raise click.ClickException(f"no row {row_id} in this tenant")
    click.echo(msgspec.json.format(msgspec.json.encode(found)).decode())
    return found


TENANT = click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")


@click.group()
def inbox() -> None:
    """The durable inbox of channel events."""


@inbox.command("list")
@TENANT
@click.option("--status", type=click.Choice(["pending", "processing", "done", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inbox_list(ctx: click.Context, slug: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest inbox events."""
    _print_rows(_list(ctx, InboxEvent, INBOX_COLUMNS, "received_at", slug, status, limit), as_json)


@inbox.command("show")
@TENANT
@click.argument("event_id")
@click.pass_context
def inbox_show(ctx: click.Context, slug: str | None, event_id: str) -> None:
    """One inbox event with its payload and last error."""
    _show(ctx, InboxEvent, slug, event_id)


@inbox.command("replay")
@TENANT
@click.argument("event_ids", nargs=-1, required=True)
@click.pass_context
def inbox_replay(ctx: click.Context, slug: str | None, event_ids: tuple[str, ...]) -> None:
    """Queue events again (e.g. failed ones after a fix). Their effect stays exactly-once."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.core.queues import inbox as core_inbox

    async def job(rt: Runtime) -> list[bool]:
        tenant_id = await rt.tenant_id(slug)
        return [await core_inbox.replay(rt, tenant_id, uuid.UUID(e)) for e in event_ids]

    for event_id, ok in zip(event_ids, run_async(runtime_of(ctx), job, start_plugins=False), strict=True):
        click.echo(f"{event_id}: {'queued again' if ok else 'not found'}")


@click.group()
def outbox() -> None:
    """The durable outbox of messages to send."""


@outbox.command("list")
@TENANT
@click.option("--status", type=click.Choice(MESSAGE_STATUSES), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def outbox_list(ctx: click.Context, slug: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest outbox messages."""
    _print_rows(_list(ctx, OutboxMessage, OUTBOX_COLUMNS, "created_at", slug, status, limit), as_json)


@outbox.command("show")
@TENANT
@click.argument("message_id")
@click.pass_context
def outbox_show(ctx: click.Context, slug: str | None, message_id: str) -> None:
    """One message with its status history fields and last error."""
    _show(ctx, OutboxMessage, slug, message_id)


@outbox.command("retry")
@TENANT
@click.argument("message_ids", nargs=-1, required=True)
@click.pass_context
def outbox_retry(ctx: click.Context, slug: str | None, message_ids: tuple[str, ...]) -> None:
    """Queue failed messages again. A message the provider accepted once is never sent again."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.core.queues import outbox as core_outbox

    async def job(rt: Runtime) -> list[bool]:
        tenant_id = await rt.tenant_id(slug)
        return [await core_outbox.retry(rt, tenant_id, uuid.UUID(m)) for m in message_ids]

    for message_id, ok in zip(message_ids, run_async(runtime_of(ctx), job, start_plugins=False), strict=True):
        click.echo(f"{message_id}: {'queued again' if ok else 'not found or already sent'}")


@click.group()
def jobs() -> None:
    """The scheduler's durable jobs."""


@jobs.command("list")
@TENANT
@click.option("--status", type=click.Choice(["scheduled", "running", "done", "failed", "cancelled"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_list(ctx: click.Context, slug: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Jobs by their next run, latest first."""
    _print_rows(_list(ctx, ScheduledJob, JOB_COLUMNS, "next_attempt_at", slug, status, limit), as_json)


@jobs.command("show")
@TENANT
@click.argument("job_id")
@click.pass_context
def jobs_show(ctx: click.Context, slug: str | None, job_id: str) -> None:
    """One job with its payload, schedule and last error."""
    _show(ctx, ScheduledJob, slug, job_id)


@jobs.command("cancel")
@TENANT
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def jobs_cancel(ctx: click.Context, slug: str | None, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs that have not finished (audited, as the CLI)."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.core.base.context import Actor, RequestContext
    from guanxi.core.base.errors import GuanxiError
    from guanxi.core.services import schedule

    async def job(rt: Runtime) -> list[str]:
        tenant_id = await rt.tenant_id(slug)
        out = []
        for raw in job_ids:
            try:
                async with rt.transaction(RequestContext(tenant_id=tenant_id, actor=Actor(kind="system", name="cli"))) as tx:
                    await schedule.cancel_job(tx, uuid.UUID(raw))
                out.append("cancelled")
            except (GuanxiError, ValueError) as exc:
                out.append(f"not cancelled: {exc}")
        return out

    for job_id, outcome in zip(job_ids, run_async(runtime_of(ctx), job, start_plugins=False), strict=True):
        click.echo(f"{job_id}: {outcome}")


@click.group()
def notifications() -> None:
    """The staff notification delivery queue."""


@notifications.command("list")
@TENANT
@click.option("--status", type=click.Choice(["queued", "sending", "sent", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notifications_list(ctx: click.Context, slug: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest staff deliveries (one per notification and channel)."""
    _print_rows(_list(ctx, NotificationDelivery, DELIVERY_COLUMNS, "created_at", slug, status, limit), as_json)


@notifications.command("retry")
@TENANT
@click.argument("delivery_ids", nargs=-1, required=True)
@click.pass_context
def notifications_retry(ctx: click.Context, slug: str | None, delivery_ids: tuple[str, ...]) -> None:
    """Queue failed staff deliveries again. A sent one is never sent again."""
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.core.queues import staff

    async def job(rt: Runtime) -> list[bool]:
        tenant_id = await rt.tenant_id(slug)
        return [await staff.retry(rt, tenant_id, uuid.UUID(d)) for d in delivery_ids]

    for delivery_id, ok in zip(delivery_ids, run_async(runtime_of(ctx), job, start_plugins=False), strict=True):
        click.echo(f"{delivery_id}: {'queued again' if ok else 'not found or already sent'}")


@click.command()
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Run the inbox, outbox, scheduler and staff notification workers without serving HTTP
    (for API-only server processes)."""
    from guanxi.app import start_workers
    from guanxi.cli.common import run_async, runtime_of
    from guanxi.core.queues import inbox as core_inbox
    from guanxi.core.queues import outbox as core_outbox
    from guanxi.core.queues import scheduler as core_scheduler
    from guanxi.core.queues import staff as core_staff

    async def job(rt: Runtime) -> dict[str, int]:
        if once:
            q = rt.settings.queues
            deliverer = core_outbox.Deliverer(
                rt, send_timeout_s=q.send_timeout_s, max_attempts=q.outbox_max_attempts, rates=dict(q.rate_per_s)
            )
            staff_deliverer = core_staff.StaffDeliverer(rt, send_timeout_s=q.send_timeout_s, max_attempts=q.staff_max_attempts)
            totals = {"inbox": 0, "outbox": 0, "scheduler": 0, "staff": 0}
            while n := await core_inbox.run_once(rt, lease_s=q.lease_s, max_attempts=q.inbox_max_attempts):
                totals["inbox"] += n
            while n := await core_scheduler.run_once(rt, lease_s=q.lease_s, timeout_s=q.job_timeout_s):
                totals["scheduler"] += n
            while n := await core_outbox.run_once(rt, deliverer, lease_s=q.lease_s):
                totals["outbox"] += n
            while n := await core_staff.run_once(rt, staff_deliverer, lease_s=q.lease_s):
                totals["staff"] += n
            return totals
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        workers = start_workers(rt)
        click.echo("workers running; Ctrl-C stops")
        await stop.wait()
        for w in workers:
            await w.stop()
        return {}

    done = run_async(runtime_of(ctx), job)
    if once:
        click.echo(json.dumps(done))


def register(group: click.Group) -> None:
    group.add_command(inbox)
    group.add_command(outbox)
    group.add_command(jobs)
    group.add_command(notifications)
    group.add_command(worker)
