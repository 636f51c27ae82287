"""GraphQL of the recurring follow-up plans: ``followUpPlans``, ``createFollowUpPlan``,
``updateFollowUpPlan``, ``pauseFollowUpPlan`` and ``resumeFollowUpPlan``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.inputs import FieldConditionInput
from guanxi.plugins.sales import followup_changes as changes
from guanxi.plugins.sales import followups as svc
from guanxi.plugins.sales.models import SalesFollowUpPlan


@strawberry.type(description="Which customers a follow-up plan follows up: every condition given must hold.")
class FollowUpFilter:
    stages: list[str] | None
    tags_any: list[str] | None
    fields: strawberry.scalars.JSON | None = strawberry.field(description="custom-field conditions, as customers(filter:) takes them")


@strawberry.type(description="A recurring follow-up plan: every everyDays days, a task for the owner of each matching customer.")
class FollowUpPlan:
    key: str
    name: str
    every_days: int
    due_days: int = strawberry.field(description="each task is due this many days after it is created (then reminded)")
    task_title: str
    filter: FollowUpFilter
    starts_on: dt.date = strawberry.field(description="the first day of period 0 (the tenant's day)")
    active: bool

    @classmethod
    def from_model(cls, p: SalesFollowUpPlan) -> FollowUpPlan:
        flt = p.filter
        return cls(
            key=p.key,
            name=p.name,
            every_days=p.every_days,
            due_days=p.due_days,
            task_title=p.task_title,
            filter=FollowUpFilter(stages=flt.get("stages"), tags_any=flt.get("tags_any"), fields=flt.get("fields")),
            starts_on=p.starts_on,
            active=p.active,
        )


@strawberry.input(description="Which customers to follow up: every condition given must hold (none: every owned customer).")
class FollowUpFilterInput:
    stages: list[str] | None = None
    tags_any: list[str] | None = None
    fields: list[FieldConditionInput] | None = strawberry.field(default=None, description='e.g. {field: "grade", eq: "A"}')


@strawberry.input
class CreateFollowUpPlanInput:
    key: str
    name: str
    every_days: int = strawberry.field(description="one task per matching customer every this many days (1 to 366)")
    task_title: str
    due_days: int = strawberry.field(default=3, description="the task is due this many days after it is created")
    filter: FollowUpFilterInput | None = None


@strawberry.input(description="Only the parts given are changed; a plan's key never changes.")
class UpdateFollowUpPlanInput:
    name: str | None = strawberry.UNSET
    every_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="the new interval (1 to 366): the current period is re-measured from its first day with it",
    )
    due_days: int | None = strawberry.UNSET
    task_title: str | None = strawberry.UNSET
    filter: FollowUpFilterInput | None = strawberry.field(
        default=strawberry.UNSET, description="the new filter; null follows up every owned customer"
    )


@strawberry.type
class FollowUpPlanPayload:
    plan: FollowUpPlan | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _plan_filter(flt: FollowUpFilterInput | None) -> svc.PlanFilter:
    if flt is None:
        return svc.PlanFilter()
    conditions = None
    if flt.fields:
        conditions = []
        for c in flt.fields:
            parts = {"eq": c.eq, "in": c.in_, "gt": c.gt, "gte": c.gte, "lt": c.lt, "lte": c.lte, "is_set": c.is_set}
            conditions.append({"field": c.field, **{k: v for k, v in parts.items() if v is not None}})
    return svc.PlanFilter(stages=flt.stages, tags_any=flt.tags_any, fields=conditions)


def _given(value: Any, where: str) -> Any:
    """UNSET stays UNSET (not changed); null is refused for a part that cannot be cleared."""
    if value is strawberry.UNSET:
        return msgspec.UNSET
    if value is None:
        raise ValidationError(f"{where} cannot be null (leave it out to keep it)", field=where)
    return value


def _patch(input: UpdateFollowUpPlanInput) -> changes.PlanPatch:
    return changes.PlanPatch(
        name=_given(input.name, "name"),
        every_days=_given(input.every_days, "everyDays"),
        due_days=_given(input.due_days, "dueDays"),
        task_title=_given(input.task_title, "taskTitle"),
        filter=msgspec.UNSET if input.filter is strawberry.UNSET else (_plan_filter(input.filter) if input.filter else None),
    )


@strawberry.type
class FollowUpQuery:
    @strawberry.field(description="The tenant's recurring follow-up plans.")
    async def follow_up_plans(self, info: Info) -> list[FollowUpPlan]:
        async with info.context.loaders.lock:
            return [FollowUpPlan.from_model(p) for p in await svc.list_plans(info.context.session)]


@strawberry.type
class FollowUpMutation:
    @strawberry.mutation(
        description="Create a recurring follow-up plan: every everyDays days each owned customer matching the filter gets a "
        "task for its owner, reminded before it is due (managers and admins)."
    )
    async def create_follow_up_plan(self, info: Info, input: CreateFollowUpPlanInput) -> FollowUpPlanPayload:
        async def run() -> FollowUpPlanPayload:
            data = svc.PlanInput(
                key=input.key,
                name=input.name,
                every_days=input.every_days,
                task_title=input.task_title,
                due_days=input.due_days,
                filter=_plan_filter(input.filter),
            )
            async with info.context.transaction() as tx:
                plan = await svc.create_plan(tx, data)
            return FollowUpPlanPayload(plan=FollowUpPlan.from_model(plan))

        return await as_payload(run, FollowUpPlanPayload)

    @strawberry.mutation(
        description="Change a follow-up plan's name, interval, due days, task title or filter (managers and admins); audited."
    )
    async def update_follow_up_plan(self, info: Info, key: str, input: UpdateFollowUpPlanInput) -> FollowUpPlanPayload:
        async def run() -> FollowUpPlanPayload:
            patch = _patch(input)
            async with info.context.transaction() as tx:
                plan = await changes.update_plan(tx, key, patch)
            return FollowUpPlanPayload(plan=FollowUpPlan.from_model(plan))

        return await as_payload(run, FollowUpPlanPayload)

    @strawberry.mutation(
        description="Pause a follow-up plan: it creates no task until resumed (tasks already made stay). Audited; "
        "pausing a paused plan changes nothing."
    )
    async def pause_follow_up_plan(self, info: Info, key: str, reason: str | None = None) -> FollowUpPlanPayload:
        async def run() -> FollowUpPlanPayload:
            async with info.context.transaction() as tx:
                plan = await changes.set_active(tx, key, False, reason)
            return FollowUpPlanPayload(plan=FollowUpPlan.from_model(plan))

        return await as_payload(run, FollowUpPlanPayload)

    @strawberry.mutation(
        description="Resume a paused follow-up plan. Periods missed while paused are not made up: the next daily run "
        "creates the current period's task for each matching customer who has none in it. Audited."
    )
    async def resume_follow_up_plan(self, info: Info, key: str) -> FollowUpPlanPayload:
        async def run() -> FollowUpPlanPayload:
            async with info.context.transaction() as tx:
                plan = await changes.set_active(tx, key, True)
            return FollowUpPlanPayload(plan=FollowUpPlan.from_model(plan))

        return await as_payload(run, FollowUpPlanPayload)
