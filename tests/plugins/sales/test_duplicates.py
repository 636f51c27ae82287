"""duplicateSuggestions: customers sharing a phone, an e-mail or a union id with one customer, or
its name, with reasons and a confidence, most likely first; never another salesperson's."""

from __future__ import annotations

import pytest

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities, merge
from guanxi.graphql.ids import from_global_id, to_global_id
from tests.plugins.sales.conftest import Team

pytestmark = pytest.mark.plugins("sales")

QUERY = """query($id: ID!) { duplicateSuggestions(customerId: $id) { customer { id displayName } reasons confidence } }"""


async def test_suggestions_name_their_reasons_rank_by_confidence_and_skip_merged_and_unseen(runtime: Runtime, team: Team) -> None:
    ctx = RequestContext(tenant_id=team.tenant_id)
    async with runtime.transaction(ctx) as tx:
        base = await customers.create_customer(
            tx, customers.CustomerInput(display_name="Wang Fang", phones=["13912345678"], emails=["wf@mail.cn"], owner_id=team.users["li"])
        )
        await identities.attach_identity(tx, base.id, identities.IdentityInput(channel="wechat", external_id="o-1", union_id="u-1"))
        phone_and_name = await customers.create_customer(
            tx, customers.CustomerInput(display_name="wang  fang", phones=["139 1234 5678"], owner_id=team.users["li"])
        )
        email = await customers.create_customer(
            tx, customers.CustomerInput(display_name="F. Wang", emails=["WF@mail.cn"], owner_id=team.users["li"])
        )
        union = await customers.create_customer(tx, customers.CustomerInput(display_name="芳", owner_id=team.users["li"]))
        await identities.attach_identity(tx, union.id, identities.IdentityInput(channel="wecom", external_id="wm-1", union_id="u-1"))
        others = await customers.create_customer(
            tx, customers.CustomerInput(display_name="Wang Fang", phones=["13912345678"], owner_id=team.users["wu"])
        )
        merged = await customers.create_customer(tx, customers.CustomerInput(display_name="Wang Fang", owner_id=team.users["li"]))
        await merge.merge_customers(tx, email.id, merged.id)
        await customers.create_customer(
            tx, customers.CustomerInput(display_name="Li Lei", phones=["13800000000"], owner_id=team.users["li"])
        )
    body = await team.call["li"](QUERY, {"id": to_global_id("Customer", base.id)})
    assert not body.get("errors"), body
    got = [(from_global_id(s["customer"]["id"], "Customer"), s["reasons"], s["confidence"]) for s in body["data"]["duplicateSuggestions"]]
    assert got == [
        (union.id, ["union_id"], 0.95),
        (phone_and_name.id, ["phone", "name"], 0.94),
        (email.id, ["email"], 0.85),
    ], got  # most likely first
    by_id = {g[0]: g for g in got}
    # wu's customer shares the phone and the name, but li may not see it; the merged tombstone is gone
    assert others.id not in by_id and merged.id not in by_id
    admin = await team.call["admin"](QUERY, {"id": to_global_id("Customer", base.id)})
    assert others.id in {from_global_id(s["customer"]["id"], "Customer") for s in admin["data"]["duplicateSuggestions"]}
    # another salesperson asking about li's customer gets nothing
    assert (await team.call["wu"](QUERY, {"id": to_global_id("Customer", base.id)}))["data"]["duplicateSuggestions"] == []
