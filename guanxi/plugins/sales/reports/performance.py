"""Salesperson performance in SQL: per salesperson or team (the owner of each figure's row), or per
customer-level group (the customer's source, first-touch channel or lifecycle pipeline). One
statement either way, run on the caller's session (a salesperson counts only their own customers'
rows, a manager the team's).

The figures: new leads (customers created in the range), follow-ups (outbound and internal
interactions in the range), the response time to inbound messages (from a customer's inbound
message in the range to the next outbound message to that customer), deals won in the range and
their amount, revenue (net payments received in the range) and the collection rate of
instalments due in the range (paid, capped at the amount, over the amount due).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import and_, case, func, literal, select, union_all

from guanxi.core.domain.models import Customer, Interaction, User
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals.models import SalesContract, SalesDeal, SalesInstalment, SalesPayment
from guanxi.plugins.sales.reports.customers import customer_group, customer_joins
from guanxi.plugins.sales.reports.sql import FOLLOW_UP_DIRECTIONS, epoch

#: the breakdowns keyed by the row's owner (a user, or that user's team)
BY_OWNER: Final = ("owner", "team")
#: the breakdowns keyed by the customer each figure's row belongs to
BY_CUSTOMER: Final = ("source", "channel", "pipeline")


async def performance(session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, by: str | None) -> list[Any]:
    """Rows of (group, label, new leads, follow-ups, avg response seconds, responses, deals won,
    won amount, revenue, due, collected). ``by``: owner (default), team, source, channel or
    pipeline."""
    by = by or "owner"
    by_owner = by in BY_OWNER
    stmt = owner_statement(session.owners, pg, start, end, by == "team") if by_owner else customer_statement(pg, start, end, by)
    return list((await session.execute(stmt)).all())


def _messages(start: dt.datetime) -> Any:
    """Messages from ``start`` on, each with the time of the next outbound message to the same
    customer: one window over the messages (sorted once), not a lookup per inbound message."""
    answered = func.min(case((Interaction.direction == "out", Interaction.occurred_at))).over(
        partition_by=Interaction.customer_id, order_by=(Interaction.occurred_at, Interaction.id), rows=(0, None)
    )
    return (
        select(Interaction.customer_id, Interaction.kind, Interaction.occurred_at.label("at"), answered.label("answered_at"))
        .where(Interaction.kind.in_(("message_in", "message_out")), Interaction.occurred_at >= start)
        .subquery("messages")
    )


def _collected() -> Any:
    return case((SalesInstalment.paid > SalesInstalment.amount, SalesInstalment.amount), else_=SalesInstalment.paid)


def owner_statement(owners: Any, pg: bool, start: dt.datetime, end: dt.datetime, team_only: bool) -> Any:
    """Per salesperson (active users of role sales or manager the caller may see) or per team:
    leads and follow-ups by the customer's owner, deals by the deal's owner, revenue and
    collection by the contract's owner. Every salesperson gets a row, with zeros if need be."""
    leads = (
        select(Customer.owner_id.label("uid"), func.count().label("n"))
        .where(Customer.created_at >= start, Customer.created_at < end, Customer.merged_into_id.is_(None))
        .group_by(Customer.owner_id)
        .subquery("leads")
    )
    follow = (
        select(Customer.owner_id.label("uid"), func.count().label("n"))
        .select_from(Interaction)
        .join(Customer, and_(Customer.tenant_id == Interaction.tenant_id, Customer.id == Interaction.customer_id))
        .where(Interaction.direction.in_(FOLLOW_UP_DIRECTIONS), Interaction.occurred_at >= start, Interaction.occurred_at < end)
        .group_by(Customer.owner_id)
        .subquery("follow")
    )
    messages = _messages(start)
    inbound = (
        select(Customer.owner_id.label("uid"), messages.c.at, messages.c.answered_at)
        .select_from(messages)
        .join(Customer, Customer.id == messages.c.customer_id)
        .where(messages.c.kind == "message_in", messages.c.at < end)
        .subquery("inbound")
    )
    response = (
        select(
            inbound.c.uid,
            func.avg(epoch(pg, inbound.c.answered_at) - epoch(pg, inbound.c.at)).label("avg_s"),
            func.count(inbound.c.answered_at).label("n"),
        )
        .group_by(inbound.c.uid)
        .subquery("response")
    )
    won = (
        select(SalesDeal.owner_id.label("uid"), func.count().label("n"), func.sum(SalesDeal.amount).label("amount"))
        .where(SalesDeal.status == "won", SalesDeal.closed_at >= start, SalesDeal.closed_at < end)
        .group_by(SalesDeal.owner_id)
        .subquery("won")
    )
    revenue = (
        select(SalesContract.owner_id.label("uid"), func.sum(SalesPayment.amount).label("amount"))
        .select_from(SalesPayment)
        .join(SalesContract, and_(SalesContract.tenant_id == SalesPayment.tenant_id, SalesContract.id == SalesPayment.contract_id))
        .where(SalesPayment.received_at >= start, SalesPayment.received_at < end)
        .group_by(SalesContract.owner_id)
        .subquery("revenue")
    )
    due, collected = func.sum(SalesInstalment.amount).label("due"), func.sum(_collected()).label("collected")
    collection = (
        select(SalesContract.owner_id.label("uid"), due, collected)
        .select_from(SalesInstalment)
        .join(SalesContract, and_(SalesContract.tenant_id == SalesInstalment.tenant_id, SalesContract.id == SalesInstalment.contract_id))
        .where(SalesInstalment.due_on >= start.date(), SalesInstalment.due_on < end.date())
        .group_by(SalesContract.owner_id)
        .subquery("collection")
    )
    grp = User.team if team_only else User.id
    label = User.team if team_only else User.name
    zero = literal(0)
    stmt = (
        select(
            grp.label("grp"),
            label.label("label"),
            func.sum(func.coalesce(leads.c.n, zero)),
            func.sum(func.coalesce(follow.c.n, zero)),
            func.sum(response.c.avg_s * response.c.n) / func.nullif(func.sum(response.c.n), 0),
            func.sum(func.coalesce(response.c.n, zero)),
            func.sum(func.coalesce(won.c.n, zero)),
            func.sum(func.coalesce(won.c.amount, zero)),
            func.sum(func.coalesce(revenue.c.amount, zero)),
            func.sum(func.coalesce(collection.c.due, zero)),
            func.sum(func.coalesce(collection.c.collected, zero)),
        )
        .select_from(User)
        .outerjoin(leads, leads.c.uid == User.id)
        .outerjoin(follow, follow.c.uid == User.id)
        .outerjoin(response, response.c.uid == User.id)
        .outerjoin(won, won.c.uid == User.id)
        .outerjoin(revenue, revenue.c.uid == User.id)
        .outerjoin(collection, collection.c.uid == User.id)
        .where(User.active.is_(True), User.role.in_(("sales", "manager")))
    )
    if owners is not None:
        stmt = stmt.where(User.id.in_(owners))
    if team_only:
        stmt = stmt.where(User.team.is_not(None))
    return stmt.group_by(grp, label).order_by(label, grp)


