"""The content report: views, unique viewers, average read time and forwards, per material or
per salesperson (the sharer). Two statements whatever the number of rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import distinct, func, select

from guanxi.plugins.materials.models import MaterialShare, MaterialView


@dataclass(frozen=True)
class ReportRow:
    key: uuid.UUID
    views: int
    unique_viewers: int
    average_read_ms: int
    previews: int
    forwards: int


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
    rows = {k: ReportRow(k, int(v), int(u), round(float(a)), int(p), int(forwards.get(k, 0))) for k, v, u, a, p in views}
    for k, n in forwards.items():
        rows.setdefault(k, ReportRow(k, 0, 0, 0, 0, int(n)))
    return sorted(rows.values(), key=lambda r: (-r.views, -r.forwards, str(r.key)))[:limit]
