"""GraphQL of the grade rule: the grade field derived from the score (``gradeRule``,
``setGradeRule``, ``clearGradeRule``)."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.types import Info

from guanxi.graphql.errors import UserError, as_payload
from guanxi.plugins.sales import grading
from guanxi.plugins.sales.models import SalesGradeRule


@strawberry.type(description="A grade and the lowest score that earns it.")
class GradeBand:
    grade: str
    min_score: float


@strawberry.input(description="A grade (a choice of the field) and the lowest score that earns it.")
class GradeBandInput:
    grade: str
    min_score: float


@strawberry.type(
    description="The tenant's rule deriving a single-choice custom field (the grade) from the scoring total, "
    "applied whenever scores are computed (after an event, and by `guanxi scoring recompute`)."
)
class GradeRule:
    field: str = strawberry.field(description="the key of the single-choice custom field it sets")
    bands: list[GradeBand] = strawberry.field(description="highest first: a score gets the first band whose minScore it reaches")
    otherwise: str | None = strawberry.field(description="the grade below every band; null: the field is cleared")
    updated_at: dt.datetime

    @classmethod
    def from_model(cls, r: SalesGradeRule) -> GradeRule:
        return cls(
            field=r.field_key,
            bands=[GradeBand(grade=str(b["grade"]), min_score=float(b["min"])) for b in r.bands],
            otherwise=r.otherwise,
            updated_at=r.updated_at,
        )


@strawberry.input
class SetGradeRuleInput:
    field: str = strawberry.field(description="a single-choice custom field of customers, e.g. grade")
    bands: list[GradeBandInput]
    otherwise: str | None = None


@strawberry.type
class GradeRulePayload:
    rule: GradeRule | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class GradingQuery:
    @strawberry.field(description="The tenant's rule deriving the grade field from the score; null: none.")
    async def grade_rule(self, info: Info) -> GradeRule | None:
        async with info.context.loaders.lock:
            found = await grading.get_rule(info.context.session)
        return GradeRule.from_model(found) if found else None


@strawberry.type
class GradingMutation:
    @strawberry.mutation(
        description="Set the rule deriving the grade (a single-choice custom field) from the score, e.g. ≥ 70 → A, ≥ 40 → B, "
        "else C (managers and admins). It applies whenever scores are computed; run `guanxi scoring recompute` to grade everyone now."
    )
    async def set_grade_rule(self, info: Info, input: SetGradeRuleInput) -> GradeRulePayload:
        async def run() -> GradeRulePayload:
            async with info.context.transaction() as tx:
                rule = await grading.set_rule(tx, input.field, [(b.grade, b.min_score) for b in input.bands], input.otherwise)
                out = GradeRule.from_model(rule)
            return GradeRulePayload(rule=out)

        return await as_payload(run, GradeRulePayload)

    @strawberry.mutation(description="Remove the grade rule (grades already set stay). NOT_FOUND when there is none.")
    async def clear_grade_rule(self, info: Info) -> GradeRulePayload:
        async def run() -> GradeRulePayload:
            from guanxi import NotFoundError

            async with info.context.transaction() as tx:
                if not await grading.clear_rule(tx):
                    raise NotFoundError("there is no grade rule", field=None)
            return GradeRulePayload(rule=None)

        return await as_payload(run, GradeRulePayload)
