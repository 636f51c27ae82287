"""Merge undo (issue 20 item 7): a merge of a duplicate and then its undo leave the data as it
was (a dump of both customers' rows, core's and the sales plugin's, compared before and after);
an undo is refused once the survivor was merged again or took in another customer; admins and
managers may undo, salespeople may not."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import (
    Consent,
    ContactPoint,
    Customer,
    CustomerFieldValue,
    CustomerMerge,
    CustomerTag,
    Identity,
    Interaction,
    StageChange,
    Task,
)
from guanxi.core.services.merge_undo import row_json
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import followups
from guanxi.plugins.sales.deals.models import CUSTOMER_TABLES as DEAL_TABLES
from guanxi.plugins.sales.models import SalesFollowUpRun, SalesPoolLead, SalesPoolMove
from tests.plugins.sales.conftest import Team

pytestmark = pytest.mark.plugins("sales")

MERGE = """mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m) {
  plan { identities interactions tags tasks consents filledFields } errors { code message } } }"""
UNDO = """mutation($m: ID!) { undoMerge(mergedId: $m) {
  customer { id displayName phones company tags { label } } survivor { id phones company } errors { code field message } } }"""
CREATE = "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } errors { code message } } }"
ATTACH = """mutation($c: ID!, $x: String!) { attachIdentity(customerId: $c, input: {channel: "wecom", externalId: $x, nickname: $x}) {
  errors { code } } }"""
RECORD = "mutation($i: RecordInteractionInput!) { recordInteraction(input: $i) { errors { code } } }"
ROWS: list[Any] = [
    Identity,
    Interaction,
    Task,
    StageChange,
    CustomerTag,
    Consent,
    CustomerFieldValue,
    ContactPoint,
    SalesPoolMove,
    SalesPoolLead,
    SalesFollowUpRun,
    *DEAL_TABLES,
]


async def dump(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Every customer with every row that belongs to it (by table, sorted), the updated_at stamp left out."""
    async with runtime.session(tenant_id) as s:
        out: dict[str, Any] = {
            "customers": sorted(
                ({k: v for k, v in row_json(c).items() if k != "updated_at"} for c in (await s.scalars(select(Customer))).all()),
                key=lambda r: str(r["id"]),
            )
        }
        for model in ROWS:
            out[model.__tablename__] = sorted(
                (row_json(r) for r in (await s.scalars(select(model))).all()), key=lambda r: sorted((k, str(v)) for k, v in r.items())
            )
    return out


