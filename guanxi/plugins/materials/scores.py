"""Engagement: a score component from a customer's material views (one query per batch)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from guanxi.core.domain.contracts import ScoreComponent
from guanxi.plugins.materials.models import MaterialView
from guanxi.plugins.materials.settings import MaterialsSettings

COMPONENT = "materials.views"


async def components(session: Any, customer_ids: list[uuid.UUID], settings: MaterialsSettings) -> list[ScoreComponent]:
    """``views x view_weight + read minutes x minute_weight`` for every customer of the batch
    with at least one view (previews do not count)."""
    rows = (
        await session.execute(
            select(MaterialView.customer_id, func.count(), func.coalesce(func.sum(MaterialView.read_ms), 0))
            .where(MaterialView.customer_id.in_(customer_ids), MaterialView.kind == "view")
            .group_by(MaterialView.customer_id)
        )
    ).all()
    out = []
    for customer_id, views, read_ms in rows:
        minutes = int(read_ms) // 60000
        value = views * settings.view_weight + minutes * settings.minute_weight
        reasons = [f"{views} material views x {settings.view_weight:g}"]
        if minutes:
            reasons.append(f"{minutes} minutes read x {settings.minute_weight:g}")
        out.append(ScoreComponent(customer_id=customer_id, name=COMPONENT, value=value, reasons=reasons))
    return out
