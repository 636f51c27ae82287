"""Reports over customers' purchases and won revenue, each one SQL statement on the caller's
session: repeat purchase rate and purchase frequency, cohort retention by month of first
purchase, and source / channel attribution of won revenue (first touch and last touch).

A **purchase** is money received, as scoring counts it: an interaction of kind ``purchase`` or
``payment`` whose ``amount`` is not negative (a refund is no purchase). Months are UTC months.
Customer-level breakdowns: ``owner`` (the customer's owner), ``team`` (that owner's team),
``source``, ``channel`` (first touch) and ``pipeline`` (the customer's lifecycle pipeline).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, null, select
from sqlalchemy.sql import ColumnElement

from guanxi.core.domain.models import Customer, Interaction, Pipeline, Stage, User
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals.models import SalesDeal
from guanxi.plugins.sales.reports.sql import epoch, first_channel

PURCHASE_KINDS: Final = ("purchase", "payment")


def json_number(pg: bool, element: Any) -> ColumnElement[Any]:
    """A JSON value as a float when it holds a plain decimal number, else NULL (both databases)."""
    text_value = func.trim(element.as_string())
    if pg:
        plain: ColumnElement[Any] = text_value.op("~")(r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)$")
    else:
        plain = and_(
            text_value.op("GLOB")("*[0-9]*"),
            text_value.op("NOT GLOB")("*[^0-9.-]*"),
            text_value.op("NOT GLOB")("?*-*"),
            text_value.op("NOT GLOB")("*.*.*"),
        )
    return case((plain, cast(text_value, Float)), else_=null())


def month_index(pg: bool, col: Any) -> ColumnElement[Any]:
    """year × 12 + month − 1 of a UTC timestamp: consecutive months are consecutive integers."""
    if pg:
        utc = func.timezone("UTC", col)
        return cast(func.extract("year", utc), Integer) * 12 + cast(func.extract("month", utc), Integer) - 1
    return cast(func.strftime("%Y", col), Integer) * 12 + cast(func.strftime("%m", col), Integer) - 1


def purchases(pg: bool) -> Any:
    """Every purchase: (customer_id, at)."""
    amount = func.coalesce(json_number(pg, Interaction.payload["amount"]), literal(0.0, Float))
    return (
        select(Interaction.customer_id, Interaction.occurred_at.label("at"))
        .where(Interaction.kind.in_(PURCHASE_KINDS), amount >= 0)
        .subquery("purchases")
    )


def customer_group(by: str | None) -> tuple[Any, Any]:
    """(group key, label) of a customer row joined by :func:`customer_joins`."""
    if by is None:
        return literal("all"), literal("all")
    return {
        "owner": (Customer.owner_id, User.name),
        "team": (User.team, User.team),
        "source": (Customer.source, Customer.source),
        "channel": (first_channel(Customer.id), first_channel(Customer.id)),
        "pipeline": (Pipeline.key, Pipeline.name),
    }[by]


def customer_joins(stmt: Any, by: str | None) -> Any:
    if by in ("owner", "team"):
        stmt = stmt.outerjoin(User, and_(User.tenant_id == Customer.tenant_id, User.id == Customer.owner_id))
    if by == "pipeline":
        stmt = stmt.outerjoin(Stage, and_(Stage.tenant_id == Customer.tenant_id, Stage.id == Customer.stage_id)).outerjoin(
            Pipeline, and_(Pipeline.tenant_id == Stage.tenant_id, Pipeline.id == Stage.pipeline_id)
        )
    return stmt


async def repeat_purchase(session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, by: str | None) -> list[Any]:
    """Per group, over purchases in [start, end): buyers, repeat buyers (two purchases or more),
    purchases, and the average days between a repeat buyer's purchases ((last − first) ÷ (n − 1)).
    Rows of (group, label, buyers, repeat buyers, purchases, avg seconds between purchases)."""
    p = purchases(pg)
    per = (
        select(p.c.customer_id, func.count().label("n"), func.min(p.c.at).label("first_at"), func.max(p.c.at).label("last_at"))
        .where(p.c.at >= start, p.c.at < end)
        .group_by(p.c.customer_id)
        .subquery("per_customer")
    )
    key, label = customer_group(by)
    gap = (epoch(pg, per.c.last_at) - epoch(pg, per.c.first_at)) / (per.c.n - 1)
    stmt = select(
        key.label("grp"),
        label.label("label"),
        func.count(),
        func.sum(case((per.c.n >= 2, 1), else_=0)),
        func.sum(per.c.n),
        func.avg(case((per.c.n >= 2, gap))),
    ).select_from(per.join(Customer, Customer.id == per.c.customer_id))
    stmt = customer_joins(stmt, by).group_by(key, label).order_by(key)
    return list((await session.execute(stmt)).all())


async def cohorts(session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, by: str | None) -> list[Any]:
    """Customers by the month of their first purchase ever (cohorts whose first purchase falls in
    [start, end)) and, per later month, how many of them purchased in it. Rows of (group, label,
    cohort month index, months after, customers)."""
    p = purchases(pg)
    # each purchase with its customer's first purchase beside it: one window over the purchases
    # (read once), not a grouped subquery joined back to them (PostgreSQL chose a nested loop)
    first_at = func.min(p.c.at).over(partition_by=p.c.customer_id)
    first = select(p.c.customer_id, p.c.at, first_at.label("first_at")).subquery("first_purchase")
    cohort = month_index(pg, first.c.first_at)
    active = (
        select(first.c.customer_id, cohort.label("cohort"), (month_index(pg, first.c.at) - cohort).label("offset"))
        .where(first.c.first_at >= start, first.c.first_at < end)
        .distinct()
        .subquery("active")
    )
    key, label = customer_group(by)
    stmt = select(key.label("grp"), label.label("label"), active.c.cohort, active.c.offset, func.count()).select_from(
        active.join(Customer, Customer.id == active.c.customer_id)
    )
    stmt = customer_joins(stmt, by).group_by(key, label, active.c.cohort, active.c.offset).order_by(key, active.c.cohort, active.c.offset)
    return list((await session.execute(stmt)).all())


def last_touch_channel(pg: bool) -> Any:
    """The channel of the customer's last inbound interaction at or before the deal closed."""
    return (
        select(Interaction.channel)
        .where(
            Interaction.tenant_id == SalesDeal.tenant_id,
            Interaction.customer_id == SalesDeal.customer_id,
            Interaction.direction == "in",
            Interaction.occurred_at <= SalesDeal.closed_at,
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(1)
        .correlate_except(Interaction)
        .scalar_subquery()
    )


async def attribution(
    session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, by: str, touch: str, currency: str
) -> list[Any]:
    """Won revenue (deals in ``currency`` won in [start, end)) by the customer's ``source`` or by
    the ``channel`` of the first touch (the customer's first interaction) or the last touch (its
    last inbound interaction before the win). Rows of (group, deals, amount)."""
    if by == "source":
        key: Any = Customer.source
    elif touch == "first":
        key = first_channel(SalesDeal.customer_id)
    else:
        key = last_touch_channel(pg)
    stmt = (
        select(key.label("grp"), func.count(), func.sum(SalesDeal.amount))
        .select_from(SalesDeal)
        .join(Customer, and_(Customer.tenant_id == SalesDeal.tenant_id, Customer.id == SalesDeal.customer_id))
        .where(SalesDeal.status == "won", SalesDeal.currency == currency, SalesDeal.closed_at >= start, SalesDeal.closed_at < end)
        .group_by(key)
        .order_by(func.sum(SalesDeal.amount).desc(), key)
    )
    return list((await session.execute(stmt)).all())
