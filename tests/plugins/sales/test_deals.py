"""Deals, products, contracts and payments through GraphQL with manager and sales keys: the
default deal pipeline, lines priced from the catalogue, won/lost with a reason, the weighted
pipeline value in SQL, a contract's payment plan with partial, over and refunded payments, the
`payment` interaction scoring counts, and the overdue notice to the contract's owner."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.domain.models import Interaction, Notification, ScheduledJob, utcnow
from guanxi.core.runtime import Runtime
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales.deals import contracts as csvc
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")

PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  product { id sku price currency } errors { code field message } } }"""
DEAL = """mutation($input: CreateDealInput!) { createDeal(input: $input) {
  deal { id title amount currency pipeline status weightedAmount ownerId stage { key probability }
         lines { product { sku } quantity unitPrice total }
         customer { displayName } }
  errors { code field message } } }"""
MOVE = """mutation($id: ID!, $stage: String!, $reason: String) { moveDeal(dealId: $id, stage: $stage, reason: $reason) {
  deal { status stage { key } lostReason closedAt weightedAmount } errors { code field message } } }"""
CONTRACT = """mutation($input: CreateContractInput!) { createContract(input: $input) {
  contract { id number amount currency received outstanding instalments { id seq amount dueOn paid outstanding status } }
  errors { code field message } } }"""
PAY = """mutation($id: ID!, $amount: Float!, $at: DateTime) { recordPayment(instalmentId: $id, amount: $amount, receivedAt: $at) {
  contract { received outstanding instalments { seq paid outstanding status } payments { instalmentSeq amount } }
  errors { code field message } } }"""


async def deal_for(team: Team, caller: str, customer: str, **extra: Any) -> dict[str, Any]:
    body = await team.call[caller](DEAL, {"input": {"customerId": customer, "title": extra.pop("title", "ERP"), **extra}})
    assert body["data"]["createDeal"]["errors"] == [], body
    deal: dict[str, Any] = body["data"]["createDeal"]["deal"]
    return deal


async def test_a_deal_is_priced_from_the_catalogue_moves_through_stages_and_weighs_the_pipeline(runtime: Runtime, team: Team) -> None:
    made = await team.call["mia"](PRODUCT, {"input": {"sku": "erp-basic", "name": "ERP 基础版", "price": 12000}})
    product = made["data"]["createProduct"]["product"]
    assert product["currency"] == "CNY" and product["price"] == 12000
    forbidden = await team.call["li"](PRODUCT, {"input": {"sku": "x", "name": "x", "price": 1}})
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cid = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    deal = await deal_for(
        team, "li", cid, lines=[{"productId": product["id"], "quantity": 2}, {"productId": product["id"], "unitPrice": 500}]
    )
    assert deal["amount"] == 24500 and deal["currency"] == "CNY" and deal["pipeline"] == "new-business"
    assert deal["stage"] == {"key": "qualify", "probability": 10} and deal["status"] == "OPEN" and deal["weightedAmount"] == 2450
    assert deal["ownerId"] == team.gid("li") and deal["customer"] == {"displayName": "王芳"}
    assert [(line["quantity"], line["total"]) for line in deal["lines"]] == [(2, 24000), (1, 500)]
    other = await deal_for(team, "li", cid, title="CRM", amount=10000, stage="negotiation")
    q = "{ pipelineValue { pipeline currency deals amount weighted stages { key deals amount weighted } } }"
    value = (await team.call["li"](q))["data"]["pipelineValue"]
    assert (await team.call["wu"](q))["data"]["pipelineValue"]["deals"] == 0  # not wu's customers
    assert value["deals"] == 2 and value["amount"] == 34500 and value["weighted"] == 2450 + 7000
    assert [(s["key"], s["deals"]) for s in value["stages"]] == [("qualify", 1), ("proposal", 0), ("negotiation", 1)]
    no_reason = (await team.call["li"](MOVE, {"id": other["id"], "stage": "lost"}))["data"]["moveDeal"]["errors"][0]
    assert (no_reason["code"], no_reason["field"]) == ("VALIDATION", "reason")
    lost = (await team.call["li"](MOVE, {"id": other["id"], "stage": "lost", "reason": "budget cut"}))["data"]["moveDeal"]["deal"]
    assert lost["status"] == "LOST" and lost["lostReason"] == "budget cut" and lost["closedAt"] and lost["weightedAmount"] == 0
    won = (await team.call["li"](MOVE, {"id": deal["id"], "stage": "won"}))["data"]["moveDeal"]["deal"]
    assert won["status"] == "WON" and won["weightedAmount"] == 24500
    # wu (another salesperson) sees neither the deals nor can move them
    assert (await team.call["wu"]("{ deals { id } }"))["data"]["deals"] == []
    assert (await team.call["wu"](MOVE, {"id": deal["id"], "stage": "qualify"}))["data"]["moveDeal"]["errors"][0]["code"] == "NOT_FOUND"
    listed = (await team.call["li"]("{ deals(status: WON) { id } }"))["data"]["deals"]
    assert [d["id"] for d in listed] == [deal["id"]]


