"""Follow-up tasks."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import TaskChanged
from guanxi.core.domain.models import Task, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services import reminders
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer


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
