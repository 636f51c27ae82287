"""Follow-up tasks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import TaskChanged
from guanxi.core.domain.models import Customer, Task, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services import reminders
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession


class TaskInput(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    title: str
    assignee_id: uuid.UUID | None = None
    due_at: dt.datetime | None = None
    notes: str | None = None


def _event(tx: Tx, task: Task) -> TaskChanged:
    return TaskChanged(
        tenant_id=tx.tenant_id,
        actor=tx.ctx.actor,
        task_id=task.id,
        customer_id=task.customer_id,
        assignee_id=task.assignee_id,
        title=task.title,
        due_at=task.due_at,
        done=task.done_at is not None,
    )


async def create_task(tx: Tx, data: TaskInput) -> Task:
    title = " ".join(data.title.split())
    if not title or len(title) > 300:
        raise ValidationError("title must be 1 to 300 characters", field="title")
    if data.due_at is not None and data.due_at.tzinfo is None:
        raise ValidationError("dueAt must carry a time zone", field="dueAt")
    customer = await get_customer(tx.session, data.customer_id)
    assignee = data.assignee_id or customer.owner_id
    if assignee is not None:
        user = await tx.session.get(User, (tx.tenant_id, assignee))
        if user is None or not user.active:
            raise ValidationError(f"assignee {assignee} is not an active user of this tenant", field="assigneeId")
    task = Task(
        id=new_id(),
        customer_id=customer.id,
        assignee_id=assignee,
        title=title,
        notes=data.notes,
        due_at=data.due_at,
        created_at=utcnow(),
        created_by_id=tx.ctx.actor.user_id,
    )
    tx.session.add(task)
    await tx.session.flush()
    await reminders.schedule_reminders(tx, task)
    audit(tx, "task.create", "task", task.id, {"customer_id": customer.id, "title": title, "due_at": data.due_at})
    tx.emit("guanxi_task_changed", _event(tx, task))
    return task


async def complete_task(tx: Tx, task_id: uuid.UUID) -> Task:
    task = await tx.session.get(Task, (tx.tenant_id, task_id))
    if task is None:
        raise NotFoundError(f"task {task_id} not found")
    if task.done_at is None:
        task.done_at = utcnow()
        audit(tx, "task.complete", "task", task.id)
        await reminders.schedule_reminders(tx, task)
        tx.emit("guanxi_task_changed", _event(tx, task))
    return task


#: which due dates a task list keeps (``due`` of :func:`list_tasks`)
DUE_FILTERS = ("any", "overdue", "today", "this_week", "later", "none")
#: which tasks by completion (``status`` of :func:`list_tasks`)
STATUS_FILTERS = ("open", "done", "all")


def due_window(due: str, now: dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The [start, end) of due times a ``due`` filter keeps, in the person's time zone: ``today``
    is the local day, ``this_week`` runs to the end of the local Sunday, ``overdue`` is before
    now, ``later`` after this week. (None, None) for ``any`` and ``none``."""
    local = now.astimezone(tz)
    midnight = dt.datetime.combine(local.date(), dt.time(), tzinfo=tz)
    tomorrow = (midnight + dt.timedelta(days=1)).astimezone(dt.UTC)
    week_end = (midnight + dt.timedelta(days=7 - local.weekday())).astimezone(dt.UTC)
    match due:
        case "overdue":
            return None, now
        case "today":
            return midnight.astimezone(dt.UTC), tomorrow
        case "this_week":
            return midnight.astimezone(dt.UTC), week_end
        case "later":
            return week_end, None
    return None, None


async def list_tasks(
    session: TenantSession,
    *,
    assignees: Collection[uuid.UUID] | None,
    due: str = "any",
    status: str = "open",
    now: dt.datetime | None = None,
    tz: ZoneInfo | None = None,
    first: int = 50,
) -> list[Any]:
    """Tasks of some assignees (None: every task the session sees), soonest due first (no due
    date last), as rows of the task's columns. ``due`` is one of :data:`DUE_FILTERS` (in ``tz``,
    default UTC), ``status`` one of :data:`STATUS_FILTERS`; ``overdue`` keeps open tasks only."""
    if due not in DUE_FILTERS:
        raise ValidationError(f"due must be one of {', '.join(DUE_FILTERS)}", field="due")
    if status not in STATUS_FILTERS:
        raise ValidationError(f"status must be one of {', '.join(STATUS_FILTERS)}", field="status")
    now = now or utcnow()
    stmt = select(Task.id, Task.customer_id, Task.assignee_id, Task.title, Task.notes, Task.due_at, Task.done_at, Task.created_at)
    if assignees is not None:
        stmt = stmt.where(Task.assignee_id.in_(set(assignees)))
    if status == "open" or due == "overdue":
        stmt = stmt.where(Task.done_at.is_(None))
    elif status == "done":
        stmt = stmt.where(Task.done_at.is_not(None))
    if due == "none":
        stmt = stmt.where(Task.due_at.is_(None))
    start, end = due_window(due, now, tz or ZoneInfo("UTC"))
    if start is not None:
        stmt = stmt.where(Task.due_at >= start)
    if end is not None:
        stmt = stmt.where(Task.due_at < end)
    live = select(Customer.id).where(Customer.merged_into_id.is_(None))
    stmt = stmt.where(Task.customer_id.in_(live))
    stmt = stmt.order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(first)
    return list((await session.execute(stmt)).all())


async def team_of(session: TenantSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The active users of a user's team (the user alone when they have no team)."""
    team = (await session.execute(select(User.team).where(User.id == user_id))).scalar_one_or_none()
    if not team:
        return [user_id]
    return list((await session.execute(select(User.id).where(User.team == team, User.active.is_(True)))).scalars())
