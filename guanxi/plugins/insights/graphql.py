"""The insights plugin's part of the GraphQL schema: ``Customer.insights``, a customer's profile
(sentiment trend, active channels and hours, last touches with their sentiment), and the
``alertRaised`` subscription.

A page of customers with their profiles costs four statements whatever its size (sentiments by
day, channels, hours, last touches): the fields resolve through DataLoaders kept on the request
context, each loading one aspect for every customer of the page.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import strawberry
from sqlalchemy import func, select
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Interaction, utcnow
from guanxi.core.storage.localtime import local_date, local_hour
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.subscriptions import subscribed_events
from guanxi.plugins.insights.analysis import ALERT_TOPIC
from guanxi.plugins.insights.models import InsightsKeywordHit, InsightsRuleTag, InsightsSentiment, InsightsTagRule

STATE_KEY = "insights.loaders"
MAX_DAYS = 365
MAX_TOUCHES = 50


@strawberry.type(description="The mean sentiment of a customer's inbound texts on one day (in the tenant's time zone).")
class SentimentDay:
    day: dt.date
    average: float = strawberry.field(description="mean score in [-1, 1]")
    texts: int


@strawberry.type(description="The sentiment of a customer's inbound texts over a window of days.")
class SentimentSummary:
    texts: int = strawberry.field(description="inbound texts scored in the window")
    average: float | None = strawberry.field(description="mean score in [-1, 1]; null without texts")
    negative: int = strawberry.field(description="texts labelled negative")
    alerts: int = strawberry.field(description="texts that raised an alert (a task and a notification)")
    trend: list[SentimentDay] = strawberry.field(description="by day, oldest first (days without texts are left out)")


@strawberry.type(description="Inbound interactions of a customer on one channel.")
class ChannelActivity:
    channel: str
    inbound: int
    last_at: dt.datetime


@strawberry.type(description="Inbound interactions of a customer in one hour of the day (in the tenant's time zone).")
class HourActivity:
    hour: int = strawberry.field(description="0 to 23, in the tenant's time zone")
    inbound: int


@strawberry.type(description="One of a customer's latest interactions, with its sentiment when it was an inbound text.")
class Touch:
    channel: str
    kind: str
    direction: str
    occurred_at: dt.datetime
    sentiment: str | None = strawberry.field(description="pos, neg or neu; null for outbound or text-less interactions")
    score: float | None


@strawberry.type(description="A tag a tag rule gave a customer, and why.")
class RuleTagReason:
    tag: str = strawberry.field(description="the tag's label, `name` or `group/name`")
    rule: str = strawberry.field(description="the key of the rule that gave it")
    reason: str
    since: dt.datetime


@strawberry.type(description="A keyword a customer wrote (from keyword rules): how often, and when last.")
class Interest:
    keyword: str
    hits: int
    last_at: dt.datetime


@strawberry.type(description="A customer's profile from their interactions (标签画像): sentiment, channels, hours, last touches.")
class CustomerInsights:
    customer_uuid: strawberry.Private[uuid.UUID]
    days: strawberry.Private[int]

    @strawberry.field(description="Sentiment of the inbound texts of the window.")
    async def sentiment(self, info: Info) -> SentimentSummary:
        return await loaders(info).sentiment.load((self.customer_uuid, self.days))

    @strawberry.field(description="Channels the customer wrote or acted on (inbound, all time), busiest first.")
    async def channels(self, info: Info) -> list[ChannelActivity]:
        return await loaders(info).channels.load(self.customer_uuid)

    @strawberry.field(description="Hours of the day (the tenant's time zone) of the customer's inbound interactions, busiest first.")
    async def active_hours(self, info: Info) -> list[HourActivity]:
        return await loaders(info).hours.load(self.customer_uuid)

    @strawberry.field(description="Tags that tag rules gave the customer, with the rule, the reason and since when, newest first.")
    async def tags(self, info: Info) -> list[RuleTagReason]:
        return await loaders(info).tags.load(self.customer_uuid)

    @strawberry.field(description="Interests: the keywords of keyword rules the customer wrote, most often first (at most 50).")
    async def interests(self, info: Info, first: int = 10) -> list[Interest]:
        if not 1 <= first <= MAX_TOUCHES:
            raise ValidationError(f"first must be 1 to {MAX_TOUCHES}", field="first")
        return (await loaders(info).interests.load(self.customer_uuid))[:first]

    @strawberry.field(description="The latest interactions, newest first (at most 50).")
    async def last_touches(self, info: Info, first: int = 5) -> list[Touch]:
        if not 1 <= first <= MAX_TOUCHES:
            raise ValidationError(f"first must be 1 to {MAX_TOUCHES}", field="first")
        return await loaders(info).touches.load((self.customer_uuid, first))


def _day(value: Any) -> dt.date:
    """``date(...)`` is a string on SQLite and a date on PostgreSQL."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


