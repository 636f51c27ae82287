"""The service team's queue (``serviceQueue``): customers most in need of care first, in one SQL
statement.

The same signals that lower a customer's lead score for sales (the score components of
:mod:`guanxi.plugins.insights.components`) raise their place here: each alert of the window
(``service_alert_points``), a negative mean sentiment over the window
(``service_sentiment_points`` per unit below zero) and a negative trend, the mean of the last
``trend_days`` days against the ``trend_days`` before (``service_trend_points`` per unit of
decline). Customers whose texts of the window are all neutral or happy, and steady, have no place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import Float, and_, case, cast, func, literal, select

from guanxi.core.domain.models import Customer
from guanxi.core.services.queries import CUSTOMER_COLUMNS
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights.components import trend_columns
from guanxi.plugins.insights.models import InsightsSentiment
from guanxi.plugins.insights.settings import InsightsSettings


class ServiceRanked(msgspec.Struct, kw_only=True):
    row: Any  # a row of CUSTOMER_COLUMNS
    priority: float
    alerts: int
    average: float | None
    trend: float | None
    last_text_at: dt.datetime
    reasons: list[str]


def _below_zero(value: Any) -> Any:
    """How far below zero (0 for a value at or above it, or NULL)."""
    return case((value < 0, -value), else_=literal(0.0, Float))


def queue_statement(settings: InsightsSettings, now: dt.datetime, first: int) -> Any:
    s = InsightsSentiment
    window = now - dt.timedelta(days=settings.score_window_days)
    in_window = and_(s.occurred_at > window, s.occurred_at <= now)
    n_recent, recent, n_prior, prior = trend_columns(now, settings.trend_days)
    looked = now - dt.timedelta(days=max(settings.score_window_days, 2 * settings.trend_days))
    per_customer = (
        select(
            s.tenant_id.label("tenant_id"),
            s.customer_id.label("customer_id"),
            func.count(s.alert).filter(in_window).label("alerts"),
            func.avg(s.score).filter(in_window).label("average"),
            n_recent.label("n_recent"),
            recent.label("recent"),
            n_prior.label("n_prior"),
            prior.label("prior"),
            func.max(s.occurred_at).label("last_text_at"),
        )
        .where(s.occurred_at > looked, s.occurred_at <= now)
        .group_by(s.tenant_id, s.customer_id)
        .subquery()
    )
    p = per_customer
    trend = case((and_(p.c.n_recent > 0, p.c.n_prior > 0), cast(p.c.recent, Float) - cast(p.c.prior, Float)), else_=None)
    priority = (
        literal(settings.service_alert_points, Float) * p.c.alerts
        + literal(settings.service_sentiment_points, Float) * func.coalesce(_below_zero(cast(p.c.average, Float)), 0.0)
        + literal(settings.service_trend_points, Float) * func.coalesce(_below_zero(trend), 0.0)
    )
    c = Customer
    inner = (
        select(
            *CUSTOMER_COLUMNS,
            priority.label("priority"),
            p.c.alerts,
            p.c.average,
            trend.label("trend"),
            p.c.last_text_at,
        )
        .join(p, and_(p.c.tenant_id == c.tenant_id, p.c.customer_id == c.id))
        .where(c.merged_into_id.is_(None), c.erased_at.is_(None))
        .subquery()
    )
    return select(inner).where(inner.c.priority > 0).order_by(inner.c.priority.desc(), inner.c.last_text_at.desc(), inner.c.id).limit(first)


async def service_queue(session: TenantSession, settings: InsightsSettings, now: dt.datetime, first: int) -> list[ServiceRanked]:
    rows = (await session.execute(queue_statement(settings, now, first))).all()
    out = []
    for r in rows:
        reasons = []
        if r.alerts:
            plural = "s" if r.alerts > 1 else ""
            points = r.alerts * settings.service_alert_points
            reasons.append(f"{r.alerts} alert{plural} in {settings.score_window_days} days: +{points:g}")
        if r.average is not None and r.average < 0:
            reasons.append(f"mean sentiment {r.average:+.2f}: +{-r.average * settings.service_sentiment_points:.1f}")
        if r.trend is not None and r.trend < 0:
            reasons.append(
                f"sentiment trend {r.trend:+.2f} over 2 x {settings.trend_days} days: +{-r.trend * settings.service_trend_points:.1f}"
            )
        out.append(
            ServiceRanked(
                row=r,
                priority=round(float(r.priority), 4),
                alerts=int(r.alerts),
                average=None if r.average is None else round(float(r.average), 4),
                trend=None if r.trend is None else round(float(r.trend), 4),
                last_text_at=r.last_text_at,
                reasons=reasons,
            )
        )
    return out
