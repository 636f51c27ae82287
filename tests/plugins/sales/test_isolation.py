"""Tenant isolation of the sales plugin's pools: another tenant's admin and salesperson call every
sales root field with tenant A's pool key and customer ids; nothing of A is seen or changed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.plugins.sales.graphql import SalesMutation, SalesQuery
from guanxi.plugins.sales.models import SalesPool, SalesPoolLead, SalesPoolMove
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")

#: (root field, operation); ``$id`` is one of tenant A's customers, the pool key is A's
ATTACKS: list[tuple[str, str]] = [
    ("leadPools", "{ leadPools { key name } }"),
    ("poolReturnRules", "{ poolReturnRules { key unit minValue maxValue description } }"),
    ("duplicateSuggestions", "query($id: ID!) { duplicateSuggestions(customerId: $id) { customer { displayName } reasons } }"),
    ("poolLeads", '{ poolLeads(pool: "a-secret") { customerId displayName maskedPhones } }'),
    ("claimLead", "mutation($id: ID!) { claimLead(customerId: $id) { customer { displayName } errors { code } } }"),
    ("releaseLead", 'mutation($id: ID!) { releaseLead(customerId: $id, reason: "x") { errors { code } } }'),
    ("putLeadInPool", 'mutation($id: ID!) { putLeadInPool(customerId: $id, pool: "a-secret") { errors { code } } }'),
    (
        "handOverCustomers",
        'mutation($id: ID!) { handOverCustomers(input: {fromUserId: "VXNlcjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA", '
        'pool: "a-secret", customerIds: [$id], reason: "x"}) { result { customers } errors { code } } }',
    ),
    ("createLeadPool", 'mutation { createLeadPool(input: {key: "a-secret", name: "B own"}) { pool { key name } errors { code } } }'),
    (
        "updateLeadPool",
        'mutation { updateLeadPool(input: {key: "a-secret", name: "B took it", holdLimit: 1}) { pool { key name } errors { code } } }',
    ),
]


def test_every_sales_root_field_is_attacked() -> None:
    """A new sales root field cannot skip this suite."""
    fields = {f.python_name for t in (SalesQuery, SalesMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel - {name for name, _ in ATTACKS} == set()


async def _state(runtime: Runtime, tenant_id: uuid.UUID) -> Any:
    async with runtime.session(tenant_id) as s:
        return (
            [(p.key, p.name) for p in (await s.scalars(select(SalesPool))).all()],
            [(r.customer_id, r.status, r.holder_id) for r in (await s.scalars(select(SalesPoolLead))).all()],
            len((await s.scalars(select(SalesPoolMove))).all()),
        )


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_see_or_move_a_pools_leads(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, role: str, field: str, operation: str
) -> None:
    for _attempt in range(3):  # BUSY is SQLite's documented "retry shortly" (a write of another test's process)
        body = await team.call["admin"](
            'mutation { createLeadPool(input: {key: "a-secret", name: "A-pool", holdLimit: 5}) { errors { code } } }'
        )
        if body["data"]["createLeadPool"]["errors"] != [{"code": "BUSY"}]:
            break
    assert body["data"]["createLeadPool"]["errors"] == []
    pooled = await new_customer(runtime, team.tenant_id, "A-lead", "+8613900001111", owner=team.users["mia"])
    await team.call["mia"]('mutation($id: ID!) { putLeadInPool(customerId: $id, pool: "a-secret") { errors { code } } }', {"id": pooled})
    held = await new_customer(runtime, team.tenant_id, "A-held", owner=team.users["mia"])
    await team.call["mia"]('mutation($id: ID!) { putLeadInPool(customerId: $id, pool: "a-secret") { errors { code } } }', {"id": held})
    await team.call["li"]("mutation($id: ID!) { claimLead(customerId: $id) { errors { code } } }", {"id": held})
    before = await _state(runtime, team.tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user if role == "sales" else None)
    for target in (pooled, held):
        response = await http.post(
            "/graphql", json={"query": operation, "variables": {"id": target} if "$id" in operation else {}},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code == 200
        answer = response.json()
        text = json.dumps(answer, ensure_ascii=False)
        assert "A-" not in text and "1111" not in text, text
        payload = next(iter((answer.get("data") or {}).values()), None)
        if field == "updateLeadPool":  # B's admin: no such pool in B; B's salesperson may not change pools at all
            code = payload["errors"][0]["code"] if payload is not None else answer["errors"][0]["extensions"]["code"]
            assert code == ("NOT_FOUND" if role == "admin" else "FORBIDDEN"), answer
        if field in ("claimLead", "releaseLead", "putLeadInPool"):
            assert payload is not None and payload["errors"][0]["code"] in ("NOT_FOUND", "NOT_A_USER"), answer
        if field == "poolLeads":
            assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        if field == "duplicateSuggestions":
            assert answer["data"]["duplicateSuggestions"] == []
        if field == "poolReturnRules":  # the rules the plugins offer, the same for every tenant: no pool of A in them
            assert {r["key"] for r in answer["data"]["poolReturnRules"]} == {"sales.contract_lapsed", "sales.no_won_deal"}
        if field == "leadPools":
            assert answer["data"]["leadPools"] == []
    assert await _state(runtime, team.tenant_id) == before


#: the follow-up plans' root fields, with tenant A's plan key
PLAN_ATTACKS: list[tuple[str, str]] = [
    ("followUpPlans", "{ followUpPlans { key name } }"),
    (
        "createFollowUpPlan",
        'mutation { createFollowUpPlan(input: {key: "a-plan", name: "B own", everyDays: 7, taskTitle: "t"}) '
        "{ plan { key name } errors { code } } }",
    ),
    ("updateFollowUpPlan", 'mutation { updateFollowUpPlan(key: "a-plan", input: {name: "hijacked"}) { plan { name } errors { code } } }'),
    ("pauseFollowUpPlan", 'mutation { pauseFollowUpPlan(key: "a-plan") { plan { key } errors { code } } }'),
    ("resumeFollowUpPlan", 'mutation { resumeFollowUpPlan(key: "a-plan") { plan { key } errors { code } } }'),
]


def test_every_follow_up_root_field_is_attacked() -> None:
    from guanxi.plugins.sales.followup_graphql import FollowUpMutation, FollowUpQuery

    fields = {f.python_name for t in (FollowUpQuery, FollowUpMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel - {name for name, _ in PLAN_ATTACKS} == set()


@pytest.mark.parametrize("role", ["admin", "manager"])
@pytest.mark.parametrize(("field", "operation"), PLAN_ATTACKS, ids=[name for name, _ in PLAN_ATTACKS])
async def test_another_tenant_cannot_see_change_pause_or_resume_a_plan(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, role: str, field: str, operation: str
) -> None:
    from guanxi.plugins.sales.models import SalesFollowUpPlan

    made = await team.call["mia"](
        'mutation { createFollowUpPlan(input: {key: "a-plan", name: "A-plan", everyDays: 30, taskTitle: "A-task"}) { errors { code } } }'
    )
    assert made["data"]["createFollowUpPlan"]["errors"] == []

    async def plans(tenant: uuid.UUID) -> list[tuple[str, str, int, bool]]:
        async with runtime.session(tenant) as s:
            return [(p.key, p.name, p.every_days, p.active) for p in (await s.scalars(select(SalesFollowUpPlan))).all()]

    before = await plans(team.tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user if role == "manager" else None)
    response = await http.post("/graphql", json={"query": operation}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    answer = response.json()
    text = json.dumps(answer, ensure_ascii=False)
    assert "A-plan" not in text and "A-task" not in text, text
    payload = answer["data"][field]
    if field in ("updateFollowUpPlan", "pauseFollowUpPlan", "resumeFollowUpPlan"):
        assert payload == {"plan": None, "errors": [{"code": "NOT_FOUND"}]}, answer
    if field == "followUpPlans":
        assert payload == []
    if field == "createFollowUpPlan":  # keys are per tenant: beta makes its own plan, A's is untouched
        assert payload == {"plan": {"key": "a-plan", "name": "B own"}, "errors": []}
    assert await plans(team.tenant_id) == before
