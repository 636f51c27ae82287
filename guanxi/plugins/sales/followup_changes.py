"""Changing a recurring follow-up plan after it was made: its settings (name, interval, due days,
task title, filter), pausing and resuming it; each change audited on the plan.

**Interval.** Periods count from the plan's ``starts_on``. A new ``every_days`` re-measures the
*current* period from its own first day: if the new interval has already passed since that day,
the next daily run starts a new period; otherwise the period now ends at its first day plus the
new interval. ``starts_on`` moves so that period numbers go on growing (no period number is used
twice, so a customer never misses a task because an old run row has its number).

**Pause and resume.** A paused plan creates no task (the daily job skips it). Resuming does not
make up the periods that passed while it was paused: the next daily run creates the *current*
period's task for each matching customer who has none in it yet, at most one per customer, and
the schedule goes on from the plan's own periods. Tasks made before the pause stay the owners'
(with their reminders), like any task."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.schedule import tenant_zone
from guanxi.plugins.sales import followups
from guanxi.plugins.sales.models import SalesFollowUpPlan


class PlanPatch(msgspec.Struct, kw_only=True):
    """Fields left UNSET are not changed; a ``filter`` of None follows up every owned customer."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    every_days: int | msgspec.UnsetType = msgspec.UNSET
    due_days: int | msgspec.UnsetType = msgspec.UNSET
    task_title: str | msgspec.UnsetType = msgspec.UNSET
    filter: followups.PlanFilter | msgspec.UnsetType | None = msgspec.UNSET


async def plan_by_key(tx: Tx, key: str) -> SalesFollowUpPlan:
    plan = (await tx.session.execute(select(SalesFollowUpPlan).where(SalesFollowUpPlan.key == key))).scalar_one_or_none()
    if plan is None:
        raise NotFoundError(f"no follow-up plan {key!r}", field="key")
    return plan


def restarted_on(starts_on: dt.date, old_every: int, new_every: int, today: dt.date) -> dt.date:
    """The ``starts_on`` that keeps the current period's first day and its number under the new
    interval (see the module docstring)."""
    period = max((today - starts_on).days // old_every, 0)
    first_day = starts_on + dt.timedelta(days=period * old_every)
    return first_day - dt.timedelta(days=period * new_every)


async def update_plan(tx: Tx, key: str, patch: PlanPatch) -> SalesFollowUpPlan:
    plan = await plan_by_key(tx, key)
    every = plan.every_days if isinstance(patch.every_days, msgspec.UnsetType) else patch.every_days
    due = plan.due_days if isinstance(patch.due_days, msgspec.UnsetType) else patch.due_days
    followups.check_days(every, due)
    new: dict[str, Any] = {"every_days": every, "due_days": due}
    if not isinstance(patch.name, msgspec.UnsetType):
        new["name"] = followups.clean_name(patch.name)
    if not isinstance(patch.task_title, msgspec.UnsetType):
        new["task_title"] = followups.clean_title(patch.task_title)
    if not isinstance(patch.filter, msgspec.UnsetType):
        flt = patch.filter or followups.PlanFilter()
        await followups.check_filter(tx.session, flt)
        new["filter"] = msgspec.to_builtins(flt)
    if every != plan.every_days:
        today = dt.datetime.now(dt.UTC).astimezone(await tenant_zone(tx.session)).date()
        new["starts_on"] = restarted_on(plan.starts_on, plan.every_days, every, today)
    changed = {name: [getattr(plan, name), value] for name, value in new.items() if getattr(plan, name) != value}
    for name, (_, value) in changed.items():
        setattr(plan, name, value)
    if changed:
        await tx.session.flush()
        audit(tx, "sales.followup_plan.update", "salesFollowUpPlan", plan.id, {"key": plan.key, "changed": msgspec.to_builtins(changed)})
    return plan


async def set_active(tx: Tx, key: str, active: bool, reason: str | None = None) -> SalesFollowUpPlan:
    """Pause (``active=False``) or resume a plan; doing it again changes nothing (and is not audited)."""
    if reason is not None and len(reason) > 500:
        raise ValidationError("reason must be at most 500 characters", field="reason")
    plan = await plan_by_key(tx, key)
    if plan.active != active:
        plan.active = active
        await tx.session.flush()
        action = "sales.followup_plan.resume" if active else "sales.followup_plan.pause"
        audit(tx, action, "salesFollowUpPlan", plan.id, {"key": plan.key, **({"reason": reason.strip()} if reason else {})})
    return plan
