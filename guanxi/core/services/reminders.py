"""Core's task reminders, the first users of the scheduler and of staff notifications.

Creating a task with a due time and an assignee schedules two jobs in the same transaction:
``core.task_due_soon`` at ``due_at - notifications.task_due_soon_s`` (not for a task created
already overdue) and ``core.task_overdue`` at ``due_at``. Each run notifies the assignee unless the
task is done, gone or was given another due time since (a run checks the due time it was
scheduled for). Completing the task cancels both. The notification's dedupe key is the task and
its due time, so a run repeated after a crash notifies once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import select

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.domain.contracts import JobKind, JobRun
from guanxi.core.domain.models import Customer, ScheduledJob, Task, Tenant, User, utcnow
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import counts, files, notifications, schedule
from guanxi.core.storage.db import write_transaction
from guanxi.core.storage.tenancy import unscoped

DUE_SOON = "core.task_due_soon"
OVERDUE = "core.task_overdue"
ACTOR = Actor(kind="system", name="reminders")

#: the reminder texts by language (the tenant's ``locale``); English for any other
TEXTS = {
    "zh": {DUE_SOON: "任务即将到期({due}):{title}", OVERDUE: "任务已逾期({due}):{title}", "customer": "客户:{name}"},
    "en": {DUE_SOON: "Task due {due}: {title}", OVERDUE: "Task overdue since {due}: {title}", "customer": "Customer: {name}"},
}


def job_key(kind: str, task_id: uuid.UUID) -> str:
    return f"{kind}:{task_id}"


async def schedule_reminders(tx: Tx, task: Task) -> None:
    """(Re)schedule or cancel a task's reminders to match its due time, assignee and state."""
    if not tx.runtime.settings.notifications.task_reminders:
        return
    due, assignee = task.due_at, task.assignee_id
    if due is None or assignee is None or task.done_at is not None:
        for kind in (DUE_SOON, OVERDUE):
            await schedule.cancel_key(tx, job_key(kind, task.id))
        return
    payload = {"task_id": str(task.id), "due_at": due.astimezone(dt.UTC).isoformat()}
    lead = dt.timedelta(seconds=tx.runtime.settings.notifications.task_due_soon_s)
    if due > utcnow():
        await schedule.schedule_job(tx, DUE_SOON, job_key(DUE_SOON, task.id), run_at=due - lead, payload=payload)
    else:
        await schedule.cancel_key(tx, job_key(DUE_SOON, task.id))
    await schedule.schedule_job(tx, OVERDUE, job_key(OVERDUE, task.id), run_at=due, payload=payload)


async def _remind(job: JobRun) -> None:
    try:
        task_id = uuid.UUID(str(job.payload["task_id"]))
    except (KeyError, ValueError):
        raise ValueError(f"a {job.kind} job needs the task's id in its payload (task_id), not {job.payload!r}") from None
    async with job.runtime.transaction(RequestContext(tenant_id=job.tenant_id, actor=ACTOR)) as tx:
        task = await tx.session.get(Task, (job.tenant_id, task_id))
        if task is None or task.done_at is not None or task.assignee_id is None or task.due_at is None:
            return
        due = task.due_at.astimezone(dt.UTC)
        if due.isoformat() != job.payload.get("due_at"):
            return  # the task was given another due time; its own jobs remind for that one
        user = await tx.session.get(User, (job.tenant_id, task.assignee_id))
        if user is None:
            return
        locale = (await tx.session.execute(select(Tenant.locale).where(Tenant.id == job.tenant_id))).scalar_one_or_none() or ""
        texts = TEXTS["zh" if locale.lower().startswith("zh") else "en"]
        tz = await notifications.user_zone(tx.session, user)
        name = (await tx.session.execute(select(Customer.display_name).where(Customer.id == task.customer_id))).scalar_one_or_none()
        kind = "task.due_soon" if job.kind == DUE_SOON else "task.overdue"
        await notifications.notify(
            tx,
            notifications.NotificationInput(
                user_id=user.id,
                kind=kind,
                title=texts[job.kind].format(due=due.astimezone(tz).strftime("%Y-%m-%d %H:%M"), title=task.title)[:300],
                body=texts["customer"].format(name=name) if name else None,
                link_type="task",
                link_id=task.id,
                dedupe_key=f"{kind}:{task.id}:{due.isoformat()}",
            ),
        )


