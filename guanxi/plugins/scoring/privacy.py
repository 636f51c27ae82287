"""PIPL / GDPR: what the scoring plugin holds on one person, and erasing it.

Scores are numbers computed from the timeline; the only free text is the reasons other plugins
give for their components, which could quote a person. Erasure keeps every number (totals,
parts, history: aggregates and reports stay right) and blanks those reasons."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import String, cast, select, update

from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring.models import ScoringHistory, ScoringPart, ScoringScore


async def export_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    score = await session.get(ScoringScore, (session.tenant_id, customer_id))
    if score is None:
        return None
    parts = (
        await session.execute(
            select(ScoringPart).where(ScoringPart.customer_id == customer_id).order_by(ScoringPart.component, ScoringPart.item)
        )
    ).scalars()
    history = (
        await session.execute(select(ScoringHistory).where(ScoringHistory.customer_id == customer_id).order_by(ScoringHistory.at))
    ).scalars()
    return {
        "score": {"total": score.total, "computed_at": score.computed_at.isoformat()},
        "parts": [
            {
                "component": p.component,
                "item": p.item,
                "count": p.count,
                "skipped": p.skipped,
                "value": p.value,
                "measure": p.measure,
                "reasons": p.reasons,
            }
            for p in parts
        ],
        "history": [{"at": h.at.isoformat(), "total": h.total, "previous": h.previous, "cause": h.cause} for h in history],
    }


async def erase_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    parts = await session.execute(
        update(ScoringPart)
        .where(ScoringPart.customer_id == customer_id, ScoringPart.item == "", cast(ScoringPart.reasons, String) != "[]")
        .values(reasons=[])
        .execution_options(synchronize_session=False)
    )
    return {"score_reasons": int(getattr(parts, "rowcount", 0) or 0)}
