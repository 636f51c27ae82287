"""A three-level referral chain from WeCom add events with ``State``, driven through the WeCom
plugin's real callback route with payloads encrypted by wechatpy; the two plugins meet only in
core's hooks (entry points, contact arrived/left)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.services.users import create_user
from guanxi.graphql.ids import to_global_id
from guanxi.testing import GraphQL
from tests.plugins.referral.conftest import PUBLIC_URL, VISITOR_SECRET, create_campaign, customer_id_of, mint
from tests.plugins.referral.test_chain import TREE
from tests.plugins.wecom import conftest as wecom_suite
from tests.plugins.wecom.conftest import Sender, corp_config, event_xml, settle
from tests.plugins.wecom.fake_wecom import FakeWecom

pytestmark = pytest.mark.plugins("wecom", "referral")

# the WeCom suite's fixtures: its fake WeCom API server and the wechatpy-encrypting sender
wecom_server, fake_wecom, sender = wecom_suite.wecom_server, wecom_suite.fake_wecom, wecom_suite.sender

NAMES = {"wmBO": "Bo", "wmCHEN": "Chen", "wmDAI": "Dai"}


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom, tmp_path: Any) -> dict[str, dict[str, Any]]:
    return {
        "wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 2, "corps": [corp_config(welcome={})]},
        "referral": {
            "public_url": PUBLIC_URL,
            "cooldown_hours": 0.0,
            "poster_cache_dir": str(tmp_path / "posters"),
            "poster_backgrounds_dir": str(tmp_path / "backgrounds"),
            "visitor_secret": VISITOR_SECRET,
        },
    }


def profiles(query: dict[str, str], _body: Any) -> dict[str, Any]:
    """externalcontact/get of the fake WeCom server: each external contact with its own name."""
    external = query.get("external_userid", "")
    return {
        "errcode": 0,
        "errmsg": "ok",
        "external_contact": {"external_userid": external, "name": NAMES.get(external, external), "type": 1},
        "follow_user": [{"userid": "zhangsan", "createtime": 1700000000, "add_way": 1, "tags": []}],
    }


async def add(sender: Sender, runtime: Runtime, tenant_id: uuid.UUID, external: str, state: str) -> None:
    response = await sender.send(event_xml("add_external_contact", external=external, State=state))
    assert (response.status_code, response.content) == (200, b"")
    await settle(runtime, tenant_id)


async def test_three_levels_of_wecom_contacts_added_through_referral_qr_codes(
    graphql: GraphQL, sender: Sender, fake_wecom: FakeWecom, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    fake_wecom.responses["/externalcontact/get"] = profiles
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        staff = await create_user(tx, email="zhangsan@acme.example", name="张三")
    await create_campaign(graphql)

    share = await mint(graphql, user=to_global_id("User", staff.id))
    # the WeCom plugin answered the entry-point hook with a contact-way QR whose state is the token
    assert {"channel": "wecom", "kind": "qr", "url": "https://wework.qpic.cn/wwpic/qr-1.png"} in share["entryPoints"]
    (way,) = fake_wecom.called("/externalcontact/add_contact_way")
    assert way["state"] == share["token"] and way["user"] == ["zhangsan"] and len(share["token"]) <= 30

    await add(sender, runtime, tenant_id, "wmBO", share["token"])
    bo = await customer_id_of(runtime, tenant_id, "wmBO", channel="wecom")
    await add(sender, runtime, tenant_id, "wmCHEN", (await mint(graphql, customer=bo))["token"])
    chen = await customer_id_of(runtime, tenant_id, "wmCHEN", channel="wecom")
    await add(sender, runtime, tenant_id, "wmDAI", (await mint(graphql, customer=chen))["token"])
    dai = await customer_id_of(runtime, tenant_id, "wmDAI", channel="wecom")

    tree = (await graphql(TREE, {"id": bo, "depth": 5}))["data"]["customer"]
    assert tree["displayName"] == "Bo"
    assert (tree["referredBy"]["channel"], tree["referredBy"]["user"]) == ("wecom", {"name": "张三"})
    assert [(e["depth"], e["node"]["displayName"], e["channel"]) for e in tree["referrals"]["edges"]] == [
        (1, "Chen", "wecom"),
        (2, "Dai", "wecom"),
    ]
    assert tree["referralStats"] == {"direct": 1, "indirect": 1, "converted": 0}

    # Dai brings Eve; the same callback replayed (same signature and nonce) changes nothing
    query, body = sender.envelope(
        event_xml("add_external_contact", external="wmEVE", State=(await mint(graphql, customer=dai))["token"]), nonce="424242"
    )
    assert (await sender.post(query, body)).status_code == 200
    await settle(runtime, tenant_id)
    assert (await sender.post(query, body)).status_code == 200
    await settle(runtime, tenant_id)
    stats = (await graphql(TREE, {"id": dai, "depth": 5}))["data"]["customer"]["referralStats"]
    assert stats == {"direct": 1, "indirect": 0, "converted": 0}

    # Dai deletes the salesperson (del_follow_user): Chen's credit for Dai is reversed
    await sender.send(event_xml("del_follow_user", external="wmDAI"))
    await settle(runtime, tenant_id)
    chen_tree = (await graphql(TREE, {"id": chen, "depth": 5}))["data"]["customer"]
    assert chen_tree["referrals"]["edges"] == [] and chen_tree["referralStats"]["direct"] == 0