class InsightsLoaders:
    """Per-request DataLoaders (on ``info.context.state``): one statement per aspect and page."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._execute = context.loaders.execute
        self._now = utcnow()
        self.sentiment: DataLoader[tuple[uuid.UUID, int], SentimentSummary] = DataLoader(self._sentiment)
        self.channels: DataLoader[uuid.UUID, list[ChannelActivity]] = DataLoader(self._channels)
        self.hours: DataLoader[uuid.UUID, list[HourActivity]] = DataLoader(self._hours)
        self.touches: DataLoader[tuple[uuid.UUID, int], list[Touch]] = DataLoader(self._touches)
        self.tags: DataLoader[uuid.UUID, list[RuleTagReason]] = DataLoader(self._tags)
        self.interests: DataLoader[uuid.UUID, list[Interest]] = DataLoader(self._interests)

    async def _tags(self, ids: Sequence[uuid.UUID]) -> list[list[RuleTagReason]]:
        r, rule = InsightsRuleTag, InsightsTagRule
        stmt = (
            select(r.customer_id, r.tag, rule.key, r.reason, r.since)
            .join(rule, (rule.tenant_id == r.tenant_id) & (rule.id == r.rule_id))
            .where(r.customer_id.in_(set(ids)))
            .order_by(r.since.desc(), rule.key)
        )
        found: dict[uuid.UUID, list[RuleTagReason]] = defaultdict(list)
        for row in (await self._execute(stmt)).all():
            found[row.customer_id].append(RuleTagReason(tag=row.tag, rule=row.key, reason=row.reason, since=row.since))
        return [found[c] for c in ids]

    async def _interests(self, ids: Sequence[uuid.UUID]) -> list[list[Interest]]:
        h = InsightsKeywordHit
        stmt = (
            select(
                h.customer_id, h.keyword, func.count(func.distinct(h.interaction_id)).label("n"), func.max(h.occurred_at).label("last_at")
            )
            .where(h.customer_id.in_(set(ids)))
            .group_by(h.customer_id, h.keyword)
        )
        found: dict[uuid.UUID, list[Interest]] = defaultdict(list)
        for row in (await self._execute(stmt)).all():
            found[row.customer_id].append(Interest(keyword=row.keyword, hits=row.n, last_at=row.last_at))
        return [sorted(found[c], key=lambda i: (-i.hits, i.keyword))[:MAX_TOUCHES] for c in ids]

    async def _zone(self) -> tuple[str, str]:
        """The tenant's time zone (cached per process with its plugin choices) and the dialect."""
        rt = self._context.rt
        return (await rt.tenant_plugins(self._context.tenant_id)).time_zone, rt.engine.dialect.name

    async def _sentiment(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[SentimentSummary]:
        s = InsightsSentiment
        since = self._now - dt.timedelta(days=max(d for _, d in keys))
        zone, dialect = await self._zone()
        day = local_date(s.occurred_at, zone, dialect)
        stmt = (
            select(
                s.customer_id,
                day.label("day"),
                func.count().label("texts"),
                func.sum(s.score).label("total"),
                func.count(s.label).filter(s.label == "neg").label("negative"),
                func.count(s.alert).label("alerts"),
            )
            .where(s.customer_id.in_({c for c, _ in keys}), s.occurred_at > since)
            .group_by(s.customer_id, day)
            .order_by(s.customer_id, day)
        )
        rows: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for r in (await self._execute(stmt)).all():
            rows[r.customer_id].append(r)
        out = []
        for customer_id, days in keys:
            cutoff = (self._now - dt.timedelta(days=days)).astimezone(ZoneInfo(zone)).date()
            mine = [r for r in rows[customer_id] if _day(r.day) >= cutoff]
            texts = sum(r.texts for r in mine)
            out.append(
                SentimentSummary(
                    texts=texts,
                    average=round(sum(r.total for r in mine) / texts, 4) if texts else None,
                    negative=sum(r.negative for r in mine),
                    alerts=sum(r.alerts for r in mine),
                    trend=[SentimentDay(day=_day(r.day), average=round(r.total / r.texts, 4), texts=r.texts) for r in mine],
                )
            )
        return out

    async def _channels(self, ids: Sequence[uuid.UUID]) -> list[list[ChannelActivity]]:
        i = Interaction
        stmt = (
            select(i.customer_id, i.channel, func.count().label("n"), func.max(i.occurred_at).label("last_at"))
            .where(i.customer_id.in_(set(ids)), i.direction == "in")
            .group_by(i.customer_id, i.channel)
        )
        found: dict[uuid.UUID, list[ChannelActivity]] = defaultdict(list)
        for r in (await self._execute(stmt)).all():
            found[r.customer_id].append(ChannelActivity(channel=r.channel, inbound=r.n, last_at=r.last_at))
        return [sorted(found[c], key=lambda a: (-a.inbound, a.channel)) for c in ids]

    async def _hours(self, ids: Sequence[uuid.UUID]) -> list[list[HourActivity]]:
        i = Interaction
        zone, dialect = await self._zone()
        hour = local_hour(i.occurred_at, zone, dialect)
        stmt = (
            select(i.customer_id, hour.label("hour"), func.count().label("n"))
            .where(i.customer_id.in_(set(ids)), i.direction == "in")
            .group_by(i.customer_id, hour)
        )
        found: dict[uuid.UUID, list[HourActivity]] = defaultdict(list)
        for r in (await self._execute(stmt)).all():
            found[r.customer_id].append(HourActivity(hour=int(r.hour), inbound=r.n))
        return [sorted(found[c], key=lambda a: (-a.inbound, a.hour)) for c in ids]

    async def _touches(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[list[Touch]]:
        i, s = Interaction, InsightsSentiment
        largest = max(n for _, n in keys)
        rn = func.row_number().over(partition_by=i.customer_id, order_by=(i.occurred_at.desc(), i.id.desc())).label("rn")
        inner = (
            select(i.customer_id, i.channel, i.kind, i.direction, i.occurred_at, s.label, s.score, rn)
            .outerjoin(s, (s.tenant_id == i.tenant_id) & (s.interaction_id == i.id))
            .where(i.customer_id.in_({c for c, _ in keys}))
            .subquery()
        )
        stmt = select(inner).where(inner.c.rn <= largest).order_by(inner.c.customer_id, inner.c.rn)
        found: dict[uuid.UUID, list[Touch]] = defaultdict(list)
        for r in (await self._execute(stmt)).all():
            found[r.customer_id].append(
                Touch(channel=r.channel, kind=r.kind, direction=r.direction, occurred_at=r.occurred_at, sentiment=r.label, score=r.score)
            )
        return [found[c][:n] for c, n in keys]


def loaders(info: Info) -> InsightsLoaders:
    state = info.context.state
    found = state.get(STATE_KEY)
    if found is None:
        found = state[STATE_KEY] = InsightsLoaders(info.context)
    return found


@strawberry.type
class CustomerInsightsField:
    @strawberry.field(
        description="The customer's profile from their interactions: sentiment over the last `days` days (1 to 365), "
        "active channels and hours, last touches."
    )
    def insights(self, days: int = 30) -> CustomerInsights:
        if not 1 <= days <= MAX_DAYS:
            raise ValidationError(f"days must be 1 to {MAX_DAYS}", field="days")
        return CustomerInsights(customer_uuid=self.uuid, days=days)  # type: ignore[attr-defined]


@strawberry.type(description="An alert raised by an inbound text: a complaint keyword or a sentiment under the threshold.")
class Alert:
    customer_id: strawberry.ID
    interaction_id: strawberry.ID
    channel: str
    occurred_at: dt.datetime
    text: str = strawberry.field(description="the message (at most 2,000 characters)")
    score: float
    label: str
    reason: str = strawberry.field(description="`keyword <word>` or `sentiment <score> <= <threshold>`")
    task_id: strawberry.ID | None = strawberry.field(description="the task created for it (null for a merged-away customer)")
    assignee_id: strawberry.ID | None = strawberry.field(description="the user the task went to (the owner, or a service user)")


@strawberry.type
class InsightsSubscription:
    @strawberry.subscription(description="Alerts as they are raised (all customers the caller may see, or one).")
    async def alert_raised(self, info: Info, customer_id: strawberry.ID | None = None) -> AsyncGenerator[Alert, None]:
        async for envelope in subscribed_events(info, ALERT_TOPIC, customer_id):
            d = envelope.data
            yield Alert(
                customer_id=strawberry.ID(to_global_id("Customer", uuid.UUID(d["customer_id"]))),
                interaction_id=strawberry.ID(to_global_id("Interaction", uuid.UUID(d["interaction_id"]))),
                channel=d["channel"],
                occurred_at=dt.datetime.fromisoformat(d["occurred_at"]),
                text=d["text"],
                score=d["score"],
                label=d["label"],
                reason=d["reason"],
                task_id=strawberry.ID(to_global_id("Task", uuid.UUID(d["task_id"]))) if d["task_id"] else None,
                assignee_id=strawberry.ID(to_global_id("User", uuid.UUID(d["assignee_id"]))) if d["assignee_id"] else None,
            )


def contribution() -> Any:
    from guanxi.graphql.contrib import GraphQLContribution
    from guanxi.plugins.insights.graphql_rules import RulesMutation, RulesQuery
    from guanxi.plugins.insights.service_graphql import ServiceQuery, ServiceQueueItem

    @strawberry.type
    class InsightsQuery(RulesQuery, ServiceQuery):
        pass

    return GraphQLContribution(
        query=InsightsQuery,
        mutation=RulesMutation,
        subscription=InsightsSubscription,
        extend={"Customer": CustomerInsightsField},
        types=[
            Alert,
            ServiceQueueItem,
            CustomerInsights,
            SentimentSummary,
            SentimentDay,
            ChannelActivity,
            HourActivity,
            Touch,
            RuleTagReason,
            Interest,
        ],
    )
