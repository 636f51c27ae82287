"""GraphQL of tag rules: list, save, delete and run them (``insightsTagRules``,
``saveInsightsTagRule``, ``deleteInsightsTagRule``, ``runInsightsTagRules``)."""

from __future__ import annotations

import datetime as dt
import enum

import strawberry
from sqlalchemy import func, select
from strawberry.types import Info

from guanxi.graphql.enums import Direction
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.insights import rules as svc
from guanxi.plugins.insights.models import InsightsRuleTag, InsightsTagRule


@strawberry.enum(description="What a tag rule looks at.")
class TagRuleKind(enum.Enum):
    KEYWORD = strawberry.enum_value("keyword", description="a keyword in an inbound text (word of its segmentation)")
    AT_LEAST = strawberry.enum_value("at_least", description="at least minCount matching interactions in the last windowDays")
    NONE_FOR = strawberry.enum_value("none_for", description="no matching interaction in the last windowDays")


@strawberry.type(description="A rule that tags customers, with itself as the reason (标签规则).")
class InsightsTagRuleType:
    id: strawberry.ID
    key: str
    tag: str
    kind: TagRuleKind
    keywords: list[str]
    interaction_kind: str | None
    channel: str | None
    direction: Direction | None
    min_count: int
    window_days: int | None = strawberry.field(description="days looked back; null on a keyword rule: all time")
    remove_when_false: bool = strawberry.field(description="the tag goes when the rule no longer holds")
    enabled: bool
    score_points: float = strawberry.field(description="points the rule's tag adds to the score (component `insights.tags`)")
    created_at: dt.datetime
    updated_at: dt.datetime
    customers: int = strawberry.field(description="customers who hold the rule's tag because of it")

    @classmethod
    def from_row(cls, r: InsightsTagRule, customers: int) -> InsightsTagRuleType:
        return cls(
            id=strawberry.ID(to_global_id("InsightsTagRule", r.id)),
            key=r.key,
            tag=r.tag,
            kind=TagRuleKind(r.kind),
            keywords=list(r.keywords),
            interaction_kind=r.interaction_kind,
            channel=r.channel,
            direction=Direction(r.direction) if r.direction else None,
            min_count=r.min_count,
            window_days=r.window_days,
            remove_when_false=r.remove_when_false,
            enabled=r.enabled,
            score_points=r.score_points,
            created_at=r.created_at,
            updated_at=r.updated_at,
            customers=customers,
        )


@strawberry.input
class InsightsTagRuleInput:
    key: str = strawberry.field(description="names the rule; saving an existing key changes that rule")
    tag: str = strawberry.field(description="`name` or `group/name`, e.g. `画像/价格敏感`")
    kind: TagRuleKind
    keywords: list[str] = strawberry.field(default_factory=list, description="KEYWORD rules: up to 200 keywords")
    interaction_kind: str | None = None
    channel: str | None = None
    direction: Direction | None = None
    min_count: int = 1
    window_days: int | None = None
    remove_when_false: bool = False
    enabled: bool = True
    score_points: float = strawberry.field(
        default=0.0, description="what holding the tag adds to the lead score (-1000 to 1000; negative lowers it)"
    )


@strawberry.type
class InsightsTagRulePayload:
    rule: InsightsTagRuleType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteInsightsTagRulePayload:
    deleted: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RunInsightsTagRulesPayload:
    added: int = strawberry.field(default=0, description="tags given")
    removed: int = strawberry.field(default=0, description="tags taken (rules with removeWhenFalse)")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RulesQuery:
    @strawberry.field(description="The tenant's tag rules, by key, each with how many customers hold its tag because of it.")
    async def insights_tag_rules(self, info: Info) -> list[InsightsTagRuleType]:
        session = info.context.session
        async with info.context.loaders.lock:
            found = await svc.list_rules(session)
            counts = dict((await session.execute(select(InsightsRuleTag.rule_id, func.count()).group_by(InsightsRuleTag.rule_id))).all())
        return [InsightsTagRuleType.from_row(r, counts.get(r.id, 0)) for r in found]


@strawberry.type
class RulesMutation:
    @strawberry.mutation(
        description="Create or change a tag rule (by key). Behaviour rules take effect at the next hourly run or runInsightsTagRules."
    )
    async def save_insights_tag_rule(self, info: Info, input: InsightsTagRuleInput) -> InsightsTagRulePayload:
        async def run() -> InsightsTagRulePayload:
            data = svc.RuleInput(
                key=input.key,
                tag=input.tag,
                kind=str(input.kind.value),
                keywords=list(input.keywords),
                interaction_kind=input.interaction_kind,
                channel=input.channel,
                direction=input.direction.value if input.direction else None,
                min_count=input.min_count,
                window_days=input.window_days,
                remove_when_false=input.remove_when_false,
                enabled=input.enabled,
                score_points=input.score_points,
            )
            async with info.context.transaction() as tx:
                rule = await svc.save_rule(tx, data)
                held = (
                    await tx.session.execute(select(func.count()).select_from(InsightsRuleTag).where(InsightsRuleTag.rule_id == rule.id))
                ).scalar_one()
            return InsightsTagRulePayload(rule=InsightsTagRuleType.from_row(rule, held))

        return await as_payload(run, InsightsTagRulePayload)

    @strawberry.mutation(description="Delete a tag rule; the tags it gave stay.")
    async def delete_insights_tag_rule(self, info: Info, key: str) -> DeleteInsightsTagRulePayload:
        async def run() -> DeleteInsightsTagRulePayload:
            async with info.context.transaction() as tx:
                await svc.delete_rule(tx, key)
            return DeleteInsightsTagRulePayload(deleted=True)

        return await as_payload(run, DeleteInsightsTagRulePayload)

    @strawberry.mutation(description="Evaluate every enabled tag rule now (as the hourly job does): give and take their tags.")
    async def run_insights_tag_rules(self, info: Info) -> RunInsightsTagRulesPayload:
        async def run() -> RunInsightsTagRulesPayload:
            result = await svc.evaluate(info.context.rt, info.context.tenant_id)
            return RunInsightsTagRulesPayload(added=result.added, removed=result.removed)

        return await as_payload(run, RunInsightsTagRulesPayload)
