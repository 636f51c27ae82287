"""The content report: views, unique viewers, average read time and forwards, per material or
per salesperson (the sharer), and what the content brought: **leads** (viewers who became
customers after their first view of it: anonymous visitors identified later, friends reached by
a forward) and **revenue** (money received from its viewers after their first view of it: the
``amount`` of their ``purchase`` and ``payment`` interactions, refunds negative, in the tenant's
currency). A viewer of several materials counts for each, so revenue is attributed per row, not
split. Four statements whatever the number of rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Float, distinct, func, literal, select

from guanxi.core.domain.models import Customer, Interaction
from guanxi.plugins.materials.models import MaterialShare, MaterialView

#: interaction kinds whose ``payload.amount`` is money received (the sales plugin's payments,
#: an import's or a channel's purchases)
REVENUE_KINDS = ("purchase", "payment")


@dataclass(frozen=True)
class ReportRow:
    key: uuid.UUID
    views: int
    unique_viewers: int
    average_read_ms: int
    previews: int
    forwards: int
    leads: int = 0
    revenue: float = 0.0


async def report(session: Any, by: Literal["material", "sharer"], limit: int) -> list[ReportRow]:
    """Rows with at least one view, preview or forward, most viewed first. A unique viewer is a
    customer, or an anonymous visitor (a browser) until identified."""
    view_col = MaterialView.material_id if by == "material" else MaterialView.sharer_id
    is_view = MaterialView.kind == "view"
    views = (
        await session.execute(
            select(
                view_col,
                func.count().filter(is_view),
                func.count(distinct(func.coalesce(MaterialView.customer_id, MaterialView.visitor_id))).filter(is_view),
                func.coalesce(func.avg(MaterialView.read_ms).filter(is_view), 0),
                func.count().filter(MaterialView.kind == "preview"),
            ).group_by(view_col)
        )
    ).all()
    share_col = MaterialShare.material_id if by == "material" else MaterialShare.sharer_id
    forwards = dict(
        (await session.execute(select(share_col, func.count()).where(MaterialShare.parent_id.is_not(None)).group_by(share_col))).all()
    )
    # each known viewer's first view of the row's material (or of the salesperson's links)
    first = (
        select(view_col.label("key"), MaterialView.customer_id.label("customer_id"), func.min(MaterialView.opened_at).label("first_at"))
        .where(is_view, MaterialView.customer_id.is_not(None))
        .group_by(view_col, MaterialView.customer_id)
        .subquery("first_views")
    )
    leads = dict(
        (
            await session.execute(
                select(first.c.key, func.count())
                .join(Customer, Customer.id == first.c.customer_id)
                .where(Customer.created_at >= first.c.first_at)
                .group_by(first.c.key)
            )
        ).all()
    )
    amount = func.coalesce(Interaction.payload["amount"].as_float(), literal(0.0, Float))
    revenue = dict(
        (
            await session.execute(
                select(first.c.key, func.sum(amount))
                .join(Interaction, Interaction.customer_id == first.c.customer_id)
                .where(Interaction.kind.in_(REVENUE_KINDS), Interaction.occurred_at >= first.c.first_at)
                .group_by(first.c.key)
            )
        ).all()
    )
    rows = {
        k: ReportRow(k, int(v), int(u), round(float(a)), int(p), int(forwards.get(k, 0)), int(leads.get(k, 0)), float(revenue.get(k) or 0))
        for k, v, u, a, p in views
    }
    for k, n in forwards.items():
        rows.setdefault(k, ReportRow(k, 0, 0, 0, 0, int(n)))
    return sorted(rows.values(), key=lambda r: (-r.views, -r.forwards, str(r.key)))[:limit]
