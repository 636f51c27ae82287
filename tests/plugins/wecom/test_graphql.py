"""GraphQL: ``Customer.wecom`` (followers, remarks, add way, state, tags) without N+1, and the
mutations createWecomContactWay, syncWecomTags and wecomMassSend against the fake WeCom."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Identity
from guanxi.core.services import tags, users
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.wecom.models import WecomContactWay, WecomFollow, WecomMassSend
from guanxi.testing import GraphQL
from guanxi.testing.sql import count_statements
from tests.plugins.wecom.conftest import Sender, event_xml, settle
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

pytestmark = pytest.mark.plugins("wecom")

TAG_LIST: dict[str, Any] = {
    "errcode": 0,
    "errmsg": "ok",
    "tag_group": [{"group_id": "g1", "group_name": "行业", "tag": [{"id": "et-edu", "name": "教育"}, {"id": "et-fin", "name": "金融"}]}],
}


def detail(external: str, tag_ids: list[str]) -> dict[str, Any]:
    names = {"et-edu": "教育", "et-fin": "金融"}
    return {
        "errcode": 0,
        "external_contact": {"external_userid": external, "name": f"客户{external[-2:]}"},
        "follow_user": [
            {
                "userid": "zhangsan",
                "remark": f"备注{external[-2:]}",
                "add_way": 1,
                "state": "fair",
                "createtime": 1700000000,
                "tags": [{"group_name": "行业", "tag_name": names[t], "tag_id": t, "type": 1} for t in tag_ids],
            }
        ],
    }


async def arrive(runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake: FakeWecom, externals: list[str], tag_ids: list[str]) -> None:
    fake.responses["/externalcontact/get"] = lambda query, body: detail(query["external_userid"], tag_ids)
    for n, external in enumerate(externals):
        await sender.send(event_xml("add_external_contact", external=external, State="fair", create_time=int(time.time()) + n))
    await settle(runtime, tenant_id)


async def customer_id(runtime: Runtime, tenant_id: uuid.UUID, external: str) -> uuid.UUID:
    async with runtime.session(tenant_id) as s:
        return (await s.execute(select(Identity.customer_id).where(Identity.external_id == external))).scalar_one()


QUERY = """
query {
  customers(first: 20) {
    edges { node { displayName wecom { state addWay tags
      followers { corpId userid staffUserId status remark addWay state tags followedAt removedAt } } } }
  }
}
"""


async def test_customer_wecom_shows_followers_state_and_tags_in_a_fixed_number_of_queries(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        staff = await users.create_user(tx, email="zhangsan@acme.example", name="张三")
    await arrive(runtime, tenant_id, sender, fake_wecom, ["wm01", "wm02"], ["et-edu"])
    await graphql("{ __typename }")  # authenticates the test client's key (a lookup, once)
    await runtime.drain()  # and writes its last_used_at beside the request
    with count_statements(runtime.engine) as two:
        body = await graphql(QUERY)
    nodes = sorted((e["node"] for e in body["data"]["customers"]["edges"]), key=lambda n: n["displayName"])
    assert [n["displayName"] for n in nodes] == ["客户01", "客户02"]
    wecom = nodes[0]["wecom"]
    assert (wecom["state"], wecom["addWay"], wecom["tags"]) == ("fair", 1, ["行业/教育"])
    (follower,) = wecom["followers"]
    assert follower["userid"] == "zhangsan" and follower["status"] == "ACTIVE" and follower["remark"] == "备注01"
    assert follower["staffUserId"] == to_global_id("User", staff.id) and follower["removedAt"] is None

    await arrive(runtime, tenant_id, sender, fake_wecom, [f"wm{n:02d}" for n in range(3, 9)], ["et-edu", "et-fin"])
    with count_statements(runtime.engine) as eight:
        body = await graphql(QUERY)
    assert len(body["data"]["customers"]["edges"]) == 8
    assert len(eight) == len(two)  # follows, tags and staff load once per page, not per customer


async def test_a_customer_without_wecom_has_null(runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL) -> None:
    await graphql('mutation { createCustomer(input: {displayName: "Offline"}) { errors { message } } }')
    body = await graphql(QUERY)
    assert [e["node"]["wecom"] for e in body["data"]["customers"]["edges"]] == [None]


async def test_create_contact_way_returns_the_qr_code_and_remembers_it(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    body = await graphql(
        'mutation { createWecomContactWay(userid: "zhangsan", state: "spring-fair", remark: "展会") '
        "{ contactWay { configId qrCode state userid } errors { field code message } } }"
    )
    way = body["data"]["createWecomContactWay"]["contactWay"]
    assert way == {"configId": "cfg-1", "qrCode": "https://wework.qpic.cn/wwpic/qr-1.png", "state": "spring-fair", "userid": "zhangsan"}
    assert fake_wecom.called("/externalcontact/add_contact_way") == [
        {"type": 1, "scene": 2, "user": ["zhangsan"], "skip_verify": True, "state": "spring-fair", "remark": "展会"}
    ]
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(WecomContactWay.state))).scalars().all() == ["spring-fair"]
    too_long = await graphql(f'mutation {{ createWecomContactWay(userid: "u", state: "{"s" * 31}") {{ errors {{ field code }} }} }}')
    assert too_long["data"]["createWecomContactWay"]["errors"] == [{"field": "state", "code": "VALIDATION"}]
    fake_wecom.fail("/externalcontact/add_contact_way", 41054)
    failed = await graphql('mutation { createWecomContactWay(userid: "inactive") { contactWay { configId } errors { code detail } } }')
    assert failed["data"]["createWecomContactWay"] == {"contactWay": None, "errors": [{"code": "PROVIDER_ERROR", "detail": "WECOM_41054"}]}


async def test_sync_tags_pulls_creates_missing_and_pushes_core_tags_with_mark_tag(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    await arrive(runtime, tenant_id, sender, fake_wecom, ["wm01"], ["et-edu"])
    cid = await customer_id(runtime, tenant_id, "wm01")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # a marketer changes tags in Guanxi
        await tags.change_tags(tx, cid, add=["行业/金融", "行业/新能源"], remove=["行业/教育"])
    groups = [dict(TAG_LIST["tag_group"][0])]

    def tag_list(query: dict[str, str], body: Any) -> dict[str, Any]:
        return {"errcode": 0, "tag_group": groups}

    def add_tag(query: dict[str, str], body: Any) -> dict[str, Any]:
        groups[0] = {**groups[0], "tag": [*groups[0]["tag"], *({"id": f"et-{t['name']}", "name": t["name"]} for t in body["tag"])]}
        return {"errcode": 0, "tag_group": groups[0]}

    fake_wecom.responses["/externalcontact/get_corp_tag_list"] = tag_list
    fake_wecom.responses["/externalcontact/add_corp_tag"] = add_tag
    body = await graphql("mutation { syncWecomTags { sync { pulled created customersPushed } errors { message } } }")
    assert body["data"]["syncWecomTags"]["sync"] == {"pulled": 3, "created": 1, "customersPushed": 1}
    assert fake_wecom.called("/externalcontact/add_corp_tag") == [{"group_name": "行业", "tag": [{"name": "新能源"}]}]
    assert fake_wecom.called("/externalcontact/mark_tag") == [
        {"userid": "zhangsan", "external_userid": "wm01", "add_tag": ["et-fin", "et-新能源"], "remove_tag": ["et-edu"]}
    ]
    async with runtime.session(tenant_id) as s:  # API writes produce no callback: the local state follows
        follow = (await s.execute(select(WecomFollow))).scalar_one()
    assert sorted(follow.tag_ids) == ["et-fin", "et-新能源"]
    again = await graphql("mutation { syncWecomTags { sync { created customersPushed } } }")
    assert again["data"]["syncWecomTags"]["sync"] == {"created": 0, "customersPushed": 0}


async def test_mass_send_to_a_tag_segment_creates_one_task(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    await arrive(runtime, tenant_id, sender, fake_wecom, ["wm01", "wm02", "wm03"], ["et-edu"])
    fake_wecom.responses["/externalcontact/add_msg_template"] = {"errcode": 0, "fail_list": ["wm03"], "msgid": "msgGROUP1"}
    body = await graphql(
        'mutation($t: String!) { wecomMassSend(text: $t, tag: "行业/教育", sender: "zhangsan") '
        "{ massSend { msgid recipients failed } errors { field message } } }",
        {"t": "双十一活动开始了"},
    )
    assert body["data"]["wecomMassSend"]["massSend"] == {"msgid": "msgGROUP1", "recipients": 3, "failed": ["wm03"]}
    (task,) = fake_wecom.called("/externalcontact/add_msg_template")
    assert task == {
        "chat_type": "single",
        "external_userid": ["wm01", "wm02", "wm03"],
        "sender": "zhangsan",
        "text": {"content": "双十一活动开始了"},
    }
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(WecomMassSend))).scalar_one()
    assert (row.corp_id, row.recipients, row.failed) == (CORP_ID, 3, ["wm03"])
    empty = await graphql('mutation { wecomMassSend(text: "x", tag: "nobody/none") { errors { field code } } }')
    assert empty["data"]["wecomMassSend"]["errors"] == [{"field": "tag", "code": "VALIDATION"}]


async def test_mass_send_result_lists_who_was_reached(fake_wecom: FakeWecom, graphql: GraphQL) -> None:
    fake_wecom.responses["/externalcontact/get_group_msg_result"] = {
        "errcode": 0,
        "detail_list": [
            {"external_userid": "wm01", "userid": "zhangsan", "status": 1, "send_time": 1700000000},
            {"external_userid": "wm02", "userid": "zhangsan", "status": 0},
        ],
    }
    body = await graphql('query { wecomMassSendResult(msgid: "msgGROUP1") { externalUserid userid status sendTime } }')
    assert body["data"]["wecomMassSendResult"] == [
        {"externalUserid": "wm01", "userid": "zhangsan", "status": 1, "sendTime": "2023-11-14T22:13:20+00:00"},
        {"externalUserid": "wm02", "userid": "zhangsan", "status": 0, "sendTime": None},
    ]
    assert fake_wecom.called("/externalcontact/get_group_msg_result") == [{"msgid": "msgGROUP1"}]
    fake_wecom.fail("/externalcontact/get_group_msg_result", 48002)
    failed = await graphql('query { wecomMassSendResult(msgid: "x") { status } }', ok=False)
    assert [e["extensions"]["code"] for e in failed["errors"]] == ["WECOM_48002"]


OPT_OUT = 'mutation($c: ID!) { setConsent(customerId: $c, channel: "wecom", status: OPTED_OUT, source: "STOP") { errors { code } } }'
MASS_SEND = (
    'mutation($t: String!, $tag: String, $ids: [ID!]) { wecomMassSend(text: $t, tag: $tag, customerIds: $ids, sender: "zhangsan") '
    "{ massSend { msgid recipients failed skipped { customerId code message } } errors { field code message } } }"
)


async def test_mass_send_skips_who_opted_out_like_send_message_and_puts_it_on_each_timeline(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    await arrive(runtime, tenant_id, sender, fake_wecom, ["wm01", "wm02", "wm03"], ["et-edu"])
    out = to_global_id("Customer", await customer_id(runtime, tenant_id, "wm02"))
    await graphql(OPT_OUT, {"c": out})
    # sendMessage refuses that customer with NO_CONSENT ...
    refused = await graphql(
        'mutation($c: ID!) { sendMessage(customerId: $c, channel: "wecom", text: "hi", idempotencyKey: "k1") { errors { code } } }',
        {"c": out},
    )
    assert refused["data"]["sendMessage"]["errors"] == [{"code": "NO_CONSENT"}]
    # ... and the mass send leaves them out, says so, and sends to the others
    fake_wecom.responses["/externalcontact/add_msg_template"] = {"errcode": 0, "fail_list": [], "msgid": "msgC1"}
    body = await graphql(MASS_SEND, {"t": "新品上市", "tag": "行业/教育"})
    mass = body["data"]["wecomMassSend"]["massSend"]
    assert mass["recipients"] == 2
    assert mass["skipped"] == [{"customerId": out, "code": "NO_CONSENT", "message": "the customer opted out of wecom; nothing was sent"}]
    (task,) = fake_wecom.called("/externalcontact/add_msg_template")
    assert task["external_userid"] == ["wm01", "wm03"]
    timeline = """query($c: ID!) { customer(id: $c) { interactions(first: 10) { edges { node { kind direction text } } } } }"""
    for external, expected in (("wm01", 1), ("wm02", 0), ("wm03", 1)):
        cid = to_global_id("Customer", await customer_id(runtime, tenant_id, external))
        edges = (await graphql(timeline, {"c": cid}))["data"]["customer"]["interactions"]["edges"]
        sent = [e["node"] for e in edges if e["node"]["kind"] == "mass_send"]
        assert [(n["kind"], n["direction"].lower(), n["text"]) for n in sent] == [("mass_send", "out", "新品上市")] * expected


async def test_a_mass_send_to_only_opted_out_customers_is_refused_with_no_consent_and_sends_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    await arrive(runtime, tenant_id, sender, fake_wecom, ["wm01"], ["et-edu"])
    only = to_global_id("Customer", await customer_id(runtime, tenant_id, "wm01"))
    await graphql(OPT_OUT, {"c": only})
    body = await graphql(MASS_SEND, {"t": "hi", "ids": [only]})
    assert body["data"]["wecomMassSend"]["massSend"] is None
    assert [e["code"] for e in body["data"]["wecomMassSend"]["errors"]] == ["NO_CONSENT"]
    assert fake_wecom.called("/externalcontact/add_msg_template") == []


async def test_no_welcome_message_for_a_customer_who_opted_out_and_adds_staff_again(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    fake_wecom.responses["/externalcontact/get"] = lambda query, body: detail(query["external_userid"], ["et-edu"])
    await sender.send(event_xml("add_external_contact", external="wm01", State="fair", WelcomeCode="WC-1"))
    await settle(runtime, tenant_id)
    assert len(fake_wecom.called("/externalcontact/send_welcome_msg")) == 1
    await graphql(OPT_OUT, {"c": to_global_id("Customer", await customer_id(runtime, tenant_id, "wm01"))})
    later = int(time.time()) + 60
    again = event_xml("add_external_contact", external="wm01", userid="lisi", State="fair", WelcomeCode="WC-2", create_time=later)
    await sender.send(again)
    await settle(runtime, tenant_id)
    assert len(fake_wecom.called("/externalcontact/send_welcome_msg")) == 1  # not a second one
