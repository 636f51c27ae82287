"""The alertRaised subscription over a real WebSocket: an alert reaches a subscriber of the
tenant once committed, with the message and the task; another tenant's subscriber never sees it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from guanxi.core.runtime import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import api_key
from tests.graphql.test_subscriptions import next_data, subscribe
from tests.graphql.test_subscriptions import server as server  # noqa: PLC0414 - the fixture
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")

QUERY = "subscription { alertRaised { text label reason taskId assigneeId channel } }"


@pytest.fixture
async def admin_key(runtime: Runtime, tenant_id: uuid.UUID) -> AsyncIterator[str]:
    yield await api_key(runtime, tenant_id, "admin")


async def test_an_alert_reaches_a_subscriber_with_the_message_and_its_task(
    runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str
) -> None:
    box = Inbox(runtime, tenant_id)
    service = await box.user("service", "svc@example.com")
    ws = await subscribe(server, QUERY, key=admin_key)
    try:
        await box.say("谢谢，收到了")  # no alert: nothing published
        await box.say("我要投诉，东西是坏的")
        data = (await next_data(ws))["alertRaised"]
    finally:
        await ws.close()
    assert data["text"] == "我要投诉，东西是坏的" and data["reason"] == "keyword 投诉" and data["label"] == "neg"
    assert data["assigneeId"] == to_global_id("User", service) and data["taskId"]


async def test_another_tenants_subscriber_never_sees_an_alert(runtime: Runtime, tenant_id: uuid.UUID, server: str) -> None:
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    ws = await subscribe(server, QUERY, key=await api_key(runtime, beta, "admin"))
    try:
        await Inbox(runtime, tenant_id).say("I want a refund, this is terrible")
        await Inbox(runtime, beta).say("Worst purchase ever 😡")
        data = (await next_data(ws))["alertRaised"]
    finally:
        await ws.close()
    assert data["text"] == "Worst purchase ever 😡"


async def test_the_documented_subscription_runs_and_an_alert_without_owner_or_service_user_is_an_unassigned_task(
    runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str
) -> None:
    from tests.plugins.insights.test_graphql import DOC

    [block] = [b for b in DOC.read_text(encoding="utf-8").split("```graphql\n")[1:] if b.lstrip().startswith("subscription")]
    ws = await subscribe(server, block.split("```")[0], key=admin_key)
    try:
        await Inbox(runtime, tenant_id).say("退款！")
        data = (await next_data(ws))["alertRaised"]
    finally:
        await ws.close()
    assert data["reason"] == "keyword 退款" and data["taskId"] and data["assigneeId"] is None
