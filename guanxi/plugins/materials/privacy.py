"""Export and erasure of what the plugin holds on a person (PIPL / GDPR): their views of
materials and the visitors (browsers) attached to them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update

from guanxi.plugins.materials.models import Material, MaterialShare, MaterialView, MaterialVisitor


async def export(session: Any, customer_id: uuid.UUID) -> dict[str, Any] | None:
    views = (
        await session.execute(
            select(MaterialView, Material.title)
            .join(Material, Material.id == MaterialView.material_id)
            .where(MaterialView.customer_id == customer_id)
            .order_by(MaterialView.opened_at)
        )
    ).all()
    visitors = (await session.execute(select(MaterialVisitor).where(MaterialVisitor.customer_id == customer_id))).scalars().all()
    if not views and not visitors:
        return None
    return {
        "views": [{"material": t, "kind": v.kind, "read_ms": v.read_ms, "opened_at": v.opened_at.isoformat()} for v, t in views],
        "visitors": [{"id": str(v.id), "user_agent": v.user_agent} for v in visitors],
    }


async def erase(session: Any, customer_id: uuid.UUID) -> dict[str, int] | None:
    """Delete the person's views and visitors; the links shared with them lose their recipient.
    Content reports then count the remaining views only."""
    views = await session.execute(delete(MaterialView).where(MaterialView.customer_id == customer_id))
    visitor_ids = (await session.execute(select(MaterialVisitor.id).where(MaterialVisitor.customer_id == customer_id))).scalars().all()
    if visitor_ids:
        await session.execute(delete(MaterialView).where(MaterialView.visitor_id.in_(visitor_ids)))
        await session.execute(delete(MaterialVisitor).where(MaterialVisitor.id.in_(visitor_ids)))
    shares = await session.execute(update(MaterialShare).where(MaterialShare.customer_id == customer_id).values(customer_id=None))
    return {"views": int(views.rowcount or 0), "visitors": len(visitor_ids), "shares": int(shares.rowcount or 0)}
