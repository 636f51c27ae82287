"""The WeCom channel adapter against core's channel contract suite (sending through the real
outbox) and the fake WeCom server. A message becomes a mass-send task (add_msg_template) that
the following member confirms in the client.

The contract's webhook tests run against the callback URL: WeCom signs in the query string, not
in headers, so ``sign`` returns the query parameters (signature over the body's ``Encrypt``,
a fresh timestamp and nonce each time, as WeCom's retries are) and ``post`` puts them in the URL.
``webhook_body`` is an ``add_external_contact`` event encrypted by wechatpy."""

from __future__ import annotations

import re
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from wechatpy.enterprise.crypto import WeChatCrypto  # type: ignore[import-untyped]

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import Attachment, Channel, DeliveryResult, OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from guanxi.core.services import customers, identities
from guanxi.plugins.wecom.crypto import signature
from guanxi.plugins.wecom.models import WecomFollow
from guanxi.testing.contract import ChannelContract, WebhookRequest
from tests.plugins.wecom.conftest import AES_KEY, CALLBACK, TOKEN, event_xml
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

TEMPLATE = "/externalcontact/add_msg_template"
pytestmark = pytest.mark.plugins("wecom")


class TestWecomContract(ChannelContract):
    channel_name = "wecom"
    plugins = ("wecom",)
    webhook_path = CALLBACK
    malformed_bodies = (b"not xml", b"<xml><Encrypt>", b"<xml><ToUserName>x</ToUserName></xml>", b"{}", b"<other/>")

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

    def webhook_body(self, event_id: str, sender_id: str) -> bytes:
        created = 1_700_000_000 + zlib.crc32(event_id.encode()) % 10_000_000  # one event per id, the same on every retry
        inner = event_xml("add_external_contact", external=sender_id, create_time=created, State="contract")
        encrypt = ET.fromstring(WeChatCrypto(TOKEN, AES_KEY, CORP_ID).encrypt_message(inner, "1", str(created))).findtext("Encrypt")
        return f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()

    def sign(self, body: bytes) -> dict[str, str]:
        match = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body)
        encrypt = match.group(1).decode() if match else ""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        return {"msg_signature": signature(TOKEN, timestamp, nonce, encrypt), "timestamp": timestamp, "nonce": nonce}

    async def post(self, client: httpx.AsyncClient, request: WebhookRequest) -> httpx.Response:
        return await client.post(f"{CALLBACK}?{urlencode(request.headers)}", content=request.body, headers={"content-type": "text/xml"})

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


async def test_fetch_profile_asks_externalcontact_get_and_unknown_contacts_are_none(
    fake_wecom: FakeWecom, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    channel = runtime.channels["wecom"]
    fake_wecom.responses["/externalcontact/get"] = {
        "errcode": 0,
        "external_contact": {
            "external_userid": "wm9",
            "name": "王芳",
            "avatar": "https://img.example/w.png",
            "type": 1,
            "gender": 2,
            "unionid": "ozUNION",
        },
        "follow_user": [],
    }
    profile = await channel.fetch_profile("wm9", tenant_id=tenant_id)
    assert profile is not None
    assert (profile.nickname, profile.avatar_url, profile.union_id, profile.profile) == (
        "王芳",
        "https://img.example/w.png",
        "ozUNION",
        {"corp_id": CORP_ID, "type": 1, "gender": 2},
    )
    assert fake_wecom.called("/externalcontact/get") == [{"external_userid": "wm9"}]
    fake_wecom.fail("/externalcontact/get", 40096)
    assert await channel.fetch_profile("wm-unknown", tenant_id=tenant_id) is None


def _fields(message: OutboundMessage) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__struct_fields__}
