"""The scoring plugin's part of the GraphQL schema: ``Customer.score`` (total, components with
their reasons, history), ``myPriorityQueue`` and the ``scoreGte`` / ``scoreLte`` filters and
``SCORE_DESC`` / ``SCORE_ASC`` orderings of ``customers``.

A page of customers with their scores costs one statement (scores, with their parts) whatever its size:
the fields resolve through DataLoaders kept on the request context.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import strawberry
from sqlalchemy import Float, func, literal, select
from sqlalchemy.sql.elements import ColumnElement
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Customer as Customer_
from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Customer
from guanxi.plugins.scoring import explain
from guanxi.plugins.scoring import parts as parts_json
from guanxi.plugins.scoring.models import ScoringHistory, ScoringScore
from guanxi.plugins.scoring.queue import priority_queue
from guanxi.plugins.scoring.settings import ScoringSettings

STATE_KEY = "scoring.loaders"


def _settings(info: Info) -> ScoringSettings:
    found: ScoringSettings = info.context.rt.plugin_settings("scoring", info.context.tenant_id)
    return found


@strawberry.type(description="One line of a score component: the rule or fact, the events it counted, and its points.")
class ScoreItem:
    item: str = strawberry.field(
        description="the rule (`message_in@wecom`, `visit@*` for any channel) or fact (`followers@douyin`, `recency`, `company`, "
        "`attribute:industry=retail`); empty for another plugin's component"
    )
    count: int = strawberry.field(description="events counted (interactions, purchases, identities)")
    over_cap: int = strawberry.field(description="events of the rule over its cap, not counted")
    value: float
    measure: float | None = strawberry.field(description="followers, engagement rate or amount spent, where that is what counts")
    first_at: dt.datetime | None = strawberry.field(description="the earliest event counted")
    last_at: dt.datetime | None = strawberry.field(description="the latest event counted")
    reasons: list[str]


@strawberry.type(name="ScoreComponent", description="One part of a score: its points and the reasons for them.")
class ScoreComponentType:
    name: str = strawberry.field(description="engagement, profile, social, purchase, or another plugin's `<plugin>.<part>`")
    value: float
    reasons: list[str]
    items: list[ScoreItem] = strawberry.field(description="the lines the component adds up, to trace each number to its events")


@strawberry.type(description="A change of a customer's score.")
class ScoreChange:
    at: dt.datetime
    total: float
    previous: float | None
    cause: str = strawberry.field(
        description="what caused the recompute: `interaction:<kind>@<channel>`, `created`, `profile`, `identity:<channel>`, "
        "`contact_arrived:<channel>`, `contact_left:<reason>`, `referral`, `merge` or `recompute`"
    )


@strawberry.type(description="A customer's score: the sum of its components, as of `updatedAt`.")
class Score:
    customer_uuid: strawberry.Private[uuid.UUID]
    total: float
    updated_at: dt.datetime
    components: list[ScoreComponentType]

    @strawberry.field(description="Changes of the total, newest first.")
    async def history(self, info: Info, first: int = 20) -> list[ScoreChange]:
        size = check_page_size(first, 20, _settings(info).history_limit)
        rows = await loaders(info).history.load((self.customer_uuid, size))
        return [
            ScoreChange(at=r.at, total=round(r.total, 4), previous=None if r.previous is None else round(r.previous, 4), cause=r.cause)
            for r in rows
        ]


class ScoreLoaders:
    """Per-request DataLoaders (on ``info.context.state``)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.scores: DataLoader[uuid.UUID, Score | None] = DataLoader(self._scores)
        self.history: DataLoader[tuple[uuid.UUID, int], list[Any]] = DataLoader(self._history)

    async def _scores(self, ids: Sequence[uuid.UUID]) -> list[Score | None]:
        execute = self._context.loaders.execute
        wanted = set(ids)
        scores = {r.customer_id: r for r in (await execute(select(ScoringScore).where(ScoringScore.customer_id.in_(wanted)))).scalars()}
        settings: ScoringSettings = self._context.rt.plugin_settings("scoring", self._context.tenant_id)
        out: list[Score | None] = []
        for i in ids:
            s = scores.get(i)
            if s is None:
                out.append(None)
                continue
            comps = [
                ScoreComponentType(
                    name=name,
                    value=round(value, 4),
                    reasons=[w for _, words in lines for w in words],
                    items=[
                        ScoreItem(
                            item=p.item,
                            count=p.count,
                            over_cap=p.skipped,
                            value=round(p.value, 4),
                            measure=p.measure,
                            first_at=p.first_at,
                            last_at=p.last_at,
                            reasons=words,
                        )
                        for p, words in lines
                    ],
                )
                for name, value, lines in explain.components(parts_json.decode(s.parts), settings)
            ]
            out.append(Score(customer_uuid=i, total=round(s.total, 4), updated_at=s.computed_at, components=comps))
        return out

    async def _history(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[list[Any]]:
        h = ScoringHistory
        largest = max(n for _, n in keys)
        rn = func.row_number().over(partition_by=h.customer_id, order_by=h.at.desc()).label("rn")
        inner = select(h.customer_id, h.at, h.total, h.previous, h.cause, rn).where(h.customer_id.in_({k for k, _ in keys})).subquery()
        stmt = select(inner).where(inner.c.rn <= largest).order_by(inner.c.customer_id, inner.c.rn)
        found: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for r in (await self._context.loaders.execute(stmt)).all():
            found[r.customer_id].append(r)
        return [found[k][:n] for k, n in keys]


def loaders(info: Info) -> ScoreLoaders:
    state = info.context.state
    found = state.get(STATE_KEY)
    if found is None:
        found = state[STATE_KEY] = ScoreLoaders(info.context)
    return found


@strawberry.type
class CustomerScore:
    @strawberry.field(description="The customer's lead score with its explanation; null until first computed.")
    async def score(self, info: Info) -> Score | None:
        return await loaders(info).scores.load(self.uuid)  # type: ignore[attr-defined]


@strawberry.type(description="A customer in a salesperson's priority queue, with why it ranks there.")
class PriorityItem:
    customer: Customer
    rank: float = strawberry.field(description="score + recent inbound touch + due tasks + stage (see the scoring docs)")
    score: float
    reasons: list[str]


@strawberry.type
class ScoringQuery:
    @strawberry.field(description="The signed-in salesperson's customers, most worth a call first (智能排序).")
    async def my_priority_queue(self, info: Info, first: int = 20) -> list[PriorityItem]:
        user_id = info.context.ctx.actor.user_id
        if user_id is None:
            raise ValidationError("myPriorityQueue is the queue of a signed-in staff user; this caller is not one", code="NOT_A_USER")
        settings = info.context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        async with info.context.loaders.lock:
            ranked = await priority_queue(info.context.session, user_id, _settings(info), size)
        return [
            PriorityItem(customer=Customer.from_row(r.row, info.context), rank=round(r.rank, 4), score=round(r.score, 4), reasons=r.reasons)
            for r in ranked
        ]


def score_of_customer() -> ColumnElement[float]:
    """The customer's current total as a sort key / condition on core's customer select (0 for a
    customer never scored, so it is never NULL)."""
    s = ScoringScore
    total = select(s.total).where(s.tenant_id == Customer_.tenant_id, s.customer_id == Customer_.id).scalar_subquery()
    return func.coalesce(total, literal(0.0, Float))


def contribution() -> Any:
    from guanxi.graphql.contrib import CustomerFilterField, CustomerOrdering, GraphQLContribution

    return GraphQLContribution(
        query=ScoringQuery,
        extend={"Customer": CustomerScore},
        types=[Score, ScoreComponentType, ScoreItem, ScoreChange],
        customer_filters=[
            CustomerFilterField(
                "score_gte", float | None, lambda stmt, v: stmt.where(score_of_customer() >= v), "score at least (unscored: 0)"
            ),
            CustomerFilterField(
                "score_lte", float | None, lambda stmt, v: stmt.where(score_of_customer() <= v), "score at most (unscored: 0)"
            ),
        ],
        customer_orderings=[
            CustomerOrdering("score_desc", score_of_customer, descending=True, description="highest score first"),
            CustomerOrdering("score_asc", score_of_customer, descending=False, description="lowest score first"),
        ],
    )
