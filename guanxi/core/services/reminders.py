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

from sqlalchemy import select

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import NotFoundError
from guanxi.core.domain.contracts import JobKind, JobRun
from guanxi.core.domain.models import Customer, Task, Tenant, User, utcnow
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import counts, files, notifications, schedule

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

#: core's jobs for the whole deployment, by cron schedule (``guanxi db upgrade`` schedules them)
DEPLOYMENT_JOBS = {files.SWEEP_JOB: files.SWEEP_CRON, counts.FOLD_JOB: counts.FOLD_CRON}


async def schedule_deployment_jobs(runtime: Runtime) -> bool:
    """Schedule :data:`DEPLOYMENT_JOBS` (again: the same jobs). They act for every tenant but are
    carried by the configured tenant's scheduler rows; False while that tenant does not exist."""
    try:
        tenant_id = await runtime.tenant_id()
    except NotFoundError:
        return False
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for kind, cron in DEPLOYMENT_JOBS.items():
            await schedule.schedule_job(tx, kind, kind, cron=cron, max_attempts=CORE_JOB_KINDS[kind].max_attempts)
    return True
