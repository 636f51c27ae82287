"""PIPL / GDPR and merges: what the insights plugin holds on one person.

The plugin keeps no text (the interaction holds it), only the scores computed from it. Erasure
blanks a person's texts in core, so their scores, derived from those texts, are deleted too."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.events import CustomersMerged
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights.analysis import RULE_ACTOR
from guanxi.plugins.insights.models import InsightsSentiment


async def export_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    rows = (
        await session.execute(
            select(InsightsSentiment).where(InsightsSentiment.customer_id == customer_id).order_by(InsightsSentiment.occurred_at)
        )
    ).scalars()
    sentiments = [
        {
            "interaction_id": str(r.interaction_id),
            "occurred_at": r.occurred_at.isoformat(),
            "score": r.score,
            "label": r.label,
            "language": r.language,
            "model": r.model,
            "alert": r.alert,
        }
        for r in rows
    ]
    return {"sentiments": sentiments} if sentiments else None


async def erase_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    result = await session.execute(
        delete(InsightsSentiment).where(InsightsSentiment.customer_id == customer_id).execution_options(synchronize_session=False)
    )
    return {"sentiments": int(getattr(result, "rowcount", 0) or 0)}


async def move_to_survivor(runtime: Runtime, event: CustomersMerged) -> None:
    """The merged customer's interactions now belong to the survivor, and so do their scores."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=RULE_ACTOR)) as tx:
        await tx.session.execute(
            update(InsightsSentiment)
            .where(InsightsSentiment.customer_id == event.merged_id)
            .values(customer_id=event.survivor_id)
            .execution_options(synchronize_session=False)
        )
