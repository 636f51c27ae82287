"""Staff notifications through WeCom: an application message (message/send) to the employee's
UserID from the staff mapping, by the corp's notifying app."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.app import start_workers
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Notification, NotificationDelivery, utcnow
from guanxi.core.queues import staff
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, notifications, tasks, users
from guanxi.testing.plugin import TEST_SECRET
from tests.plugins.wecom.conftest import corp_config
from tests.plugins.wecom.fake_wecom import FakeWecom

pytestmark = pytest.mark.plugins("wecom")
AGENT_ID = 1000002


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    return {"wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 1, "corps": [corp_config(agent_id=AGENT_ID)]}}


async def _user(runtime: Runtime, tenant_id: uuid.UUID, email: str = "zhangsan@acme.example") -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return (await users.create_user(tx, email=email, name="Zhang San")).id


async def _use_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.testing.plugin import use_tenant

    await use_tenant(runtime, tenant_id)  # the corp feeds the configured tenant


def _restart(database_url: str, tmp_path: Path, slug: str) -> Runtime:
    """A new runtime on the same database and config, as a restarted process has."""
    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "wecom", "GUANXI__AUTH__SECRET": TEST_SECRET}
    rt = Runtime.from_config(tmp_path / "guanxi-test.toml", environ=environ)
    import msgspec

    rt.settings = msgspec.structs.replace(rt.settings, tenant=slug, queues=msgspec.structs.replace(rt.settings.queues, poll_s=0.05))
    return rt


async def test_a_task_due_in_a_minute_reminds_its_assignee_in_app_and_on_wecom_once_across_a_restart(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path, fake_wecom: FakeWecom
) -> None:
    await _use_tenant(runtime, tenant_id)
    slug = runtime.settings.tenant
    user_id = await _user(runtime, tenant_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        customer = await customers.create_customer(tx, customers.CustomerInput(display_name="Wang Fang", owner_id=user_id))
        task = await tasks.create_task(
            tx, tasks.TaskInput(customer_id=customer.id, title="Send the quote", due_at=utcnow() + dt.timedelta(minutes=1))
        )
    await runtime.stop()  # the process that scheduled the reminder goes away before it runs

    for life in range(2):  # the restarted process delivers; the next restart finds nothing to do
        rt = _restart(database_url, tmp_path, slug)
        await rt.start()
        workers = start_workers(rt)
        try:
            deadline = time.monotonic() + 30
            while life == 0 and not fake_wecom.called("/message/send"):
                assert time.monotonic() < deadline, "no WeCom application message was sent"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the workers keep polling: a duplicate would show now
        finally:
            for w in workers:
                await w.stop()
            await rt.stop()

    [sent] = fake_wecom.called("/message/send")
    assert sent["touser"] == "zhangsan" and sent["agentid"] == AGENT_ID and sent["msgtype"] == "text"
    assert "Send the quote" in sent["text"]["content"] and "Wang Fang" in sent["text"]["content"]
    rt = _restart(database_url, tmp_path, slug)
    try:
        async with rt.session(tenant_id) as s:
            rows = (await s.scalars(select(Notification).where(Notification.user_id == user_id))).all()
            deliveries = (await s.scalars(select(NotificationDelivery))).all()
    finally:
        await rt.engine.dispose()
    assert [(n.kind, n.link_id, n.read_at) for n in rows] == [("task.due_soon", task.id, None)]
    assert [(d.channel, d.recipient, d.status) for d in deliveries] == [("wecom", "ww-test-corp:zhangsan", "sent")]
    assert (deliveries[0].provider_message_id or "").startswith("app-msg-")


async def test_a_staff_member_without_a_wecom_account_keeps_the_in_app_notification_only(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom
) -> None:
    await _use_tenant(runtime, tenant_id)
    user_id = await _user(runtime, tenant_id, "nobody@acme.example")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        _, created = await notifications.notify(
            tx, notifications.NotificationInput(user_id=user_id, kind="test.ping", title="Hi", dedupe_key="x")
        )
    assert created
    assert await staff.run_once(runtime, tenant_id=tenant_id) == 0
    assert fake_wecom.called("/message/send") == []


async def test_wecom_refusing_the_member_fails_the_delivery_and_busy_is_retried(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom
) -> None:
    await _use_tenant(runtime, tenant_id)
    user_id = await _user(runtime, tenant_id)
    fake_wecom.fail("/message/send", -1, times=2)  # busy, and busy again after the client's one retry
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await notifications.notify(tx, notifications.NotificationInput(user_id=user_id, kind="test.ping", title="Hi", dedupe_key="x"))
    await staff.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.scalars(select(NotificationDelivery))).one()
    assert row.status == "queued" and row.attempts == 1 and "errcode -1" in (row.last_error or "")

    fake_wecom.unknown_members.add("zhangsan")  # the member left the corp
    async with runtime.write_session(tenant_id) as s:
        found = await s.get(NotificationDelivery, (tenant_id, row.id))
        assert found is not None
        found.next_attempt_at = utcnow()
    await staff.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.scalars(select(NotificationDelivery))).one()
        kept = (await s.scalars(select(Notification))).one()
    assert row.status == "failed" and "invaliduser" in (row.last_error or "")
    assert kept.title == "Hi"


async def test_a_corp_without_a_notifying_app_reaches_nobody(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom, plugin_config: dict[str, Any]
) -> None:
    from guanxi.plugins.wecom.staff import WecomStaffChannel, clip

    await _use_tenant(runtime, tenant_id)
    user_id = await _user(runtime, tenant_id)
    channel = WecomStaffChannel(runtime)
    async with runtime.session(tenant_id) as s:
        assert await channel.recipient(s, user_id) == "ww-test-corp:zhangsan"
    import msgspec

    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import accounts

    corp = await accounts.tenant_account(runtime, tenant_id, "wecom", "acme")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # the corp's notifying app is removed
        await accounts.save_account(tx, "wecom", "acme", settings={**msgspec.to_builtins(corp.settings), "agent_id": None})
    async with runtime.session(tenant_id) as s:
        assert await channel.recipient(s, user_id) is None
    assert clip("提醒" * 2000).encode().__len__() <= 2048
