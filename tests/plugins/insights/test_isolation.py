"""Tenant isolation of the insights plugin: another tenant's admin or salesperson asking for a
customer of tenant A (by its global id) or listing its own customers never sees A's sentiment,
channels or touches. (The plugin adds no root field: its data is reached through customers.)"""

from __future__ import annotations

import uuid

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
