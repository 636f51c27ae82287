"""Tenant isolation of the insights plugin: another tenant's admin or salesperson asking for a
customer of tenant A (by its global id) or listing its own customers never sees A's sentiment,
channels or touches, nor its tag rules."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")

ONE = "query($id: ID!) { customer(id: $id) { insights { sentiment { texts } lastTouches { kind } } } }"
PAGE = "{ customers(first: 50) { edges { node { insights { sentiment { texts } channels { channel } lastTouches { kind } } } } } }"


@pytest.mark.parametrize("role", ["admin", "sales"])
async def test_another_tenant_sees_none_of_a_customers_insights(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, role: str
) -> None:
    box = Inbox(runtime, tenant_id)
    await box.say("我要投诉")
    [score] = await box.scores()
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role) if role == "sales" else None
    key = await api_key(runtime, beta, role, user_id=user)
    headers = {"Authorization": f"Bearer {key}"}
    one = await anonymous_client.post(
        "/graphql", json={"query": ONE, "variables": {"id": to_global_id("Customer", score.customer_id)}}, headers=headers
    )
    assert one.status_code == 200
    assert (one.json().get("data") or {}).get("customer") is None
    page = await anonymous_client.post("/graphql", json={"query": PAGE}, headers=headers)
    assert page.json()["data"]["customers"]["edges"] == []


async def test_another_tenants_admin_cannot_see_change_delete_or_run_a_tenants_tag_rules(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, graphql: Any
) -> None:
    """Tag rules are tenant data: every root field of them acts in the caller's tenant only."""
    saved = await graphql(
        'mutation { saveInsightsTagRule(input: {key: "price", tag: "价格敏感", kind: KEYWORD, keywords: ["价格"]}) { errors { code } } }'
    )
    assert saved["data"]["saveInsightsTagRule"]["errors"] == []
    box = Inbox(runtime, tenant_id)
    await box.say("价格多少")
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    headers = {"Authorization": f"Bearer {await api_key(runtime, beta, 'admin')}"}

    async def as_beta(query: str) -> dict[str, Any]:
        response = await anonymous_client.post("/graphql", json={"query": query}, headers=headers)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    assert (await as_beta("{ insightsTagRules { key } }"))["data"]["insightsTagRules"] == []
    deleted = await as_beta('mutation { deleteInsightsTagRule(key: "price") { deleted errors { code } } }')
    assert deleted["data"]["deleteInsightsTagRule"] == {"deleted": False, "errors": [{"code": "NOT_FOUND"}]}
    ran = await as_beta("mutation { runInsightsTagRules { added removed } }")
    assert ran["data"]["runInsightsTagRules"] == {"added": 0, "removed": 0}
    changed = await as_beta(
        'mutation { saveInsightsTagRule(input: {key: "price", tag: "beta", kind: KEYWORD, keywords: ["x"]}) { rule { customers } } }'
    )
    assert changed["data"]["saveInsightsTagRule"]["rule"] == {"customers": 0}  # beta's own new rule
    mine = (await graphql("{ insightsTagRules { key tag keywords customers } }"))["data"]["insightsTagRules"]
    assert mine == [{"key": "price", "tag": "价格敏感", "keywords": ["价格"], "customers": 1}]


def test_every_root_field_of_the_plugin_is_attacked_here() -> None:
    from guanxi.plugins.insights.graphql_rules import RulesMutation, RulesQuery

    fields = {n for cls in (RulesQuery, RulesMutation) for n in vars(cls) if not n.startswith("_")}
    text = Path(__file__).read_text(encoding="utf-8")
    camel = {n.split("_")[0] + "".join(w.title() for w in n.split("_")[1:]) for n in fields}
    assert camel and all(name in text for name in camel), camel
