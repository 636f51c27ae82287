"""Helpers of the sales plugin's tests: staff with API keys, a pool, leads put in it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import BASE_URL, api_key
from tests.access.conftest import make_user

Caller = Callable[..., Awaitable[dict[str, Any]]]


class Team:
    """An admin, a manager and two salespeople of one tenant, each with a GraphQL caller."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.users: dict[str, uuid.UUID] = {}
        self.call: dict[str, Caller] = {}

    def gid(self, name: str) -> str:
        return to_global_id("User", self.users[name])


@pytest.fixture
async def http(app: Litestar) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


@pytest.fixture
async def team(runtime: Runtime, tenant_id: uuid.UUID, http: httpx.AsyncClient) -> Team:
    t = Team(tenant_id)
    for name, role in (("mia", "manager"), ("li", "sales"), ("wu", "sales")):
        t.users[name] = await make_user(runtime, tenant_id, f"{name}@corp.cn", role)
    keys = {name: await api_key(runtime, tenant_id, "manager" if name == "mia" else "sales", user_id=uid) for name, uid in t.users.items()}
    keys["admin"] = await api_key(runtime, tenant_id, "admin")

    def caller(key: str) -> Caller:
        async def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        return call

    t.call = {name: caller(key) for name, key in keys.items()}
    return t


async def new_customer(runtime: Runtime, tenant_id: uuid.UUID, name: str, phone: str | None = None, owner: uuid.UUID | None = None) -> str:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name=name, phones=[phone] if phone else [], owner_id=owner))
    return to_global_id("Customer", c.id)


CREATE_POOL = """mutation($input: CreateLeadPoolInput!) { createLeadPool(input: $input) {
  pool { key name holdLimit returnAfterDays } errors { code field message } } }"""
PUT = """mutation($id: ID!, $pool: String!, $reason: String) { putLeadInPool(customerId: $id, pool: $pool, reason: $reason) {
  customer { id owner { name } } errors { code field message } } }"""
CLAIM = """mutation($id: ID!, $reason: String) { claimLead(customerId: $id, reason: $reason) {
  customer { id displayName phones owner { name } } errors { code field message } } }"""
RELEASE = """mutation($id: ID!, $reason: String!) { releaseLead(customerId: $id, reason: $reason) { errors { code field message } } }"""
LEADS = """query($pool: String!) { poolLeads(pool: $pool) { customerId displayName maskedPhones enteredAt } }"""
