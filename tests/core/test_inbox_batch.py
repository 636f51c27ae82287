"""Group commit in the inbox worker: one failing event does not undo or block the others."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import hookimpl
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import InboxEvent
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime


class PickyResolver:
    def __init__(self) -> None:
        self.created: list[str] = []

    @hookimpl
    def guanxi_resolve_customer(self, identity: Any) -> None:
        if identity.external_id == "bad":
            raise RuntimeError("cannot resolve 'bad'")

    @hookimpl
    def guanxi_customer_created(self, event: Any) -> None:
        self.created.append(event.customer.display_name)


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"picky": PickyResolver()}


@pytest.mark.plugins("picky")
async def test_a_failing_event_in_a_batch_is_rolled_back_alone_with_its_events(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    t0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for n, who in enumerate(["good-1", "bad", "good-2"]):
        await inbox.ingest(
            runtime,
            tenant_id,
            InboundEvent(
                channel="web",
                provider_event_id=f"b-{n}",
                occurred_at=t0,
                identity=ProfileInput(external_id=who, nickname=who),
                kind="visit",
            ),
        )
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 3
    async with runtime.session(tenant_id) as s:
        rows = {r.provider_event_id: r for r in (await s.execute(select(InboxEvent))).scalars()}
    assert {k: r.status for k, r in rows.items()} == {"b-0": "done", "b-1": "pending", "b-2": "done"}
    assert "cannot resolve 'bad'" in (rows["b-1"].last_error or "")
    plugin = runtime.pm.get_plugin("picky")
    assert plugin.created == ["good-1", "good-2"]  # the failed event's customer_created never fired
