"""Tenant isolation of deals, contracts and reports: another tenant's admin and salesperson call
every deals and reports root field with tenant A's ids and keys; nothing of A is seen or changed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.plugins.sales.deals.graphql import DealsMutation, DealsQuery
from guanxi.plugins.sales.deals.models import (
    SalesContract,
    SalesDeal,
    SalesDealPipeline,
    SalesDealStage,
    SalesInstalment,
    SalesPayment,
    SalesProduct,
)
from guanxi.plugins.sales.deals.stages_graphql import DealStagesMutation
from guanxi.plugins.sales.reports.graphql import ReportsQuery
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.sales.conftest import Team, new_customer
from tests.plugins.sales.test_deals import CONTRACT, DEAL, MOVE, PRODUCT

pytestmark = pytest.mark.plugins("sales")

RANGE = 'from: "2025-01-01T00:00:00Z", to: "2030-01-01T00:00:00Z"'
#: (root field, operation); ``$id`` is a customer, ``$deal`` a deal, ``$inst`` an instalment of tenant A
ATTACKS: list[tuple[str, str]] = [
    ("dealPipelines", "{ dealPipelines { key name } }"),
    ("products", "{ products { sku name } }"),
    ("deals", "query($id: ID!) { deals(customerId: $id) { title } }"),
    ("pipelineValue", '{ pipelineValue(pipeline: "a-secret") { deals amount } }'),
    ("contracts", "query($id: ID!) { contracts(customerId: $id) { number } }"),
    ("salesFunnel", f"{{ salesFunnel({RANGE}, by: OWNER) {{ key label stages {{ entered }} }} }}"),
    ("salesPerformance", f"{{ salesPerformance({RANGE}) {{ key label dealsWon revenue }} }}"),
    ("repeatPurchase", f"{{ repeatPurchase({RANGE}, by: SOURCE) {{ key buyers purchases }} }}"),
    ("cohortRetention", f"{{ cohortRetention({RANGE}) {{ key cohorts {{ month customers }} }} }}"),
    ("wonRevenueAttribution", f"{{ wonRevenueAttribution({RANGE}, touch: LAST) {{ total rows {{ key deals amount }} }} }}"),
    ("createDealPipeline", 'mutation { createDealPipeline(input: {key: "a-secret", name: "x", stages: []}) { errors { code } } }'),
    ("createProduct", 'mutation { createProduct(input: {sku: "a-sku", name: "B own", price: 1}) { product { sku } errors { code } } }'),
    ("createDeal", 'mutation($id: ID!) { createDeal(input: {customerId: $id, title: "B"}) { errors { code } } }'),
    ("moveDeal", 'mutation($deal: ID!) { moveDeal(dealId: $deal, stage: "lost", reason: "x") { errors { code } } }'),
    (
        "createContract",
        'mutation($deal: ID!) { createContract(input: {dealId: $deal, number: "B", signedOn: "2026-01-01", startsOn: "2026-01-01", '
        'endsOn: "2026-02-01", instalments: [{amount: 1, dueOn: "2026-01-02"}]}) { errors { code } } }',
    ),
    ("recordPayment", "mutation($inst: ID!) { recordPayment(instalmentId: $inst, amount: -1) { errors { code } } }"),
    ("salesPerformance", f"{{ salesPerformance({RANGE}, by: SOURCE) {{ key label dealsWon revenue }} }}"),
    ("renameDealPipeline", 'mutation { renameDealPipeline(pipeline: "a-secret", name: "B") { pipeline { name } errors { code } } }'),
    (
        "addDealStage",
        'mutation { addDealStage(pipeline: "a-secret", stage: {key: "b", name: "B", probability: 5}) { pipeline { name } '
        "errors { code } } }",
    ),
    (
        "updateDealStage",
        'mutation { updateDealStage(pipeline: "a-secret", stage: "open-a", probability: 1) { pipeline { name } errors { code } } }',
    ),
    ("reorderDealStages", 'mutation { reorderDealStages(pipeline: "a-secret", keys: ["won"]) { pipeline { name } errors { code } } }'),
    (
        "archiveDealStage",
        'mutation { archiveDealStage(pipeline: "a-secret", stage: "open-a", moveTo: "won") { stage moved errors { code } } }',
    ),
    ("deleteDealStage", 'mutation { deleteDealStage(pipeline: "a-secret", stage: "open-a") { stage moved errors { code } } }'),
    ("archiveProduct", "mutation($prod: ID!) { archiveProduct(productId: $prod) { product { sku } errors { code } } }"),
]
#: root fields only admins and managers may call: another tenant's salesperson is FORBIDDEN outright
CONFIGURE = {"renameDealPipeline", "addDealStage", "updateDealStage", "reorderDealStages", "archiveDealStage", "deleteDealStage",
             "archiveProduct"}  # fmt: skip


def test_every_deals_and_reports_root_field_is_attacked() -> None:
    """A new root field of deals or reports cannot skip this suite."""
    types = (DealsQuery, DealsMutation, DealStagesMutation, ReportsQuery)
    fields = {f.python_name for t in types for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel == {name for name, _ in ATTACKS}


async def _state(runtime: Runtime, tenant_id: uuid.UUID) -> Any:
    async with runtime.session(tenant_id) as s:
        counts = [
            (await s.execute(select(func.count()).select_from(m))).scalar_one()
            for m in (SalesDealPipeline, SalesProduct, SalesContract, SalesPayment)
        ]
        deals = [(d.status, d.stage_id) for d in (await s.scalars(select(SalesDeal).order_by(SalesDeal.id))).all()]
        paid = [i.paid for i in (await s.scalars(select(SalesInstalment))).all()]
        names = sorted((p.key, p.name) for p in (await s.scalars(select(SalesDealPipeline))).all())
        stages = sorted(
            (st.key, st.name, st.position, st.probability, st.archived_at) for st in (await s.scalars(select(SalesDealStage))).all()
        )
        products = sorted((p.sku, p.archived_at) for p in (await s.scalars(select(SalesProduct))).all())
    return counts, deals, paid, names, stages, products


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_see_or_change_deals_contracts_or_reports(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, role: str, field: str, operation: str
) -> None:
    stages = [{"key": "open-a", "name": "A-open", "probability": 50},
              {"key": "won", "name": "A-won", "probability": 100, "category": "WON"},
              {"key": "lost", "name": "A-lost", "probability": 0, "category": "LOST"}]  # fmt: skip
    made = await team.call["admin"](
        'mutation($s: [DealStageInput!]!) { createDealPipeline(input: {key: "a-secret", name: "A-pipe", stages: $s}) { errors { code } } }',
        {"s": stages},
    )
    assert made["data"]["createDealPipeline"]["errors"] == [], made
    made_product = await team.call["admin"](PRODUCT, {"input": {"sku": "a-sku", "name": "A-product", "price": 1111}})
    product = made_product["data"]["createProduct"]["product"]["id"]
    customer = await new_customer(runtime, team.tenant_id, "A-customer", owner=team.users["li"])
    deal = (await team.call["li"](DEAL, {"input": {"customerId": customer, "title": "A-deal", "amount": 1111}}))["data"]["createDeal"][
        "deal"
    ]
    await team.call["li"](MOVE, {"id": deal["id"], "stage": "won"})
    plan = {"dealId": deal["id"], "number": "A-contract", "signedOn": "2026-01-01", "startsOn": "2026-01-01", "endsOn": "2026-12-31",
            "instalments": [{"amount": 1111, "dueOn": "2026-02-01"}]}  # fmt: skip
    contract = (await team.call["li"](CONTRACT, {"input": plan}))["data"]["createContract"]["contract"]
    inst = contract["instalments"][0]["id"]
    paid = await team.call["li"]("mutation($i: ID!) { recordPayment(instalmentId: $i, amount: 1111) { errors { code } } }", {"i": inst})
    assert paid["data"]["recordPayment"]["errors"] == []
    before = await _state(runtime, team.tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user if role == "sales" else None)
    variables = {
        name: value
        for name, value in (("id", customer), ("deal", deal["id"]), ("inst", inst), ("prod", product))
        if f"${name}" in operation
    }
    response = await http.post("/graphql", json={"query": operation, "variables": variables}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    answer = response.json()
    body = json.dumps(answer, ensure_ascii=False)
    assert "A-" not in body and "1111" not in body, body
    payload = next(iter((answer.get("data") or {}).values()), None)
    if field in CONFIGURE:
        if role == "sales":
            assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", answer
        else:
            assert payload is not None and payload["errors"][0]["code"] in ("NOT_FOUND", "BAD_ID"), answer
    if field in ("createDeal", "moveDeal", "createContract", "recordPayment"):
        assert payload is not None and payload["errors"][0]["code"] == "NOT_FOUND", answer
    if field in ("dealPipelines", "products", "deals", "contracts", "salesFunnel", "repeatPurchase", "cohortRetention"):
        assert payload == [], answer
    if field == "wonRevenueAttribution":
        assert payload == {"total": 0, "rows": []}, answer
    if field == "pipelineValue":
        assert payload is None, answer
    if field == "salesPerformance":
        assert all(r["dealsWon"] == 0 and r["revenue"] == 0 for r in payload), answer
    assert await _state(runtime, team.tenant_id) == before
