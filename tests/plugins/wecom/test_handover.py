"""Staff handover on WeCom (issue 20 item 6): handing a salesperson's customers to a colleague
transfers their WeCom follow relations through WeCom's transfer API (在职继承; 离职继承 for a
member who left), once the handover commits; customers going back to a pool stay put."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer, User
from guanxi.core.services import users
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.wecom.state import wecom_state
from guanxi.testing.plugin import GraphQL
from tests.plugins.wecom.conftest import Sender, corp_config, event_xml, settle
from tests.plugins.wecom.fake_wecom import FakeWecom

pytestmark = pytest.mark.plugins("wecom", "sales")
HAND_OVER = (
    """mutation($input: HandOverInput!) { handOverCustomers(input: $input) { result { customers plugins } errors { code message } } }"""
)


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    staff = {"zhangsan": "zhangsan@acme.example", "lisi": "lisi@acme.example"}
    return {"wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 2, "corps": [corp_config(staff=staff)]}}


async def _setup(runtime: Runtime, tenant_id: uuid.UUID, sender: Sender) -> dict[str, uuid.UUID]:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        zhang = await users.create_user(tx, email="zhangsan@acme.example", name="张三", role="sales")
        li = await users.create_user(tx, email="lisi@acme.example", name="李四", role="sales")
        wang = await users.create_user(tx, email="wang@acme.example", name="王五", role="sales")  # not a corp member
    for external in ("wmEXT001", "wmEXT002"):
        await sender.send(event_xml("add_external_contact", external=external, userid="zhangsan"))
    await settle(runtime, tenant_id)
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(Customer).values(owner_id=zhang.id))
    return {"zhang": zhang.id, "li": li.id, "wang": wang.id}


async def _hand_over(graphql: GraphQL, frm: uuid.UUID, **target: Any) -> dict[str, Any]:
    variables = {"input": {"fromUserId": to_global_id("User", frm), "reason": "离职", **target}}
    payload = (await graphql(HAND_OVER, variables))["data"]["handOverCustomers"]
    assert payload["errors"] == [], payload
    return dict(payload["result"])


async def test_handing_over_to_a_colleague_transfers_the_follow_relations_on_wecom(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    people = await _setup(runtime, tenant_id, sender)
    result = await _hand_over(graphql, people["zhang"], toUserId=to_global_id("User", people["li"]))
    assert (result["customers"], result["plugins"]["wecom"]) == (2, {"follows": 2})  # (sales reports its open deals beside)
    await wecom_state(runtime).drain()
    (call,) = fake_wecom.called("/externalcontact/transfer_customer")
    assert call == {"handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userid": ["wmEXT001", "wmEXT002"]}
    assert fake_wecom.called("/externalcontact/resigned/transfer_customer") == []


async def test_a_member_who_left_is_handed_over_through_the_resigned_transfer_and_a_pool_or_unmapped_user_transfers_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, graphql: GraphQL
) -> None:
    people = await _setup(runtime, tenant_id, sender)
    await graphql('mutation { createLeadPool(input: {key: "east", name: "East"}) { errors { code } } }')
    async with runtime.session(tenant_id) as s:
        first = (await s.scalars(select(Customer.id).order_by(Customer.created_at, Customer.id))).first()
    assert first is not None
    # back to a pool: WeCom transfers only to a member, so the relation stays
    result = await _hand_over(graphql, people["zhang"], pool="east", customerIds=[to_global_id("Customer", first)])
    assert result["customers"] == 1 and "wecom" not in result["plugins"]
    # to a user who is no corp member: nothing to transfer to
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(Customer).values(owner_id=people["zhang"]))
    result = await _hand_over(graphql, people["zhang"], toUserId=to_global_id("User", people["wang"]))
    assert result["plugins"]["wecom"] == {"follows": 0}
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(Customer).values(owner_id=people["zhang"]))
        await s.execute(update(User).where(User.id == people["zhang"]).values(active=False))
    result = await _hand_over(graphql, people["zhang"], toUserId=to_global_id("User", people["li"]))
    assert result["plugins"]["wecom"] == {"follows": 2}
    await wecom_state(runtime).drain()
    assert fake_wecom.called("/externalcontact/transfer_customer") == []
    (call,) = fake_wecom.called("/externalcontact/resigned/transfer_customer")
    assert call["handover_userid"] == "zhangsan" and call["takeover_userid"] == "lisi"
