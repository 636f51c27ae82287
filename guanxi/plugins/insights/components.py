"""The insights plugin's score components (``guanxi_score_components``), each one statement for
a whole set of customers:

* ``insights.sentiment``: the mean sentiment of the inbound texts of the last
  ``score_window_days`` days × ``score_points``;
* ``insights.trend``: the mean of the last ``trend_days`` days minus the mean of the
  ``trend_days`` before × ``trend_points`` (a customer turning unhappy loses points; a customer
  without a text in both windows has no trend);
* ``insights.tags``: the points of the enabled tag rules whose tag the customer holds because of
  them (``score_points`` of the rule, may be negative).

For sales these lower the priority of an unhappy customer; the service team's queue
(:mod:`guanxi.plugins.insights.service`) ranks the same signals the other way round.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, case, exists, func, select

from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.domain.models import CustomerTag, Tag
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights.models import InsightsRuleTag, InsightsSentiment, InsightsTagRule
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


def trend_columns(as_of: dt.datetime, days: int) -> tuple[Any, Any, Any, Any]:
    """Per customer (grouped by ``customer_id``): texts and mean score of the last ``days`` days,
    and of the ``days`` before; the service queue uses the same columns."""
    s = InsightsSentiment
    middle = as_of - dt.timedelta(days=days)
    recent = and_(s.occurred_at > middle, s.occurred_at <= as_of)
    prior = and_(s.occurred_at > middle - dt.timedelta(days=days), s.occurred_at <= middle)
    return (
        func.count().filter(recent),
        func.avg(s.score).filter(recent),
        func.count().filter(prior),
        func.avg(s.score).filter(prior),
    )


async def trend_components(
    settings: InsightsSettings, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent]:
    """The change of each customer's mean sentiment between the two windows, times the points."""
    if not settings.trend_points or not customer_ids:
        return []
    s, days = InsightsSentiment, settings.trend_days
    n_recent, recent, n_prior, prior = trend_columns(as_of, days)
    query = (
        select(s.customer_id, n_recent, recent, n_prior, prior)
        .where(s.customer_id.in_(customer_ids), s.occurred_at > as_of - dt.timedelta(days=2 * days), s.occurred_at <= as_of)
        .group_by(s.customer_id)
    )
    out = []
    for customer_id, texts_recent, mean_recent, texts_prior, mean_prior in (await session.execute(query)).all():
        if not texts_recent or not texts_prior:
            continue
        change = float(mean_recent) - float(mean_prior)
        out.append(
            ScoreComponent(
                customer_id=customer_id,
                name="insights.trend",
                value=round(change * settings.trend_points, 2),
                reasons=[
                    f"sentiment {float(mean_prior):+.2f} ({texts_prior} texts) -> {float(mean_recent):+.2f} ({texts_recent} texts)"
                    f" over 2 x {days} days: {change:+.2f} x {settings.trend_points:g}"
                ],
            )
        )
    return out


async def tag_components(session: TenantSession, customer_ids: list[uuid.UUID]) -> list[ScoreComponent]:
    """The points of the enabled rules whose tag each customer holds because of them (and still
    holds: a tag someone removed by hand no longer counts, though the rule's reason stays)."""
    if not customer_ids:
        return []
    r, rule = InsightsRuleTag, InsightsTagRule
    label = case((Tag.group_name == "", Tag.name), else_=Tag.group_name + "/" + Tag.name)
    held = exists().where(
        CustomerTag.tenant_id == r.tenant_id,
        CustomerTag.customer_id == r.customer_id,
        Tag.tenant_id == CustomerTag.tenant_id,
        Tag.id == CustomerTag.tag_id,
        label == r.tag,
    )
    query = (
        select(r.customer_id, rule.key, r.tag, rule.score_points)
        .join(rule, and_(rule.tenant_id == r.tenant_id, rule.id == r.rule_id))
        .where(r.customer_id.in_(customer_ids), rule.enabled.is_(True), rule.score_points != 0, held)
        .order_by(r.customer_id, rule.key)
    )
    points: dict[uuid.UUID, float] = defaultdict(float)
    reasons: dict[uuid.UUID, list[str]] = defaultdict(list)
    for customer_id, key, tag, value in (await session.execute(query)).all():
        points[customer_id] += float(value)
        reasons[customer_id].append(f"tag {tag} (rule {key}) {float(value):+g}")
    return [ScoreComponent(customer_id=c, name="insights.tags", value=round(points[c], 2), reasons=reasons[c]) for c in points]


async def components(
    settings: InsightsSettings, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent]:
    """Every component of the plugin for a set of customers: three statements."""
    return [
        *await sentiment_components(settings, session, customer_ids, as_of),
        *await trend_components(settings, session, customer_ids, as_of),
        *await tag_components(session, customer_ids),
    ]
