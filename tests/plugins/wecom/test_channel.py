"""The WeCom channel adapter against core's channel contract suite (sending through the real
outbox) and the fake WeCom server. A message becomes a mass-send task (add_msg_template) that
the following member confirms in the client.

The contract's webhook tests are not run here (``webhook_path = None``): WeCom signs in the
query string, not in headers, so the suite's header-signed posts do not apply; the callback
route has its own tests (test_callbacks.py), with the same properties (401 and nothing stored
for a bad signature, 400 for a malformed body, one interaction for three deliveries)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from guanxi import Runtime
from guanxi.core.channels import Attachment, Channel, DeliveryResult, OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from guanxi.core.context import RequestContext
from guanxi.core.services import customers, identities
from guanxi.plugins.wecom.models import WecomFollow
from guanxi.testing.contract import ChannelContract
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

TEMPLATE = "/externalcontact/add_msg_template"


class TestWecomContract(ChannelContract):
    channel_name = "wecom"
    plugins = ("wecom",)
    webhook_path = None

    @pytest.fixture
    def fake_provider(self, fake_wecom: FakeWecom) -> FakeWecom:
        return fake_wecom

    def arrange_success(self) -> None:
        pass  # the fake accepts by default

    def arrange_transient_failure(self) -> None:
        self.provider.fail(TEMPLATE, 45009, times=3)  # more than max_retries (2)

    def arrange_permanent_failure(self) -> None:
        self.provider.fail(TEMPLATE, 40096)  # invalid external_userid

    def arrange_slow(self) -> None:
        self.provider.delay_s[TEMPLATE] = 1.5

    def check_delivered(self, message: OutboundMessage, result: DeliveryResult) -> None:
        (body,) = self.provider.called(TEMPLATE)
        assert body == {"chat_type": "single", "external_userid": [message.recipient], "text": {"content": message.text}}

    # -- WeCom's own details ---------------------------------------------------------------------

    async def test_the_following_member_is_the_sender_and_attachments_take_wecom_shapes(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            c = await customers.create_customer(tx, customers.CustomerInput(display_name="韩梅梅"))
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="wecom", external_id="wmHAN"))
            tx.session.add(
                WecomFollow(
                    corp_id=CORP_ID,
                    external_userid="wmHAN",
                    userid="lisi",
                    customer_id=c.id,
                    status="active",
                    remark_mobiles=[],
                    tag_ids=[],
                )
            )
        message = OutboundMessage(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            customer_id=c.id,
            channel="wecom",
            recipient="wmHAN",
            text="新品到了",
            attachments=(
                Attachment(kind="image", url="https://img.example/p.png"),
                Attachment(kind="link", url="https://shop.example", name="Shop"),
            ),
            idempotency_key="k1",
        )
        result = await channel.send(message)
        (body,) = self.provider.called(TEMPLATE)
        assert body["sender"] == "lisi" and result.provider_message_id == "msg-1"
        assert body["attachments"] == [
            {"msgtype": "image", "image": {"pic_url": "https://img.example/p.png"}},
            {"msgtype": "link", "link": {"title": "Shop", "url": "https://shop.example"}},
        ]

    async def test_an_unreachable_recipient_and_an_unsendable_attachment_are_permanent(self, channel: Channel) -> None:
        self.provider.responses[TEMPLATE] = {"errcode": 0, "errmsg": "ok", "fail_list": [self.recipient], "msgid": "m"}
        with pytest.raises(PermanentDeliveryError, match="fail_list"):
            await channel.send(self.message())
        file_message = OutboundMessage(**{**_fields(self.message()), "attachments": (Attachment(kind="file", url="https://x/f.pdf"),)})
        with pytest.raises(PermanentDeliveryError, match="media_id"):
            await channel.send(file_message)

    async def test_a_rate_limit_is_transient_with_a_retry_after(self, channel: Channel) -> None:
        self.provider.fail(TEMPLATE, 45009, times=3)
        with pytest.raises(TransientDeliveryError) as raised:
            await channel.send(self.message())
        assert (raised.value.provider_code, raised.value.retry_after_s) == ("45009", 60.0)


def _fields(message: OutboundMessage) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__struct_fields__}
