"""The webhook (issue 18 items 1–2): URL verification, signatures, the app by client_key and the
tenant by the business account addressed, tolerant parsing, dedupe by Msg-Id, every event kind."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import Customer, Identity, InboxEvent, Interaction, OutboxMessage
from guanxi.plugins.douyin.models import DouyinAuthorization, DouyinConversation, DouyinEvent
from tests.plugins.douyin.conftest import WEBHOOK, deliver, envelope, headers, im_content, settle
from tests.plugins.douyin.fake_douyin import CLIENT_KEY

pytestmark = pytest.mark.plugins("douyin")


async def interactions(runtime: Runtime, tenant_id: uuid.UUID) -> list[Interaction]:
    async with runtime.session(tenant_id) as s:
        return list(
            (await s.execute(select(Interaction).where(Interaction.channel == "douyin").order_by(Interaction.recorded_at))).scalars()
        )


async def inbox_rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[InboxEvent]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(InboxEvent).where(InboxEvent.channel == "douyin"))).scalars())


async def kept(runtime: Runtime, tenant_id: uuid.UUID) -> list[DouyinEvent]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(DouyinEvent))).scalars())


@pytest.mark.parametrize("challenge", [12345, "abc"])
async def test_verify_webhook_is_answered_with_the_same_challenge_and_stores_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, challenge: Any
) -> None:
    body = json.dumps({"event": "verify_webhook", "client_key": "", "content": {"challenge": challenge}}).encode()
    response = await anonymous_client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"challenge": challenge}
    signed = envelope("verify_webhook", {"challenge": challenge}, as_string=False)
    response = await anonymous_client.post(WEBHOOK, content=signed, headers=headers(signed))
    assert response.json() == {"challenge": challenge}
    assert await inbox_rows(runtime, tenant_id) == []


async def test_a_verify_webhook_naming_our_app_with_a_bad_signature_is_401(anonymous_client: httpx.AsyncClient) -> None:
    body = envelope("verify_webhook", {"challenge": 1}, as_string=False)
    response = await anonymous_client.post(WEBHOOK, content=body, headers=headers(body, secret="wrong"))
    assert response.status_code == 401


async def test_a_bad_or_missing_signature_is_401_and_stores_nothing(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    body = envelope("im_receive_msg", im_content("hi", "cust-1"), from_user="cust-1", to_user=business)
    assert (await deliver(anonymous_client, body, secret="not-the-secret")).status_code == 401
    response = await anonymous_client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert "not-the-secret" not in response.text
    assert await inbox_rows(runtime, tenant_id) == []


async def test_an_unknown_app_or_an_unconnected_business_account_is_404(anonymous_client: httpx.AsyncClient, business: str) -> None:
    body = envelope("im_receive_msg", im_content("hi", "c"), from_user="c", to_user=business, client_key="awSOMEONEELSE")
    assert (await deliver(anonymous_client, body)).status_code == 404
    body = envelope("im_receive_msg", im_content("hi", "c"), from_user="c", to_user="biz-nobody")
    assert (await deliver(anonymous_client, body)).status_code == 404


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{}", b'{"event": 5}', b'{"event": "im_receive_msg", "content": "{broken"}'])
async def test_a_body_that_is_not_a_douyin_event_is_400(anonymous_client: httpx.AsyncClient, body: bytes) -> None:
    response = await anonymous_client.post(WEBHOOK, content=body, headers=headers(body))
    assert response.status_code == 400
    assert "malformed douyin webhook" in response.text


@pytest.mark.parametrize("as_string", [True, False], ids=["content-string", "content-object"])
async def test_a_private_message_becomes_a_customer_identity_and_interaction_in_either_content_form(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, as_string: bool
) -> None:
    customer = f"cust-{secrets.token_hex(4)}"
    body = envelope("im_receive_msg", im_content("想了解一下价格", customer), from_user=customer, to_user=business, as_string=as_string)
    response = await deliver(anonymous_client, body)
    assert response.status_code == 200 and response.json()["stored"] == 1
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert (row.kind, row.direction, row.text) == ("message_in", "in", "想了解一下价格")
    assert row.payload["conversation_id"] == "conv-7" and row.payload["account_open_id"] == business
    async with runtime.session(tenant_id) as s:
        ident = (await s.execute(select(Identity).where(Identity.external_id == customer))).scalar_one()
        conv = (await s.execute(select(DouyinConversation).where(DouyinConversation.open_id == customer))).scalar_one()
    assert (ident.nickname, ident.avatar_url) == ("小王", "https://p3.douyinpic.com/u.jpg")
    assert (conv.account_open_id, conv.server_message_id) == (business, "smid-1")


async def test_the_same_event_delivered_three_times_is_one_interaction(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    body = envelope("im_receive_msg", im_content("hello", "cust-3x"), from_user="cust-3x", to_user=business)
    answers = [(await deliver(anonymous_client, body, msg_id="MSG-3X")).json() for _ in range(3)]
    assert [a["stored"] for a in answers] == [1, 0, 0]
    await settle(runtime, tenant_id)
    assert len(await interactions(runtime, tenant_id)) == 1


async def test_numbers_as_strings_missing_and_unknown_fields_are_tolerated(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    content = {"action_type": "1", "action_time": "1765000000", "unknown_field": {"x": 1}}
    body = envelope("new_follow_action", content, from_user="cust-f", to_user=business, brand_new_top_level="ignored")
    assert (await deliver(anonymous_client, body)).status_code == 200
    body = envelope("new_video_digg", {"item_id": "@9VwKzuuES8gmaXS"}, from_user="cust-f", to_user=business)  # no time, no action_type
    assert (await deliver(anonymous_client, body)).status_code == 200
    body = envelope("new_follow_action", {"action_type": 2}, from_user="cust-f", to_user=business)
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    rows = await interactions(runtime, tenant_id)
    assert sorted(r.kind for r in rows) == ["follow", "like", "unfollow"]
    follow = next(r for r in rows if r.kind == "follow")
    assert follow.occurred_at.timestamp() == 1765000000
    assert next(r for r in rows if r.kind == "like").payload["item_id"] == "@9VwKzuuES8gmaXS"


async def test_an_unknown_event_type_is_kept_as_ignored_not_an_error(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    body = envelope("im_group_receive_msg", {"text": "hi all"}, from_user="cust-g", to_user=business)
    for _ in range(2):
        assert (await deliver(anonymous_client, body, msg_id="G-1")).status_code == 200
    (row,) = await kept(runtime, tenant_id)
    assert (row.event, row.status, row.account_open_id) == ("im_group_receive_msg", "ignored", business)
    assert await inbox_rows(runtime, tenant_id) == []


async def test_entering_a_chat_keeps_the_ad_attribution_on_the_interaction(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    ad = {"adv_id": "1700000001", "ad_id": "ad-9", "ad_name": "双十二", "creative_id": "cr-1", "promotion_id": "p-3"}
    content = {"scene_type": "3", "objectId": "item-55", "ad_info": ad, "create_time": "1765000000000"}
    body = envelope("im_enter_direct_msg", content, from_user="cust-ad", to_user=business)
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert row.kind == "chat_entered" and row.payload["ad_info"] == ad and row.payload["objectId"] == "item-55"


async def test_a_comment_is_recorded_for_the_commenter_with_its_ids(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    content = {
        "comment_id": "@c1/+=",
        "comment_user_id": "cust-commenter",
        "content": "多少钱?",
        "create_time": 1765000000,
        "digg_count": "3",
        "reply_to_item_id": "@item/+=",
    }
    body = envelope("item_comment_reply", content, from_user="cust-commenter", to_user=business)
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert (row.kind, row.text) == ("comment", "多少钱?")
    assert {k: row.payload[k] for k in ("comment_id", "item_id", "digg_count")} == {
        "comment_id": "@c1/+=",
        "item_id": "@item/+=",
        "digg_count": 3,
    }


@pytest.mark.parametrize("event", ["dial_phone", "website_contact", "personal_tab_contact"])
async def test_a_lead_event_puts_its_answers_on_the_customer_and_the_phone_among_their_phones(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, event: str
) -> None:
    customer = f"cust-lead-{secrets.token_hex(3)}"
    content = {"name": "王先生", "telephone": "13800138000", "city": "上海", "create_time": "1765000000"}
    body = envelope(event, content, from_user=customer, to_user=business)
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert row.kind == "lead" and row.payload["lead_type"] == event and row.payload["phone"] == "13800138000"
    async with runtime.session(tenant_id) as s:
        found = await s.get(Customer, (tenant_id, row.customer_id))
    assert found is not None
    assert found.attributes["douyin_lead"] == {"name": "王先生", "telephone": "13800138000", "city": "上海", "lead_type": event}
    assert any("13800138000" in p for p in found.phones)


async def test_a_lead_card_in_a_private_message_is_a_lead_with_the_form_answers(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    card = [{"label": "姓名", "value": "李女士"}, {"label": "手机号", "value": "139****0000"}]
    content = im_content("", "cust-card", message_type="retain_consult_card", card_id="card-1", card_status=1, card_data=card)
    body = envelope("im_receive_msg", content, from_user="cust-card", to_user=business)
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert row.kind == "lead" and row.payload["answers"] == {"姓名": "李女士", "手机号": "139****0000"}
    assert row.payload["phone"] is None  # a masked number is no contact point


async def test_a_message_the_business_typed_in_the_app_is_recorded_as_outbound(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    body = envelope("im_send_msg", im_content("您好,在的", "cust-out"), from_user=business, to_user="cust-out")
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await interactions(runtime, tenant_id)
    assert (row.kind, row.direction, row.text) == ("message_out", "out", "您好,在的")


async def test_the_echo_of_our_own_send_is_a_receipt_not_a_second_message(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.queues import outbox

    await deliver(anonymous_client, envelope("im_receive_msg", im_content("hi", "cust-echo"), from_user="cust-echo", to_user=business))
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        customer_id = (await s.execute(select(Identity.customer_id).where(Identity.external_id == "cust-echo"))).scalar_one()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row, _ = await outbox.send_message(
            tx, outbox.SendRequest(customer_id=customer_id, channel="douyin", text="你好!", idempotency_key="k1")
        )
    await outbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        sent = await s.get(OutboxMessage, (tenant_id, row.id))
    assert sent is not None and sent.status == "sent" and sent.provider_message_id
    echo = im_content("你好!", "cust-echo", message_id=sent.provider_message_id, source=CLIENT_KEY)
    assert (await deliver(anonymous_client, envelope("im_send_msg", echo, from_user=business, to_user="cust-echo"))).status_code == 200
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        after = await s.get(OutboxMessage, (tenant_id, row.id), populate_existing=True)
    assert after is not None and after.status == "delivered"
    assert [r.kind for r in await interactions(runtime, tenant_id)] == ["message_in", "message_out"]


async def test_unauthorize_disconnects_the_account_and_graphql_shows_it(
    anonymous_client: httpx.AsyncClient, graphql: Any, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    listed = (await graphql("{ douyinAccounts { openId status reason } }"))["data"]["douyinAccounts"]
    assert listed == [{"openId": business, "status": "CONNECTED", "reason": None}]
    body = envelope("unauthorize", {"scopes": ["im.direct_message"]}, from_user=business)
    for _ in range(2):
        assert (await deliver(anonymous_client, body, msg_id="UNAUTH-1")).status_code == 200
    listed = (await graphql("{ douyinAccounts { openId status reason } }"))["data"]["douyinAccounts"]
    assert listed[0]["status"] == "DISCONNECTED" and "revoked" in listed[0]["reason"]
    async with runtime.session(tenant_id) as s:
        row = await s.get(DouyinAuthorization, (tenant_id, business))
    assert row is not None and row.tokens == ""
    assert [(e.event, e.status) for e in await kept(runtime, tenant_id)] == [("unauthorize", "applied")]


async def test_a_customers_conversations_are_exported_and_erased_with_them(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import privacy

    await deliver(anonymous_client, envelope("im_receive_msg", im_content("hi", "cust-gdpr"), from_user="cust-gdpr", to_user=business))
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        customer_id = (await s.execute(select(Identity.customer_id).where(Identity.external_id == "cust-gdpr"))).scalar_one()
        exported = await privacy.export_customer_data(runtime, s, customer_id)
    (conversation,) = exported["plugins"]["douyin"]["conversations"]
    assert (conversation["open_id"], conversation["account_open_id"]) == ("cust-gdpr", business)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        erased = await privacy.erase_customer(tx, customer_id)
    assert erased["douyin.conversations"] == 1
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(DouyinConversation))).scalars().all() == []
    assert privacy.personal_data_gaps(runtime) == []