#: core's own job kinds (plugins add theirs through ``guanxi_job_kinds``)
CORE_JOB_KINDS = {
    DUE_SOON: JobKind(name=DUE_SOON, run=_remind, description="Remind a task's assignee before the task is due"),
    OVERDUE: JobKind(name=OVERDUE, run=_remind, description="Tell a task's assignee the task is overdue"),
    files.SWEEP_JOB: JobKind(
        name=files.SWEEP_JOB, run=files.run_sweep, description="Delete stored files no reference holds any more", max_attempts=3
    ),
    counts.FOLD_JOB: JobKind(
        name=counts.FOLD_JOB, run=counts.run_fold, description="Fold each tenant's customer-count rows into one", max_attempts=3
    ),
}

#: core's jobs for the whole deployment, by cron schedule (see :func:`schedule_deployment_jobs`)
DEPLOYMENT_JOBS = {files.SWEEP_JOB: files.SWEEP_CRON, counts.FOLD_JOB: counts.FOLD_CRON}


async def schedule_deployment_jobs(runtime: Runtime, *, replace: bool = True) -> bool:
    """Keep one job of each of :data:`DEPLOYMENT_JOBS` scheduled for the deployment.

    They act for every tenant, but a scheduler row belongs to a tenant, and the scheduler skips
    the rows of a suspended tenant and a deleted tenant takes its rows with it. So each job is
    carried by an *active* tenant: the one that holds it now, else the configured tenant, else
    the oldest active tenant; a copy held by any other tenant (a suspended one, or one that was
    the configured tenant before) is deleted. ``guanxi db upgrade`` calls this with ``replace``
    (a job that exists is scheduled again, so a new cron or attempt limit takes effect); the
    scheduler worker calls it without, when it starts and every
    :data:`~guanxi.core.queues.scheduler.DEPLOYMENT_CHECK_S`: a job that is missing, was
    cancelled (a tenant admin may cancel the jobs of the tenant that carries them) or whose
    tenant was suspended is scheduled; one that is scheduled or running is left alone. So the
    jobs also start on a database whose first tenant was created after the upgrade (``make
    run``: the demo). False while no active tenant exists."""
    jobs = cast(Any, ScheduledJob).__table__
    async with runtime.session(None) as session, unscoped(session):
        held: dict[str, list[tuple[uuid.UUID, bool, bool]]] = {}  # key -> (tenant, tenant active, job live)
        stmt = (
            select(ScheduledJob.key, ScheduledJob.tenant_id, Tenant.status, ScheduledJob.status)
            .join(Tenant, Tenant.id == ScheduledJob.tenant_id)
            .where(ScheduledJob.key.in_(list(DEPLOYMENT_JOBS)))
            .order_by(ScheduledJob.created_at)
        )
        for key, tenant_id, tenant_status, job_status in await session.execute(stmt):
            held.setdefault(key, []).append((tenant_id, tenant_status == "active", job_status in ("scheduled", "running")))
        active = (
            await session.execute(select(Tenant.id, Tenant.slug).where(Tenant.status == "active").order_by(Tenant.created_at, Tenant.id))
        ).all()
    configured = [tid for tid, slug in active if slug == runtime.settings.tenant]
    candidates = configured or [tid for tid, _ in active]
    default = candidates[0] if candidates else None
    to_schedule: dict[uuid.UUID, list[str]] = {}
    stale: list[tuple[str, uuid.UUID]] = []
    for kind in DEPLOYMENT_JOBS:
        holders = held.get(kind, [])
        carrier = next((tid for tid, is_active, _ in holders if is_active), default)
        if carrier is None:
            return False
        stale += [(kind, tid) for tid, _, _ in holders if tid != carrier]
        if replace or not any(tid == carrier and live for tid, _, live in holders):
            to_schedule.setdefault(carrier, []).append(kind)
    for tenant_id, kinds in to_schedule.items():
        async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
            for kind in kinds:
                await schedule.schedule_job(tx, kind, kind, cron=DEPLOYMENT_JOBS[kind], max_attempts=CORE_JOB_KINDS[kind].max_attempts)
    if stale:
        async with write_transaction(runtime.engine) as conn:  # across tenants on purpose: the copies no active tenant carries
            for kind, tenant_id in stale:
                await conn.execute(jobs.delete().where(jobs.c.tenant_id == tenant_id, jobs.c.key == kind))
    return True
