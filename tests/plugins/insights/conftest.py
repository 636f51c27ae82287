"""Helpers of the insights plugin's tests: inbound texts through core's inbox."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.core.services.users import create_user
from guanxi.plugins.insights.models import InsightsSentiment


class Inbox:
    """Sends customers' texts through the inbox, as a channel would, and reads the scores."""

    def __init__(self, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        self.runtime = runtime
        self.tenant_id = tenant_id
        self.n = 0
        #: texts are sent a minute apart from an hour ago (inside the score component's window)
        self.t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)

    async def say(self, text: str | None, *, who: str = "wm-1", direction: str = "in", channel: str = "wecom") -> None:
        self.n += 1
        event = InboundEvent(
            channel=channel,
            provider_event_id=f"evt-{self.n}",
            occurred_at=self.t0 + dt.timedelta(minutes=self.n),
            identity=ProfileInput(external_id=who, nickname=f"客户 {who}", union_id=f"u-{who}"),
            kind="message_in" if direction == "in" else "message_out",
            direction=direction,
            text=text,
        )
        await inbox.ingest(self.runtime, self.tenant_id, event)
        await inbox.run_once(self.runtime, tenant_id=self.tenant_id)

    async def scores(self) -> list[InsightsSentiment]:
        async with self.runtime.session(self.tenant_id) as s:
            return list((await s.execute(select(InsightsSentiment).order_by(InsightsSentiment.occurred_at))).scalars())

    async def user(self, role: str, email: str) -> uuid.UUID:
        async with self.runtime.transaction(RequestContext(tenant_id=self.tenant_id)) as tx:
            return (await create_user(tx, email=email, name=email.split("@", maxsplit=1)[0], role=role)).id
