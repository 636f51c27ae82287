"""A channel's plugin disabled by a tenant: the channel does not send for that tenant
(``sendMessage`` is refused with PLUGIN_DISABLED, a message queued before fails with that
reason instead of being sent), while another tenant on the deployment sends as before."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.queues import outbox
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.identities import IdentityInput, attach_identity
from guanxi.core.services.tenant_plugins import set_plugin_enabled
from guanxi.graphql.ids import to_global_id
from tests.access.test_audit import ChatPlugin

pytestmark = pytest.mark.plugins("chat")
SEND = (
    'mutation($id: ID!, $k: String!) { sendMessage(customerId: $id, channel: "chat", idempotencyKey: $k, text: "hi")'
    " { errors { code message } } }"
)


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chat": ChatPlugin()}


async def _reachable_customer(runtime: Runtime, tenant_id: uuid.UUID) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        cid = (await create_customer(tx, CustomerInput(display_name="Li"))).id
        await attach_identity(tx, cid, IdentityInput(channel="chat", external_id=f"c-{cid}"))
    return cid


async def test_a_disabled_channel_does_not_send_for_that_tenant(runtime: Runtime, tenant_id: uuid.UUID, graphql: Any) -> None:
    cid = await _reachable_customer(runtime, tenant_id)
    assert (await graphql(SEND, {"id": to_global_id("Customer", cid), "k": "before"}))["data"]["sendMessage"]["errors"] == []
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await set_plugin_enabled(tx, "chat", False)
    [error] = (await graphql(SEND, {"id": to_global_id("Customer", cid), "k": "after"}))["data"]["sendMessage"]["errors"]
    assert error["code"] == "PLUGIN_DISABLED" and "'chat'" in error["message"]
    await outbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        [row] = (await s.execute(select(OutboxMessage))).scalars().all()
    assert row.status == "failed" and "not enabled for this tenant" in (row.last_error or "")
    assert row.provider_message_id is None  # never handed to the channel
