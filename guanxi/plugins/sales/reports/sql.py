"""The reports' SQL: each report is one grouped statement over the sales and core tables, run on
the caller's session so the tenant and the caller's ownership rule apply to every table in it
(a salesperson counts only their own customers' rows, a manager the team's).

Breakdowns (``by``): ``owner`` (the deal's owner), ``team`` (that owner's team), ``source`` (the
customer's source), ``channel`` (the channel of the customer's first interaction: first touch),
``pipeline`` (the deal pipeline).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import Float, and_, case, cast, func, literal, select
from sqlalchemy.sql import ColumnElement

from guanxi.core.domain.models import Customer, Interaction, User
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals.models import (
    SalesContract,
    SalesDeal,
    SalesDealMove,
    SalesDealPipeline,
    SalesDealStage,
    SalesInstalment,
    SalesPayment,
)

BREAKDOWNS: Final = ("owner", "team", "source", "channel", "pipeline")
#: interactions that are a salesperson's follow-up: sent to the customer, or staff-only (a call, a note)
FOLLOW_UP_DIRECTIONS: Final = ("out", "internal")


def epoch(pg: bool, col: Any) -> ColumnElement[Any]:
    """A timestamp as seconds since 1970 (UTC), a float, on either database."""
    if pg:
        return cast(func.extract("epoch", col), Float)
    return (func.julianday(col) - 2440587.5) * 86400.0


def first_channel(customer_id: Any) -> Any:
    """The channel of the customer's first interaction (first touch), a scalar subquery."""
    return (
        select(Interaction.channel)
        .where(Interaction.tenant_id == Customer.tenant_id, Interaction.customer_id == customer_id)
        .order_by(Interaction.occurred_at, Interaction.id)
        .limit(1)
        .correlate_except(Interaction)
        .scalar_subquery()
    )


def _group(by: str | None) -> tuple[Any, Any]:
    """(group key, group label) of a deal row, for a breakdown."""
    if by is None:
        return literal("all"), literal("all")
    if by == "owner":
        return SalesDeal.owner_id, User.name
    if by == "team":
        return User.team, User.team
    if by == "source":
        return Customer.source, Customer.source
    if by == "channel":
        ch = first_channel(SalesDeal.customer_id)
        return ch, ch
    if by == "pipeline":
        return SalesDealPipeline.key, SalesDealPipeline.name
    raise ValueError(by)


def _deal_joins(stmt: Any) -> Any:
    return (
        stmt.join(Customer, and_(Customer.tenant_id == SalesDeal.tenant_id, Customer.id == SalesDeal.customer_id))
        .outerjoin(User, and_(User.tenant_id == SalesDeal.tenant_id, User.id == SalesDeal.owner_id))
        .join(SalesDealPipeline, and_(SalesDealPipeline.tenant_id == SalesDeal.tenant_id, SalesDealPipeline.id == SalesDeal.pipeline_id))
    )


async def funnel(
    session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, by: str | None, pipeline_key: str | None
) -> list[Any]:
    """The deal funnel of deals created in [start, end): per group and stage, the deals that
    entered the stage, and the average days they stayed in it before their next move (deals still
    in it do not count toward the average). One statement (a window function finds each move's
    next move). Rows of (group, label, pipeline key, stage key, stage name, position, category,
    entered, avg seconds in stage, left)."""
    nxt = func.lead(SalesDealMove.at).over(partition_by=SalesDealMove.deal_id, order_by=(SalesDealMove.at, SalesDealMove.id))
    moves = select(SalesDealMove.deal_id, SalesDealMove.to_stage_id, SalesDealMove.at, nxt.label("left_at")).subquery("moves")
    key, label = _group(by)
    stay = epoch(pg, moves.c.left_at) - epoch(pg, moves.c.at)
    stmt = (
        select(
            key.label("grp"),
            label.label("label"),
            SalesDealPipeline.key,
            SalesDealStage.key,
            SalesDealStage.name,
            SalesDealStage.position,
            SalesDealStage.category,
            func.count(func.distinct(SalesDeal.id)),
            func.avg(case((moves.c.left_at.is_not(None), stay))),
            func.count(moves.c.left_at),
        )
        .select_from(SalesDeal)
        .join(moves, moves.c.deal_id == SalesDeal.id)
        .join(SalesDealStage, and_(SalesDealStage.tenant_id == SalesDeal.tenant_id, SalesDealStage.id == moves.c.to_stage_id))
    )
    stmt = _deal_joins(stmt).where(SalesDeal.created_at >= start, SalesDeal.created_at < end)
    if pipeline_key is not None:
        stmt = stmt.where(SalesDealPipeline.key == pipeline_key)
    stmt = stmt.group_by(
        key, label, SalesDealPipeline.key, SalesDealStage.key, SalesDealStage.name, SalesDealStage.position, SalesDealStage.category
    )
    stmt = stmt.order_by(key, SalesDealPipeline.key, SalesDealStage.position)
    return list((await session.execute(stmt)).all())


async def performance(session: TenantSession, pg: bool, start: dt.datetime, end: dt.datetime, team_only: bool) -> list[Any]:
    stmt = performance_statement(session.owners, pg, start, end, team_only)
    return list((await session.execute(stmt)).all())


def performance_statement(owners: Any, pg: bool, start: dt.datetime, end: dt.datetime, team_only: bool) -> Any:
    """Per salesperson (active users of role sales or manager the caller may see, or per team):
    new leads (their customers created in the range), follow-ups (outbound and internal
    interactions in the range on their customers), average response time in seconds (from a
    customer's inbound message in the range to the next outbound message to that customer), deals
    won in the range and their amount, revenue (net payments received in the range on their
    contracts), and the collection rate of instalments due in the range (paid, capped at the
    amount, over the amount due). One statement of grouped subqueries. Rows of (group, label,
    new leads, follow-ups, avg response seconds, responses, deals won, won amount, revenue, due,
    collected)."""
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
    # each message's next outbound message to the same customer: one window over the messages
    # (sorted once), not a lookup per inbound message
    answered = func.min(case((Interaction.direction == "out", Interaction.occurred_at))).over(
        partition_by=Interaction.customer_id, order_by=(Interaction.occurred_at, Interaction.id), rows=(0, None)
    )
    messages = (
        select(Interaction.customer_id, Interaction.kind, Interaction.occurred_at.label("at"), answered.label("answered_at"))
        .where(Interaction.kind.in_(("message_in", "message_out")), Interaction.occurred_at >= start)
        .subquery("messages")
    )
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
    collected = case((SalesInstalment.paid > SalesInstalment.amount, SalesInstalment.amount), else_=SalesInstalment.paid)
    collection = (
        select(SalesContract.owner_id.label("uid"), func.sum(SalesInstalment.amount).label("due"), func.sum(collected).label("collected"))
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
