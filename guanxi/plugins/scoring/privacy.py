"""PIPL / GDPR: what the scoring plugin holds on one person, and erasing it.

Scores are numbers computed from the timeline; the only free text is the reasons other plugins
give for their components, which could quote a person. Erasure keeps every number (totals,
parts, history: aggregates and reports stay right) and blanks those reasons."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring.models import ScoringHistory, ScoringScore
from guanxi.plugins.scoring.parts import decode, encode


async def export_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    score = await session.get(ScoringScore, (session.tenant_id, customer_id))
    if score is None:
        return None
    parts = decode(score.parts)
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
    """Blank the reasons of other plugins' parts (``item`` empty); every number stays."""
    score = await session.get(ScoringScore, (session.tenant_id, customer_id))
    if score is None:
        return {"score_reasons": 0}
    parts = decode(score.parts)
    blanked = sum(1 for p in parts if p.item == "" and p.reasons)
    if blanked:
        score.parts = encode(msgspec.structs.replace(p, reasons=[]) if p.item == "" else p for p in parts)
        await session.flush()
    return {"score_reasons": blanked}