async def _ok(call: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = await call(query, variables or {})
    payload = next(iter(body["data"].values()))
    if isinstance(payload, dict) and "errors" in payload:
        assert payload["errors"] == [], body
    return dict(payload) if isinstance(payload, dict) else {}


async def _rich_customer(
    admin: Any, name: str, phones: list[str], tags: list[str], fields: dict[str, Any], consent: str, **extra: Any
) -> str:
    attributes = {name: 1, "shared": name}
    made = await _ok(
        admin, CREATE, {"i": {"displayName": name, "phones": phones, "tags": tags, "fields": fields, "attributes": attributes, **extra}}
    )
    cid = made["customer"]["id"]
    consent_op = "mutation($c: ID!, $ch: String!) { setConsent(customerId: $c, channel: $ch, status: OPTED_IN) { errors { code } } }"
    await _ok(admin, consent_op, {"c": cid, "ch": consent})
    await _ok(admin, ATTACH, {"c": cid, "x": f"wm-{name}"})
    for i in range(2):
        at = f"2026-11-0{i + 1 + len(name) % 3}T08:00:00+00:00"
        await _ok(admin, RECORD, {"i": {"customerId": cid, "channel": "wecom", "kind": "message", "text": f"{name} {i}", "occurredAt": at}})
    task = {"customerId": cid, "title": f"call {name}"}
    await _ok(admin, "mutation($i: CreateTaskInput!) { createTask(input: $i) { errors { code } } }", {"i": task})
    await _ok(admin, 'mutation($c: ID!) { moveCustomerStage(id: $c, stage: "mql") { errors { code } } }', {"c": cid})
    return str(cid)


async def test_a_merge_then_its_undo_leaves_the_data_as_before(runtime: Runtime, team: Team) -> None:
    admin = team.call["admin"]
    define = "mutation($i: DefineCustomFieldInput!) { defineCustomField(input: $i) { errors { code } } }"
    await _ok(admin, define, {"i": {"key": "grade", "label": "Grade", "kind": "SINGLE_CHOICE", "choices": ["A", "B"]}})
    await _ok(admin, define, {"i": {"key": "budget", "label": "Budget", "kind": "NUMBER"}})
    await _ok(admin, 'mutation { createLeadPool(input: {key: "north", name: "North"}) { errors { code } } }')
    survivor = await _rich_customer(admin, "Wang", ["+8613900000001"], ["vip"], {"grade": "A"}, "wecom")
    merged = await _rich_customer(
        admin, "Wang Fang", ["+8613900000001", "+8613900000002"], ["vip", "hot"], {"grade": "B", "budget": 5}, "wecom", company="Star Edu"
    )
    await _ok(
        admin, 'mutation($c: ID!) { setConsent(customerId: $c, channel: "sms", status: OPTED_OUT) { errors { code } } }', {"c": merged}
    )
    await _ok(
        admin, 'mutation($c: ID!) { putLeadInPool(customerId: $c, pool: "north", reason: "cold") { errors { code } } }', {"c": merged}
    )
    # follow-up runs: plan "all" gave both customers a task this period, plan "hot" the merged one only; and a deal
    plan = "mutation($i: CreateFollowUpPlanInput!) { createFollowUpPlan(input: $i) { errors { code } } }"
    await _ok(admin, plan, {"i": {"key": "all", "name": "All", "everyDays": 30, "taskTitle": "call"}})
    await _ok(admin, plan, {"i": {"key": "hot", "name": "Hot", "everyDays": 30, "taskTitle": "call hot", "filter": {"tagsAny": ["hot"]}}})
    for cid in (survivor, merged):
        owner = "mutation($c: ID!, $o: ID!) { updateCustomer(id: $c, input: {ownerId: $o}) { errors { code } } }"
        await _ok(admin, owner, {"c": cid, "o": team.gid("li")})
    assert await followups.run_plans(runtime, team.tenant_id, dt.datetime.now(dt.UTC)) == 3
    deal = 'mutation($c: ID!) { createDeal(input: {customerId: $c, title: "Course", amount: 800}) { errors { code } } }'
    await _ok(admin, deal, {"c": merged})
    await runtime.drain()
    before = await dump(runtime, team.tenant_id)

    plan = await _ok(admin, MERGE, {"s": survivor, "m": merged})
    assert plan["plan"]["identities"] == 1 and plan["plan"]["tags"] == 1 and plan["plan"]["consents"] == 1
    await runtime.drain()  # the plugins' merge hooks (the sales pool rows follow the survivor)
    assert await dump(runtime, team.tenant_id) != before
    async with runtime.session(team.tenant_id) as s:
        assert (await s.scalars(select(SalesPoolLead.customer_id))).all() == [from_global_id(survivor, "Customer")]
        runs = (await s.scalars(select(SalesFollowUpRun.customer_id))).all()
        assert runs == [from_global_id(survivor, "Customer")] * 2  # its own of "all", the merged one's of "hot"
    assert await followups.run_plans(runtime, team.tenant_id, dt.datetime.now(dt.UTC)) == 0  # no second task this period

    undone = await _ok(admin, UNDO, {"m": merged})
    assert undone["customer"]["id"] == merged and undone["customer"]["company"] == "Star Edu"
    assert sorted(t["label"] for t in undone["customer"]["tags"]) == ["hot", "vip"]
    assert undone["survivor"]["phones"] == ["+8613900000001"] and undone["survivor"]["company"] is None
    await runtime.drain()
    assert await dump(runtime, team.tenant_id) == before
    # once undone, the same merge cannot be undone again; the customer can be merged again
    again = (await admin(UNDO, {"m": merged}))["data"]["undoMerge"]["errors"]
    assert again[0]["code"] == "VALIDATION" and again[0]["field"] == "mergedId"
    await _ok(admin, MERGE, {"s": survivor, "m": merged})
    await runtime.drain()
    await _ok(admin, UNDO, {"m": merged})
    await runtime.drain()
    assert await dump(runtime, team.tenant_id) == before
    async with runtime.session(team.tenant_id) as s:
        assert len((await s.scalars(select(CustomerMerge).where(CustomerMerge.undone_at.is_not(None)))).all()) == 2


async def test_an_undo_is_refused_once_the_survivor_was_merged_again_or_took_in_another(runtime: Runtime, team: Team) -> None:
    admin = team.call["admin"]
    ids = []
    for name in ("A", "B", "C"):
        made = await _ok(admin, CREATE, {"i": {"displayName": name}})
        ids.append(made["customer"]["id"])
    a, b, c = ids
    await _ok(admin, MERGE, {"s": a, "m": b})
    await _ok(admin, MERGE, {"s": a, "m": c})  # the survivor took in another customer since
    refused = (await admin(UNDO, {"m": b}))["data"]["undoMerge"]["errors"][0]
    assert refused["code"] == "CONFLICT" and "undo that merge first" in refused["message"]
    await _ok(admin, UNDO, {"m": c})  # the latest first, then the earlier one
    await _ok(admin, UNDO, {"m": b})
    await _ok(admin, MERGE, {"s": a, "m": b})
    await _ok(admin, MERGE, {"s": c, "m": a})  # the survivor was merged again
    refused = (await admin(UNDO, {"m": b}))["data"]["undoMerge"]["errors"][0]
    assert refused["code"] == "CONFLICT" and "was merged into" in refused["message"]
    not_merged = (await admin(UNDO, {"m": c}))["data"]["undoMerge"]["errors"][0]
    assert not_merged["code"] == "VALIDATION"
    forbidden = await team.call["li"](UNDO, {"m": b})
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
