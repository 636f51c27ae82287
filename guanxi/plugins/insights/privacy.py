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
from guanxi.plugins.insights.actor import RULE_ACTOR
from guanxi.plugins.insights.models import InsightsKeywordHit, InsightsRuleTag, InsightsSentiment


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
    hits = (
        await session.execute(
            select(InsightsKeywordHit).where(InsightsKeywordHit.customer_id == customer_id).order_by(InsightsKeywordHit.occurred_at)
        )
    ).scalars()
    keywords = [{"interaction_id": str(h.interaction_id), "keyword": h.keyword, "occurred_at": h.occurred_at.isoformat()} for h in hits]
    reasons = (await session.execute(select(InsightsRuleTag).where(InsightsRuleTag.customer_id == customer_id))).scalars()
    tags = [{"tag": r.tag, "reason": r.reason, "since": r.since.isoformat()} for r in reasons]
    out = {"sentiments": sentiments, "keyword_hits": keywords, "rule_tags": tags}
    return {k: v for k, v in out.items() if v} or None


async def erase_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, table in (("sentiments", InsightsSentiment), ("keyword_hits", InsightsKeywordHit), ("rule_tags", InsightsRuleTag)):
        result = await session.execute(delete(table).where(table.customer_id == customer_id).execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


async def move_to_survivor(runtime: Runtime, event: CustomersMerged) -> None:
    """The merged customer's interactions now belong to the survivor, and so do their scores."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=RULE_ACTOR)) as tx:
        for table in (InsightsSentiment, InsightsKeywordHit):
            await tx.session.execute(
                update(table)
                .where(table.customer_id == event.merged_id)
                .values(customer_id=event.survivor_id)
                .execution_options(synchronize_session=False)
            )
        # a rule's reason stays once per customer: the survivor keeps its own, else takes the merged one's
        r = InsightsRuleTag
        survivor_rules = select(r.rule_id).where(r.customer_id == event.survivor_id)
        await tx.session.execute(
            delete(r).where(r.customer_id == event.merged_id, r.rule_id.in_(survivor_rules)).execution_options(synchronize_session=False)
        )
        await tx.session.execute(
            update(r)
            .where(r.customer_id == event.merged_id)
            .values(customer_id=event.survivor_id)
            .execution_options(synchronize_session=False)
        )
