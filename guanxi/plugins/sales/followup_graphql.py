"""GraphQL of the recurring follow-up plans: ``followUpPlans`` and ``createFollowUpPlan``."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.types import Info

from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.inputs import FieldConditionInput
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
