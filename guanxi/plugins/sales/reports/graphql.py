"""GraphQL of the sales reports: the deal funnel and salesperson performance, each over a date
range with a breakdown, computed in SQL on the caller's session (role limits apply)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.sales.reports import customers, performance, sql

MAX_RANGE = dt.timedelta(days=3660)


@strawberry.enum(description="How a report's rows are grouped.")
class ReportBreakdown(enum.Enum):
    OWNER = "owner"
    TEAM = "team"
    SOURCE = "source"
    CHANNEL = "channel"
    PIPELINE = "pipeline"


@strawberry.type(description="One stage of the funnel.")
class FunnelStage:
    pipeline: str
    key: str
    name: str
    category: str = strawberry.field(description="open, won or lost")
    entered: int = strawberry.field(description="deals created in the range that entered this stage")
    conversion: float | None = strawberry.field(
        description="share of them that entered the next stage (the next open stage, or won after the last); null for won and lost stages"
    )
    avg_days_in_stage: float | None = strawberry.field(description="average days before the next move, over deals that left the stage")


@strawberry.type(description="The funnel of one group (the whole range when there is no breakdown).")
class FunnelGroup:
    key: str | None = strawberry.field(description="the group's value: a user id, a team, a source, a channel or a pipeline key")
    label: str | None
    stages: list[FunnelStage]
    won: int
    lost: int
    win_rate: float | None = strawberry.field(description="won / (won + lost)")


@strawberry.type(description="A salesperson's (or a team's, or a group of customers') figures over the range.")
class PerformanceRow:
    key: str | None = strawberry.field(description="the user's id, or the team, source, channel or pipeline key (null: none)")
    label: str | None
    new_leads: int
    follow_ups: int = strawberry.field(description="outbound and internal interactions (messages sent, calls, notes) on their customers")
    avg_response_minutes: float | None = strawberry.field(description="from a customer's inbound message to the next outbound one")
    responses: int
    deals_won: int
    won_amount: float
    revenue: float = strawberry.field(description="net payments received on their contracts")
    due: float = strawberry.field(description="instalments due in the range")
    collected: float = strawberry.field(description="paid on those instalments (capped at each amount)")
    collection_rate: float | None = strawberry.field(description="collected / due")


@strawberry.enum(description="Which touch of the customer gets the credit: the FIRST interaction, or the LAST inbound one before the win.")
class AttributionTouch(enum.Enum):
    FIRST = "first"
    LAST = "last"


@strawberry.type(description="Repeat purchases of a group of customers.")
class RepeatPurchaseRow:
    key: str | None
    label: str | None
    buyers: int = strawberry.field(description="customers with a purchase in the range")
    repeat_buyers: int = strawberry.field(description="of them, those with two purchases or more")
    repeat_rate: float = strawberry.field(description="repeatBuyers / buyers")
    purchases: int
    purchases_per_buyer: float = strawberry.field(description="purchase frequency: purchases / buyers")
    avg_days_between_purchases: float | None = strawberry.field(description="over repeat buyers: (last − first) ÷ (purchases − 1)")


@strawberry.type(description="How many of a cohort purchased some months after their first purchase.")
class CohortMonth:
    months_after: int
    customers: int
    rate: float | None = strawberry.field(description="customers / the cohort's size")


@strawberry.type(description="The customers whose first purchase fell in one month.")
class Cohort:
    month: str = strawberry.field(description="YYYY-MM (UTC)")
    customers: int
    retained: list[CohortMonth]


@strawberry.type(description="The cohorts of one group.")
class CohortGroup:
    key: str | None
    label: str | None
    cohorts: list[Cohort]


@strawberry.type(description="Won revenue credited to one source or channel.")
class AttributionRow:
    key: str | None = strawberry.field(description="the source or channel (null: unknown)")
    deals: int
    amount: float
    share: float | None = strawberry.field(description="amount / total")


@strawberry.type(description="Won revenue by source or channel, in the tenant's currency.")
class Attribution:
    currency: str
    total: float
    rows: list[AttributionRow]


def _range(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("from and to must carry a time zone", field="from")
    if end <= start:
        raise ValidationError("to must be after from", field="to")
    if end - start > MAX_RANGE:
        raise ValidationError("a report covers at most ten years", field="to")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _key(value: Any, by: ReportBreakdown | None) -> str | None:
    if value is None:
        return None
    if by is ReportBreakdown.OWNER:
        return to_global_id("User", value)
    return str(value)


def funnel_groups(rows: list[Any], by: ReportBreakdown | None) -> list[FunnelGroup]:
    """Shape the funnel statement's rows (one per group and stage) into groups; conversion
    relates each open stage to the next open one (or the won stage after the last)."""
    groups: dict[Any, tuple[Any, list[Any]]] = {}
    for row in rows:
        groups.setdefault(row[0], (row[1], []))[1].append(row)
    out = []
    for grp, (label, stage_rows) in groups.items():
        stages = []
        by_pipeline: dict[str, list[Any]] = {}
        for r in stage_rows:
            by_pipeline.setdefault(r[2], []).append(r)
        won = lost = 0
        for pipeline, prow in by_pipeline.items():
            opens = sorted((r for r in prow if r[6] == "open"), key=lambda r: r[5])
            won_n = sum(int(r[7]) for r in prow if r[6] == "won")
            won, lost = won + won_n, lost + sum(int(r[7]) for r in prow if r[6] == "lost")
            nexts = [int(r[7]) for r in opens[1:]] + [won_n]
            for r in sorted(prow, key=lambda r: r[5]):
                conversion = None
                if r[6] == "open":
                    n = nexts[opens.index(r)]
                    conversion = round(n / int(r[7]), 4) if int(r[7]) else None
                stages.append(
                    FunnelStage(
                        pipeline=pipeline,
                        key=r[3],
                        name=r[4],
                        category=r[6],
                        entered=int(r[7]),
                        conversion=conversion,
                        avg_days_in_stage=None if r[8] is None else round(float(r[8]) / 86400, 2),
                    )
                )
        out.append(
            FunnelGroup(
                key=_key(grp, by),
                label=label,
                stages=stages,
                won=won,
                lost=lost,
                win_rate=round(won / (won + lost), 4) if won + lost else None,
            )
        )
    return out


From = Annotated[dt.datetime, strawberry.argument(name="from", description="start of the range (inclusive)")]
To = Annotated[dt.datetime, strawberry.argument(description="end of the range (exclusive)")]


def _pg(info: Info) -> bool:
    return bool(info.context.rt.engine.dialect.name == "postgresql")


@strawberry.type
class ReportsQuery:
    @strawberry.field(
        description="The deal funnel of deals created in [from, to): per stage the deals that entered it, the conversion to the next "
        "stage and the average days in it; grouped by `by`. A salesperson sees their own customers' deals, a manager the team's."
    )
    async def sales_funnel(
        self, info: Info, from_: From, to: To, by: ReportBreakdown | None = None, pipeline: str | None = None
    ) -> list[FunnelGroup]:
        start, end = _range(from_, to)
        async with info.context.loaders.lock:
            rows = await sql.funnel(info.context.session, _pg(info), start, end, by.value if by else None, pipeline)
        return funnel_groups(rows, by)

    @strawberry.field(
        description="Salesperson performance over [from, to): new leads, follow-ups, response time to inbound messages, deals won, "
        "revenue and collection rate, per salesperson (by: OWNER, default), per team (by: TEAM), or per group of customers: their "
        "SOURCE, the CHANNEL of their first touch or their lifecycle PIPELINE. A salesperson sees their own figures, a manager the team's."
    )
    async def sales_performance(self, info: Info, from_: From, to: To, by: ReportBreakdown | None = None) -> list[PerformanceRow]:
        start, end = _range(from_, to)
        by = by or ReportBreakdown.OWNER
        async with info.context.loaders.lock:
            rows = await performance.performance(info.context.session, _pg(info), start, end, by.value)
        return [
            PerformanceRow(
                key=_key(r[0], by),
                label=r[1],
                new_leads=int(r[2]),
                follow_ups=int(r[3]),
                avg_response_minutes=None if r[4] is None else round(float(r[4]) / 60, 2),
                responses=int(r[5]),
                deals_won=int(r[6]),
                won_amount=round(float(r[7]), 2),
                revenue=round(float(r[8]), 2),
                due=round(float(r[9]), 2),
                collected=round(float(r[10]), 2),
                collection_rate=round(float(r[10]) / float(r[9]), 4) if float(r[9]) else None,
            )
            for r in rows
        ]

    @strawberry.field(
        description="Repeat purchase rate and purchase frequency over purchases (purchase and payment interactions, refunds left out) "
        "in [from, to), per group of customers."
    )
    async def repeat_purchase(self, info: Info, from_: From, to: To, by: ReportBreakdown | None = None) -> list[RepeatPurchaseRow]:
        start, end = _range(from_, to)
        async with info.context.loaders.lock:
            rows = await customers.repeat_purchase(info.context.session, _pg(info), start, end, by.value if by else None)
        return [
            RepeatPurchaseRow(
                key=_key(r[0], by),
                label=r[1],
                buyers=int(r[2]),
                repeat_buyers=int(r[3]),
                repeat_rate=round(int(r[3]) / int(r[2]), 4),
                purchases=int(r[4]),
                purchases_per_buyer=round(int(r[4]) / int(r[2]), 4),
                avg_days_between_purchases=None if r[5] is None else round(float(r[5]) / 86400, 2),
            )
            for r in rows
        ]

    @strawberry.field(
        description="Cohort retention: customers by the (UTC) month of their first purchase, for first purchases in [from, to), and "
        "per later month the share of them that purchased again."
    )
    async def cohort_retention(self, info: Info, from_: From, to: To, by: ReportBreakdown | None = None) -> list[CohortGroup]:
        start, end = _range(from_, to)
        async with info.context.loaders.lock:
            rows = await customers.cohorts(info.context.session, _pg(info), start, end, by.value if by else None)
        groups: dict[Any, tuple[Any, dict[int, dict[int, int]]]] = {}
        for grp, label, cohort, offset, n in rows:
            groups.setdefault(grp, (label, {}))[1].setdefault(int(cohort), {})[int(offset)] = int(n)
        out = []
        for grp, (label, by_cohort) in groups.items():
            items = []
            for cohort, months in sorted(by_cohort.items()):
                size = months.get(0, 0)
                items.append(
                    Cohort(
                        month=f"{cohort // 12:04d}-{cohort % 12 + 1:02d}",
                        customers=size,
                        retained=[
                            CohortMonth(months_after=k, customers=n, rate=round(n / size, 4) if size else None)
                            for k, n in sorted(months.items())
                            if k > 0
                        ],
                    )
                )
            out.append(CohortGroup(key=_key(grp, by), label=label, cohorts=items))
        return out

    @strawberry.field(
        description="Won revenue (deals in the tenant's currency won in [from, to)) attributed to the customer's source (by: SOURCE, "
        "e.g. referral for referral posters) or to the channel (by: CHANNEL, default) of the first touch or the last touch before the win."
    )
    async def won_revenue_attribution(
        self, info: Info, from_: From, to: To, by: ReportBreakdown | None = None, touch: AttributionTouch = AttributionTouch.FIRST
    ) -> Attribution:
        from guanxi.plugins.sales.deals.service import tenant_currency

        start, end = _range(from_, to)
        if by not in (None, ReportBreakdown.SOURCE, ReportBreakdown.CHANNEL):
            raise ValidationError("wonRevenueAttribution is broken down by SOURCE or CHANNEL", field="by")
        group = "source" if by is ReportBreakdown.SOURCE else "channel"
        async with info.context.loaders.lock:
            session = info.context.session
            currency = await tenant_currency(session)
            rows = await customers.attribution(session, _pg(info), start, end, group, touch.value, currency)
        total = sum(float(a) for _, _, a in rows)
        return Attribution(
            currency=currency,
            total=round(total, 2),
            rows=[
                AttributionRow(
                    key=None if k is None else str(k),
                    deals=int(n),
                    amount=round(float(a), 2),
                    share=round(float(a) / total, 4) if total else None,
                )
                for k, n, a in rows
            ],
        )
