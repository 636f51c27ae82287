"""Recurring follow-up plans (issue 20 item 5): every ``every_days`` days, each owned customer
matching the plan's filter (stages, tags, custom-field conditions, e.g. ``grade`` is A) gets a
follow-up task for its owner, due ``due_days`` later; core's task reminders then remind the owner
through core notifications.

Periods count from the plan's first day (the tenant's day): period ``n`` covers days
``[n * every_days, (n + 1) * every_days)``. A :class:`SalesFollowUpRun` row per plan, customer and
period (its primary key) makes the daily job idempotent: run twice in a period, it creates each
task once; a customer who starts matching mid-period gets its task on the next run."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Final, cast

import msgspec
from sqlalchemy import Select, and_, select

from guanxi import Runtime
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.domain.models import Customer, User
from guanxi.core.runtime import Tx
from guanxi.core.services import queries
from guanxi.core.services.audit import audit
from guanxi.core.services.fields import FieldCondition
from guanxi.core.services.schedule import schedule_job, tenant_zone
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.models import SalesFollowUpPlan, SalesFollowUpRun

PLAN_JOB: Final = "sales.followup_plans"
#: the plans run daily at 08:00 in the tenant's time zone
PLAN_CRON: Final = "0 8 * * *"
ACTOR: Final = Actor(kind="rule", name="sales.followup_plans")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_CONDITION_PARTS: Final = ("eq", "in", "gt", "gte", "lt", "lte", "is_set")


class PlanFilter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Which customers a plan follows up (every part given must hold; none: every owned customer)."""

    stages: list[str] | None = None
    tags_any: list[str] | None = None
    #: custom-field conditions as ``customers(filter: {fields: …})`` takes them: ``{"field": "grade", "eq": "A"}``
    fields: list[dict[str, Any]] | None = None


class PlanInput(msgspec.Struct, kw_only=True):
    key: str
    name: str
    every_days: int
    task_title: str
    due_days: int = 3
    filter: PlanFilter = msgspec.field(default_factory=PlanFilter)


def _user_id(raw: str, where: str) -> Any:
    from guanxi.graphql.ids import from_global_id

    return from_global_id(raw, "User", field=where)


def customer_filter(flt: PlanFilter) -> queries.CustomerFilter:
    """The core customer filter of a plan's filter, compiled into SQL by :mod:`queries`."""
    conditions = [
        FieldCondition(
            field=str(c.get("field", "")),
            eq=c.get("eq"),
            in_=c.get("in"),
            gt=c.get("gt"),
            gte=c.get("gte"),
            lt=c.get("lt"),
            lte=c.get("lte"),
            is_set=c.get("is_set"),
            where=f"filter.fields[{i}]",
            parse_user=_user_id,
        )
        for i, c in enumerate(flt.fields or [])
    ]
    return queries.CustomerFilter(stages=flt.stages, tags_any=flt.tags_any, fields=conditions or None, unassigned=False)


def clean_name(value: str) -> str:
    name = " ".join(value.split())
    if not name or len(name) > 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    return name


def clean_title(value: str) -> str:
    title = " ".join(value.split())
    if not title or len(title) > 300:
        raise ValidationError("taskTitle must be 1 to 300 characters", field="taskTitle")
    return title


def check_days(every_days: int, due_days: int) -> None:
    if not 1 <= every_days <= 366:
        raise ValidationError("everyDays must be 1 to 366", field="everyDays")
    if not 0 <= due_days <= every_days:
        raise ValidationError("dueDays must be 0 to everyDays", field="dueDays")


async def check_filter(session: TenantSession, flt: PlanFilter) -> None:
    """Compile the filter now, so an unknown field or a value of the wrong type is refused
    when the plan is made or changed (``VALIDATION`` naming ``filter.fields[i]…``)."""
    for i, c in enumerate(flt.fields or []):
        unknown = set(c) - {"field", *_CONDITION_PARTS}
        if unknown:
            raise ValidationError(f"unknown condition part {sorted(unknown)[0]!r}", field=f"filter.fields[{i}]")
    await queries.apply_filter(session, select(Customer.id), customer_filter(flt))


async def create_plan(tx: Tx, data: PlanInput) -> SalesFollowUpPlan:
    if not _KEY.match(data.key):
        raise ValidationError("key must be lower case: a letter, then letters, digits, _ or -, at most 64", field="key")
    name = clean_name(data.name)
    title = clean_title(data.task_title)
    check_days(data.every_days, data.due_days)
    session = tx.session
    await check_filter(session, data.filter)
    if (await session.execute(select(SalesFollowUpPlan.id).where(SalesFollowUpPlan.key == data.key))).first() is not None:
        raise ConflictError(f"a follow-up plan {data.key!r} exists already", field="key")
    today = dt.datetime.now(dt.UTC).astimezone(await tenant_zone(session)).date()
    plan = SalesFollowUpPlan(
        key=data.key,
        name=name,
        every_days=data.every_days,
        due_days=data.due_days,
        task_title=title,
        filter=msgspec.to_builtins(data.filter),
        starts_on=today,
    )
    session.add(plan)
    await session.flush()
    await schedule_job(tx, PLAN_JOB, PLAN_JOB, cron=PLAN_CRON)
    audit(tx, "sales.followup_plan.create", "salesFollowUpPlan", plan.id, {"key": plan.key, "every_days": plan.every_days})
    return plan


async def list_plans(session: TenantSession) -> list[SalesFollowUpPlan]:
    return list((await session.scalars(select(SalesFollowUpPlan).order_by(SalesFollowUpPlan.key))).all())


def period_of(plan: SalesFollowUpPlan, today: dt.date) -> int:
    return (today - plan.starts_on).days // plan.every_days


async def run_plans(runtime: Runtime, tenant_id: uuid.UUID, now: dt.datetime) -> int:
    """Create this period's follow-up tasks of every active plan (once per plan, customer and
    period); returns how many were created. Customers of inactive owners are skipped."""
    created = 0
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        session = tx.session
        today = now.astimezone(await tenant_zone(session)).date()
        for plan in await list_plans(session):
            if not plan.active or today < plan.starts_on:
                continue
            period = period_of(plan, today)
            done = select(SalesFollowUpRun.customer_id).where(SalesFollowUpRun.plan_id == plan.id, SalesFollowUpRun.period == period)
            base = cast(
                "Select[Any]",
                select(Customer.id, Customer.owner_id).join(
                    User, and_(User.tenant_id == Customer.tenant_id, User.id == Customer.owner_id, User.active.is_(True))
                ),
            )
            stmt = await queries.apply_filter(session, base, customer_filter(msgspec.convert(plan.filter, PlanFilter)))
            if stmt is None:
                continue
            rows = (await session.execute(stmt.where(Customer.id.not_in(done)).order_by(Customer.id))).all()
            due_at = now + dt.timedelta(days=plan.due_days)
            for customer_id, owner_id in rows:
                task = await create_task(tx, TaskInput(customer_id=customer_id, title=plan.task_title, assignee_id=owner_id, due_at=due_at))
                session.add(SalesFollowUpRun(plan_id=plan.id, customer_id=customer_id, period=period, task_id=task.id))
                created += 1
            await session.flush()
    return created
