"""The channel contract suite against the fake Douyin open API, plus Douyin's reply rules: a
reply needs a message to reply to, inside the window and the quota (settings)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from typing import Any

import httpx
import msgspec
import pytest

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import Channel, DeliveryResult, OutboundMessage, PermanentDeliveryError
from guanxi.core.domain.models import utcnow
from guanxi.core.services import interactions
from guanxi.plugins.douyin.models import DouyinConversation
from guanxi.testing.contract import ChannelContract
from tests.plugins.douyin.conftest import WEBHOOK, connect, douyin_config, envelope, headers, im_content
from tests.plugins.douyin.fake_douyin import CLIENT_KEY, FakeDouyin


async def open_conversation(runtime: Runtime, tenant_id: uuid.UUID, account: str, open_id: str, *, at: dt.datetime | None = None) -> None:
    async with runtime.write_session(tenant_id) as s:
        s.add(
            DouyinConversation(
                account_open_id=account,
                open_id=open_id,
                customer_id=uuid.uuid4(),
                conversation_id="conv-c",
                server_message_id="smid-c",
                last_in_at=at or utcnow(),
            )
        )


class TestDouyinContract(ChannelContract):
    channel_name = "douyin"
    plugins = ("douyin",)
    webhook_path = WEBHOOK
    receipt_statuses = ("delivered",)
    account = ""

    @pytest.fixture
    def fake_provider(self, fake_douyin: FakeDouyin) -> FakeDouyin:
        return fake_douyin

    @pytest.fixture
    def plugin_config(self, fake_douyin: FakeDouyin) -> dict[str, dict[str, Any]]:
        return {"douyin": douyin_config(fake_douyin)}

    @pytest.fixture(autouse=True)
    async def _connected(self, runtime: Runtime, tenant_id: uuid.UUID, fake_douyin: FakeDouyin) -> None:
        """A business account connected to the tenant, and a private message from the contract's
        recipient it can reply to."""
        self.account = f"biz-{secrets.token_hex(6)}"
        await connect(runtime, tenant_id, self.account)
        await open_conversation(runtime, tenant_id, self.account, self.recipient)

    async def customer(self, runtime: Runtime, tenant_id: uuid.UUID) -> uuid.UUID:
        """Douyin only lets a business reply to someone who wrote: the customer wrote in."""
        customer_id = await super().customer(runtime, tenant_id)
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await interactions.record_interaction(
                tx,
                interactions.InteractionInput(
                    customer_id=customer_id, channel="douyin", kind="message_in", direction="in", occurred_at=utcnow(), text="在吗"
                ),
            )
        return customer_id

    def arrange_success(self) -> None:
        self.provider.outcomes.append("ok")

    def arrange_transient_failure(self) -> None:
        self.provider.outcomes.append("rate_limited")

    def arrange_permanent_failure(self) -> None:
        self.provider.outcomes.append("rejected")

    def arrange_slow(self) -> None:
        self.provider.outcomes.append("slow")

    def check_delivered(self, message: OutboundMessage, result: DeliveryResult) -> None:
        (body,) = self.provider.called("/im/send/msg/")
        assert body == {
            "msg_id": "smid-c",
            "conversation_id": "conv-c",
            "to_user_id": message.recipient,
            "content": {"msg_type": 1, "text": {"text": message.text}},
            "scene": "im_reply_msg",
        }

    def webhook_body(self, event_id: str, sender_id: str) -> bytes:
        return envelope(
            "im_receive_msg", im_content("Hi", sender_id, message_id=event_id), from_user=sender_id, to_user=self.account, log_id=event_id
        )

    def sign(self, body: bytes) -> dict[str, str]:
        try:
            msg_id = str(json.loads(body).get("log_id") or "") or None
        except (ValueError, AttributeError):
            msg_id = None
        return headers(body, msg_id)

    def receipt_body(self, event_id: str, provider_message_id: str, status: str) -> bytes:
        echo = im_content("Hello through the outbox", self.recipient, message_id=provider_message_id, source=CLIENT_KEY)
        return envelope("im_send_msg", echo, from_user=self.account, to_user=self.recipient, log_id=event_id)

    # -- Douyin's own rules -------------------------------------------------------------------------

    async def test_the_reply_window_and_quota_are_settings_in_the_capabilities(self, channel: Channel) -> None:
        assert channel.capabilities.messaging_window_s == 86400
        assert msgspec.convert(msgspec.to_builtins(channel.capabilities), type(channel.capabilities)) == channel.capabilities

    async def test_a_user_who_never_wrote_cannot_be_messaged(self, channel: Channel) -> None:
        message = msgspec.structs.replace(self.message(), recipient="never-wrote")
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(message)
        assert raised.value.provider_code == "no_conversation"
        assert self.provider.called("/im/send/msg/") == []

    async def test_a_closed_window_refuses_the_reply_without_calling_douyin(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        await open_conversation(runtime, tenant_id, self.account, "old-writer", at=utcnow() - dt.timedelta(days=2))
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(msgspec.structs.replace(self.message(), recipient="old-writer"))
        assert raised.value.provider_code == "window_closed"
        assert self.provider.called("/im/send/msg/") == []

    async def test_the_reply_quota_per_user_message_is_enforced(self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        from guanxi.core.queues import outbox

        customer_id = await self.customer(runtime, tenant_id)
        for _ in range(6):
            await self.queue(runtime, tenant_id, customer_id=customer_id)
            await outbox.run_once(runtime, tenant_id=tenant_id)
        assert len(self.provider.called("/im/send/msg/")) == 6
        row = await self.queue(runtime, tenant_id, customer_id=customer_id)
        await outbox.run_once(runtime, tenant_id=tenant_id)
        refused = await self.outbox_row(runtime, tenant_id, row.id)
        assert refused.status == "failed" and "quota" in (refused.last_error or "")
        assert len(self.provider.called("/im/send/msg/")) == 6

    async def test_an_access_token_expired_mid_run_is_refreshed_once_and_the_send_retried(
        self, channel: Channel, fake_douyin: FakeDouyin
    ) -> None:
        assert (await channel.send(self.message())).provider_message_id
        fake_douyin.expire_access_tokens()
        assert (await channel.send(self.message())).provider_message_id
        assert len(fake_douyin.called("/oauth/refresh_token/")) == 1
        assert len(fake_douyin.called("/im/send/msg/")) == 3  # ok, expired (2190008), ok again

    async def test_a_spent_refresh_token_disconnects_the_account_without_looping(
        self, channel: Channel, fake_douyin: FakeDouyin, graphql: Any
    ) -> None:
        fake_douyin.expire_access_tokens()
        fake_douyin.refresh_fails = True
        for _ in range(2):
            with pytest.raises(PermanentDeliveryError) as raised:
                await channel.send(self.message())
            assert "authorize the app again" in str(raised.value)
        assert len(fake_douyin.called("/oauth/refresh_token/")) == 1  # the second send did not even try
        (account,) = (await graphql("{ douyinAccounts { openId status reason } }"))["data"]["douyinAccounts"]
        assert account["status"] == "DISCONNECTED" and "refresh token expired" in account["reason"]

    async def test_a_retried_webhook_delivery_signed_afresh_is_one_inbox_row(
        self, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        body = self.webhook_body("dup-1", "contract-sender")
        for _ in range(3):
            assert (await self.post(client, self.signed(body))).status_code == 200
        assert await self.inbox_count(runtime, tenant_id) == 1
