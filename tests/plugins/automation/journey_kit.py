"""Helpers of the journey tests: a chat channel that records what it sends, customers on it,
saving and activating journeys, and moving the run worker's clock."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select

from guanxi import hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import Capabilities, Channel, DeliveryResult, OutboundMessage
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities
from guanxi.models import utcnow
from guanxi.plugins.automation.journeys import engine, service
from guanxi.plugins.automation.journeys.models import AutomationJourneyRun, AutomationJourneyStep


class JChat(Channel):
    """A channel that records every message it is given."""

    name = "jchat"
    capabilities = Capabilities(send_text=True)

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        return DeliveryResult(provider_message_id=f"j-{len(self.sent)}")


class JChatPlugin:
    def __init__(self) -> None:
        self.chat = JChat()

    @hookimpl
    def guanxi_channels(self) -> list[Channel]:
        return [self.chat]


def ctx(tenant_id: uuid.UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id)


async def make_customers(
    runtime: Runtime, tenant_id: uuid.UUID, n: int, *, channel: str | None = "jchat", prefix: str = "c"
) -> list[uuid.UUID]:
    ids = []
    async with runtime.transaction(ctx(tenant_id)) as tx:
        for i in range(n):
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=f"{prefix}{i}"))
            if channel:
                await identities.attach_identity(
                    tx, c.id, identities.IdentityInput(channel=channel, external_id=f"{prefix}-{i}-{c.id.hex[:6]}")
                )
            ids.append(c.id)
    return ids


def definition(steps: list[dict[str, Any]], *, trigger: dict[str, Any] | None = None, key: str = "welcome", **extra: Any) -> str:
    return json.dumps({"key": key, "name": key.title(), "trigger": trigger or {"type": "tag_added", "tag": "vip"}, "steps": steps, **extra})


async def activate(runtime: Runtime, tenant_id: uuid.UUID, text: str, *, fmt: str = "json") -> Any:
    async with runtime.transaction(ctx(tenant_id)) as tx:
        row = await service.save_journey(tx, text, fmt=fmt)
        await service.set_status(tx, row.key, "active")
    return row


async def enter(runtime: Runtime, tenant_id: uuid.UUID, key: str, customer_ids: list[uuid.UUID]) -> int:
    async with runtime.transaction(ctx(tenant_id)) as tx:
        return await service.enter(tx, await service.get_journey(tx.session, key), customer_ids)


async def drain(runtime: Runtime, tenant_id: uuid.UUID, *, at: dt.datetime | None = None, limit: int = 500) -> int:
    """Advance every run due at ``at`` (now); how many runs were claimed in all."""
    total = 0
    while n := await engine.advance(runtime, tenant_id=tenant_id, limit=limit, now=at or utcnow()):
        total += n
    return total


async def runs(runtime: Runtime, tenant_id: uuid.UUID) -> list[AutomationJourneyRun]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(AutomationJourneyRun).order_by(AutomationJourneyRun.entered_at))).scalars())


async def ledger(runtime: Runtime, tenant_id: uuid.UUID) -> list[AutomationJourneyStep]:
    async with runtime.session(tenant_id) as s:
        return list(
            (
                await s.execute(select(AutomationJourneyStep).order_by(AutomationJourneyStep.customer_id, AutomationJourneyStep.seq))
            ).scalars()
        )
