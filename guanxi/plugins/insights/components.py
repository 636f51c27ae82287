"""The score component ``insights.sentiment`` (``guanxi_score_components``): one statement for a
whole set of customers."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights.models import InsightsSentiment
from guanxi.plugins.insights.settings import InsightsSettings


async def sentiment_components(
    settings: InsightsSettings, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent]:
    """The mean sentiment of each customer's inbound texts in the window, times the points."""
    if not settings.score_points or not customer_ids:
        return []
    since = as_of - dt.timedelta(days=settings.score_window_days)
    query = (
        select(InsightsSentiment.customer_id, func.count(), func.avg(InsightsSentiment.score))
        .where(
            InsightsSentiment.customer_id.in_(customer_ids),
            InsightsSentiment.occurred_at > since,
            InsightsSentiment.occurred_at <= as_of,
        )
        .group_by(InsightsSentiment.customer_id)
    )
    out = []
    for customer_id, count, mean in (await session.execute(query)).all():
        value = round(float(mean) * settings.score_points, 2)
        out.append(
            ScoreComponent(
                customer_id=customer_id,
                name="insights.sentiment",
                value=value,
                reasons=[
                    f"{count} texts in {settings.score_window_days} days, mean sentiment {float(mean):+.2f} x {settings.score_points:g}"
                ],
            )
        )
    return out
