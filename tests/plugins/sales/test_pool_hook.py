"""Return rules other plugins contribute through ``guanxi_pool_return_rules`` (issue 20 item 3):
the test-fixture plugin ``loyalty`` offers "no purchase for N days"; a pool that applies it gives
back a lapsed member's lead and warns the holder of one that lapses tomorrow, exactly like the
sales plugin's own deals rules, which come through the same hook. Unknown rules and parameters
out of range are refused naming them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer, Notification
from guanxi.core.runtime import Runtime
from guanxi.core.services import interactions
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import pool as svc
from tests.plugins.sales.conftest import CLAIM, PUT, Team, new_customer

pytestmark = pytest.mark.plugins("sales", "loyalty")

CREATE = """mutation($input: CreateLeadPoolInput!) { createLeadPool(input: $input) {
  pool { key returnRules { rule value unit text } returnAfterContractDays } errors { code field message } } }"""


async def _create(team: Team, rules: list[dict[str, Any]], key: str = "members") -> dict[str, Any]:
    body = await team.call["admin"](CREATE, {"input": {"key": key, "name": "会员", "returnRules": rules}})
    payload: dict[str, Any] = body["data"]["createLeadPool"]
    return payload


async def _held_lead(runtime: Runtime, team: Team, name: str, bought_days_ago: float | None, now: dt.datetime) -> str:
    cid = await new_customer(runtime, team.tenant_id, name, owner=team.users["mia"])
    if bought_days_ago is not None:
        async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
            at = now - dt.timedelta(days=bought_days_ago)
            data = interactions.InteractionInput(
                customer_id=from_global_id(cid, "Customer"), channel="shop", kind="purchase", occurred_at=at
            )
            await interactions.record_interaction(tx, data)
    assert (await team.call["mia"](PUT, {"id": cid, "pool": "members"}))["data"]["putLeadInPool"]["errors"] == []
    assert (await team.call["li"](CLAIM, {"id": cid}))["data"]["claimLead"]["errors"] == []
    return cid


async def test_the_tenants_plugins_offer_their_rules_and_a_pool_applies_them_with_a_parameter(team: Team) -> None:
    """poolReturnRules lists the sales plugin's deals rules and loyalty's, with units and ranges;
    a pool stores each rule it applies with its parameter."""
    offered = (await team.call["mia"]("{ poolReturnRules { key unit minValue maxValue } }"))["data"]["poolReturnRules"]
    assert offered == [
        {"key": "loyalty.no_purchase", "unit": "DAYS", "minValue": 1, "maxValue": 365},
        {"key": "sales.contract_lapsed", "unit": "DAYS", "minValue": 1, "maxValue": 3650},
        {"key": "sales.no_won_deal", "unit": "MONTHS", "minValue": 1, "maxValue": 120},
    ]
    made = await _create(team, [{"rule": "loyalty.no_purchase", "value": 30}, {"rule": "sales.contract_lapsed", "value": 60}])
    assert made == {
        "pool": {
            "key": "members",
            "returnRules": [
                {"rule": "loyalty.no_purchase", "value": 30, "unit": "DAYS", "text": "no purchase for 30 days"},
                {
                    "rule": "sales.contract_lapsed",
                    "value": 60,
                    "unit": "DAYS",
                    "text": "60 days after the last contract ended without a new one",
                },
            ],
            "returnAfterContractDays": 60,
        },
        "errors": [],
    }


@pytest.mark.parametrize(
    ("rules", "needle"),
    [
        ([{"rule": "pigeon.no_coo", "value": 3}], "no return rule 'pigeon.no_coo'"),
        ([{"rule": "loyalty.no_purchase", "value": 0}], "loyalty.no_purchase takes 1 to 365 days"),
        ([{"rule": "sales.no_won_deal", "value": 121}], "sales.no_won_deal takes 1 to 120 months"),
        ([{"rule": "loyalty.no_purchase", "value": 3}, {"rule": "loyalty.no_purchase", "value": 4}], "twice"),
    ],
)
async def test_an_unknown_rule_or_a_parameter_out_of_range_is_a_validation_error_naming_it(
    team: Team, rules: list[dict[str, Any]], needle: str
) -> None:
    made = await _create(team, rules)
    assert made["pool"] is None
    (error,) = made["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", "returnRules") and needle in error["message"], error
    assert (await team.call["admin"]("{ leadPools { key } }"))["data"]["leadPools"] == []


async def test_a_third_party_rule_returns_lapsed_leads_and_warns_the_holder_a_day_before(runtime: Runtime, team: Team) -> None:
    """Under "no purchase for 30 days": the member who bought 40 days ago goes back (history names
    the rule), the one who bought 29.5 days ago stays and li is told once; a day later that one
    goes back too; a recent buyer stays throughout."""
    assert (await _create(team, [{"rule": "loyalty.no_purchase", "value": 30}]))["errors"] == []
    now = dt.datetime.now(dt.UTC)
    lapsed = await _held_lead(runtime, team, "lapsed", 40, now)
    soon = await _held_lead(runtime, team, "soon", 29.5, now)
    recent = await _held_lead(runtime, team, "recent", 5, now)
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k1") == (1, 1)
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k2") == (0, 0)  # warned once per hold
    ids = {name: from_global_id(gid, "Customer") for name, gid in (("lapsed", lapsed), ("soon", soon), ("recent", recent))}
    async with runtime.session(team.tenant_id) as s:
        owners = dict((await s.execute(select(Customer.id, Customer.owner_id).where(Customer.id.in_(ids.values())))).all())
        (note,) = (await s.scalars(select(Notification).where(Notification.user_id == team.users["li"]))).all()
    assert owners == {ids["lapsed"]: None, ids["soon"]: team.users["li"], ids["recent"]: team.users["li"]}
    assert note.kind == svc.RETURN_NOTICE and note.title.startswith("soon ") and "tomorrow" in note.title
    assert note.body == "No purchase for 30 days tomorrow."
    history = await team.call["admin"]("query($id: ID!) { customer(id: $id) { poolHistory { action rule reason } } }", {"id": lapsed})
    assert history["data"]["customer"]["poolHistory"][-1] == {
        "action": "return",
        "rule": "no purchase for 30 days",
        "reason": "no purchase for 30 days",
    }
    assert await svc.run_return_rules(runtime, team.tenant_id, now + dt.timedelta(days=1), "k3") == (1, 0)
    async with runtime.session(team.tenant_id) as s:
        assert (await s.execute(select(Customer.owner_id).where(Customer.id == ids["recent"]))).scalar_one() == team.users["li"]


async def test_a_rule_whose_plugin_the_tenant_disabled_is_no_longer_offered_nor_applied(runtime: Runtime, team: Team) -> None:
    """The pool keeps the setting (shown without unit or text); the job skips it; a new pool
    cannot name it."""
    from guanxi.core.services.tenant_plugins import set_plugin_enabled

    assert (await _create(team, [{"rule": "loyalty.no_purchase", "value": 30}]))["errors"] == []
    now = dt.datetime.now(dt.UTC)
    await _held_lead(runtime, team, "lapsed", 40, now)
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await set_plugin_enabled(tx, "loyalty", False)
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k1") == (0, 0)
    pools = (await team.call["admin"]("{ leadPools { returnRules { rule value unit text } } }"))["data"]["leadPools"]
    assert pools == [{"returnRules": [{"rule": "loyalty.no_purchase", "value": 30, "unit": None, "text": None}]}]
    made = await _create(team, [{"rule": "loyalty.no_purchase", "value": 30}], key="other")
    assert made["errors"][0]["code"] == "VALIDATION" and "loyalty.no_purchase" in made["errors"][0]["message"]
