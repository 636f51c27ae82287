"""Helpers of the scoring plugin's tests: customers, interactions and scores through core services."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.identities import IdentityInput
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.plugins.scoring.models import ScoringScore
from guanxi.plugins.scoring.parts import decode

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


class Shop:
    """Writes test data through core services (so the event hooks fire as in production)."""

    def __init__(self, runtime: Runtime, ctx: RequestContext) -> None:
        self.runtime = runtime
        self.ctx = ctx

    async def customer(self, name: str = "Li Lei", **fields: Any) -> uuid.UUID:
        async with self.runtime.transaction(self.ctx) as tx:
            return (await create_customer(tx, CustomerInput(display_name=name, **fields))).id

    async def interact(
        self, customer_id: uuid.UUID, kind: str, *, channel: str = "wecom", at: dt.datetime | None = None, **payload: Any
    ) -> None:
        async with self.runtime.transaction(self.ctx) as tx:
            await record_interaction(
                tx, InteractionInput(customer_id=customer_id, channel=channel, kind=kind, occurred_at=at or NOW, payload=payload)
            )

    async def identity(self, customer_id: uuid.UUID, channel: str, followers: int, **profile: Any) -> None:
        from guanxi.core.services.identities import attach_identity

        async with self.runtime.transaction(self.ctx) as tx:
            await attach_identity(
                tx,
                customer_id,
                IdentityInput(channel=channel, external_id=f"{channel}-{customer_id}", follower_count=followers, profile=profile),
            )

    async def total(self, customer_id: uuid.UUID) -> float | None:
        async with self.runtime.session(self.ctx.tenant_id) as s:
            row = await s.get(ScoringScore, (self.ctx.tenant_id, customer_id))
            return None if row is None else row.total

    async def parts(self, customer_id: uuid.UUID) -> dict[tuple[str, str], Any]:
        async with self.runtime.session(self.ctx.tenant_id) as s:
            score = (await s.execute(select(ScoringScore).where(ScoringScore.customer_id == customer_id))).scalar_one_or_none()
            return {(p.component, p.item): p for p in decode(score.parts if score else [])}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """Scores are computed as of NOW in these tests (decay depends on the time)."""
    from guanxi.plugins.scoring import recompute

    monkeypatch.setattr(recompute, "clock", lambda: NOW)
    return NOW


@pytest.fixture
def shop(runtime: Runtime, ctx: RequestContext) -> Shop:
    return Shop(runtime, ctx)