def customer_statement(pg: bool, start: dt.datetime, end: dt.datetime, by: str) -> Any:
    """Per group of customers (``by``: source, channel or pipeline): every figure's rows summed
    per customer (one UNION ALL, a column per figure), then per group of those customers. Only
    groups with some figure get a row."""
    zero = literal(0)

    def row(customer_id: Any, **figures: Any) -> list[Any]:
        names = ("leads", "follow", "response_s", "responses", "won", "won_amount", "revenue", "due", "collected")
        return [customer_id.label("customer_id"), *(figures.get(n, zero).label(n) for n in names)]

    leads = select(*row(Customer.id, leads=literal(1))).where(
        Customer.created_at >= start, Customer.created_at < end, Customer.merged_into_id.is_(None)
    )
    follow = (
        select(*row(Interaction.customer_id, follow=func.count()))
        .where(Interaction.direction.in_(FOLLOW_UP_DIRECTIONS), Interaction.occurred_at >= start, Interaction.occurred_at < end)
        .group_by(Interaction.customer_id)
    )
    messages = _messages(start)
    gap = epoch(pg, messages.c.answered_at) - epoch(pg, messages.c.at)
    response = (
        select(*row(messages.c.customer_id, response_s=func.sum(gap), responses=func.count(messages.c.answered_at)))
        .where(messages.c.kind == "message_in", messages.c.at < end)
        .group_by(messages.c.customer_id)
    )
    won = (
        select(*row(SalesDeal.customer_id, won=func.count(), won_amount=func.sum(SalesDeal.amount)))
        .where(SalesDeal.status == "won", SalesDeal.closed_at >= start, SalesDeal.closed_at < end)
        .group_by(SalesDeal.customer_id)
    )
    revenue = (
        select(*row(SalesPayment.customer_id, revenue=func.sum(SalesPayment.amount)))
        .where(SalesPayment.received_at >= start, SalesPayment.received_at < end)
        .group_by(SalesPayment.customer_id)
    )
    collection = (
        select(*row(SalesInstalment.customer_id, due=func.sum(SalesInstalment.amount), collected=func.sum(_collected())))
        .where(SalesInstalment.due_on >= start.date(), SalesInstalment.due_on < end.date())
        .group_by(SalesInstalment.customer_id)
    )
    figures = union_all(leads, follow, response, won, revenue, collection).subquery("figures")
    per = (
        select(figures.c.customer_id, *(func.sum(c).label(c.name) for c in list(figures.c)[1:]))
        .group_by(figures.c.customer_id)
        .subquery("per_customer")
    )
    key, label = customer_group(by)
    stmt = select(
        key.label("grp"),
        label.label("label"),
        func.sum(per.c.leads),
        func.sum(per.c.follow),
        func.sum(per.c.response_s) / func.nullif(func.sum(per.c.responses), 0),
        func.sum(per.c.responses),
        func.sum(per.c.won),
        func.sum(per.c.won_amount),
        func.sum(per.c.revenue),
        func.sum(per.c.due),
        func.sum(per.c.collected),
    ).select_from(per.join(Customer, Customer.id == per.c.customer_id))
    return customer_joins(stmt, by).group_by(key, label).order_by(label, key)
