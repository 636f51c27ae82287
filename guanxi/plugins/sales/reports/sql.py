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
    SalesDeal,
    SalesDealMove,
    SalesDealPipeline,
    SalesDealStage,
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
    in_range = select(SalesDeal.id).where(SalesDeal.created_at >= start, SalesDeal.created_at < end)
    moves = (
        select(SalesDealMove.deal_id, SalesDealMove.to_stage_id, SalesDealMove.at, nxt.label("left_at"))
        .where(SalesDealMove.deal_id.in_(in_range))  # the window sorts only the moves of the deals in the range
        .subquery("moves")
    )
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
