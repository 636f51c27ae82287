"""GraphQL of the service team's queue (``serviceQueue``)."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.types import Info

from guanxi.core.domain.models import utcnow
from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Customer
from guanxi.plugins.insights.service import service_queue
from guanxi.plugins.insights.settings import InsightsSettings


@strawberry.type(description="A customer in the service team's queue, with why they rank there.")
class ServiceQueueItem:
    customer: Customer
    priority: float = strawberry.field(description="alerts + negative mean sentiment + negative trend, in points (see the insights docs)")
    alerts: int = strawberry.field(description="alerts raised by the customer's texts of the score window")
    average: float | None = strawberry.field(description="mean sentiment of the score window's inbound texts, in [-1, 1]")
    trend: float | None = strawberry.field(
        description="mean of the last trendDays days minus the trendDays before; null without texts in both"
    )
    last_text_at: dt.datetime
    reasons: list[str]


@strawberry.type
class ServiceQuery:
    @strawberry.field(
        description="Customers most in need of care first: alerts, unhappy texts and a worsening mood "
        "(the signals that lower a lead score for sales raise the place here)."
    )
    async def service_queue(self, info: Info, first: int = 20) -> list[ServiceQueueItem]:
        limits = info.context.rt.settings.graphql
        size = check_page_size(first, limits.default_page_size, limits.max_page_size)
        settings: InsightsSettings = info.context.rt.plugin_settings("insights", info.context.tenant_id)
        async with info.context.loaders.lock:
            ranked = await service_queue(info.context.session, settings, utcnow(), size)
        return [
            ServiceQueueItem(
                customer=Customer.from_row(r.row, info.context),
                priority=r.priority,
                alerts=r.alerts,
                average=r.average,
                trend=r.trend,
                last_text_at=r.last_text_at,
                reasons=r.reasons,
            )
            for r in ranked
        ]