async def test_a_won_deal_becomes_a_contract_whose_payments_count_as_payment_interactions(runtime: Runtime, team: Team) -> None:
    cid = await new_customer(runtime, team.tenant_id, "李雷", owner=team.users["li"])
    deal = await deal_for(team, "li", cid, amount=30000)
    refused = await team.call["li"](
        CONTRACT,
        {"input": {"dealId": deal["id"], "number": "HT-1", "signedOn": "2026-01-01", "startsOn": "2026-01-01", "endsOn": "2026-12-31",
                   "instalments": [{"amount": 30000, "dueOn": "2026-01-31"}]}},
    )  # fmt: skip
    assert refused["data"]["createContract"]["errors"][0]["field"] == "dealId"
    await team.call["li"](MOVE, {"id": deal["id"], "stage": "won"})
    today = utcnow().date()
    plan = [{"amount": 10000, "dueOn": str(today - dt.timedelta(days=3))}, {"amount": 20000, "dueOn": str(today + dt.timedelta(days=30))}]
    made = await team.call["li"](
        CONTRACT,
        {"input": {"dealId": deal["id"], "number": "HT-2026-001", "signedOn": str(today - dt.timedelta(days=40)),
                   "startsOn": str(today - dt.timedelta(days=40)), "endsOn": str(today + dt.timedelta(days=325)), "instalments": plan}},
    )  # fmt: skip
    contract = made["data"]["createContract"]["contract"]
    assert contract["amount"] == 30000 and contract["outstanding"] == 30000
    first, second = (i["id"] for i in contract["instalments"])
    again = await team.call["li"](
        CONTRACT,
        {"input": {"dealId": deal["id"], "number": "dup", "signedOn": str(today), "startsOn": str(today), "endsOn": str(today),
                   "instalments": [{"amount": 1, "dueOn": str(today)}]}},
    )  # fmt: skip
    assert again["data"]["createContract"]["errors"][0]["code"] == "CONFLICT"
    # the overdue job tells li once about the first instalment
    assert await csvc.notify_overdue(runtime, team.tenant_id, utcnow()) == 1
    assert await csvc.notify_overdue(runtime, team.tenant_id, utcnow()) == 0
    partial = (await team.call["li"](PAY, {"id": first, "amount": 4000}))["data"]["recordPayment"]["contract"]
    assert [i["status"] for i in partial["instalments"]] == ["OVERDUE", "DUE"] and partial["received"] == 4000
    over = (await team.call["li"](PAY, {"id": first, "amount": 7000}))["data"]["recordPayment"]["contract"]
    assert over["instalments"][0] == {"seq": 1, "paid": 11000, "outstanding": 0, "status": "OVERPAID"}
    refund = (await team.call["li"](PAY, {"id": first, "amount": -1000}))["data"]["recordPayment"]["contract"]
    assert refund["instalments"][0]["status"] == "PAID" and refund["received"] == 10000 and refund["outstanding"] == 20000
    too_much = (await team.call["li"](PAY, {"id": second, "amount": -1}))["data"]["recordPayment"]["errors"][0]
    assert (too_much["code"], too_much["field"]) == ("VALIDATION", "amount")
    assert (await team.call["wu"](PAY, {"id": second, "amount": 5}))["data"]["recordPayment"]["errors"][0]["code"] == "NOT_FOUND"
    async with runtime.session(team.tenant_id) as s:
        rows = (await s.execute(select(Interaction).where(Interaction.kind == "payment").order_by(Interaction.recorded_at))).scalars().all()
        notes = (await s.execute(select(Notification).where(Notification.kind == csvc.OVERDUE_NOTICE))).scalars().all()
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == csvc.OVERDUE_JOB))).scalar_one()
    assert [r.payload["amount"] for r in rows] == [4000, 7000, -1000]
    assert {r.channel for r in rows} == {"sales"} and all(r.customer_id == from_global_id(cid, "Customer") for r in rows)
    assert [(n.user_id, "HT-2026-001" in n.title) for n in notes] == [(team.users["li"], True)]
    assert job.cron == csvc.OVERDUE_CRON
