"""Helpers for the access-control suites: clients acting with a given credential."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import users
from guanxi.testing.plugin import BASE_URL, api_key

#: ``await as_key(key)(query, variables)`` -> the decoded body (status must be 200)
Caller = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app without default credentials."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


@pytest.fixture
def as_key(http: httpx.AsyncClient) -> Callable[[str], Caller]:
    """``as_key(key)`` gives a GraphQL caller sending ``Authorization: Bearer <key>``."""

    def make(key: str) -> Caller:
        async def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        return call

    return make


async def make_user(runtime: Runtime, tenant_id: uuid.UUID, email: str, role: str, team: str | None = None) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        user = await users.create_user(tx, email=email, name=email.split("@", maxsplit=1)[0], role=role, team=team)
    return user.id


async def key_for(runtime: Runtime, tenant_id: uuid.UUID, role: str, user_id: uuid.UUID | None = None) -> str:
    return await api_key(runtime, tenant_id, role, user_id=user_id)


class World:
    """A tenant with a team "north" (two salespeople and their manager), a salesperson of team
    "south", and one customer per salesperson plus an unassigned one, each with a message, a
    task, a tag and an identity."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.users: dict[str, uuid.UUID] = {}
        self.customers: dict[str, uuid.UUID] = {}  # by owner name ("nobody" for the unassigned one)
        self.interactions: dict[str, uuid.UUID] = {}
        self.tasks: dict[str, uuid.UUID] = {}


async def seed_world(runtime: Runtime, tenant_id: uuid.UUID, prefix: str = "", mobile: str = "138") -> World:
    from guanxi.core.services import customers, identities, interactions, tags, tasks

    world = World(tenant_id)
    for name, role, team in [("ann", "sales", "north"), ("bo", "sales", "north"), ("cy", "sales", "south"), ("max", "manager", "north")]:
        world.users[name] = await make_user(runtime, tenant_id, f"{prefix}{name}@corp.cn", role, team)
    for owner in ("ann", "bo", "cy", "nobody"):
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            c = await customers.create_customer(
                tx,
                customers.CustomerInput(
                    display_name=f"{prefix}Customer of {owner}",
                    phones=[f"+86 {mobile} 0000 {len(world.customers):04d}"],
                    emails=[f"{prefix}{owner}.client@mail.cn"],
                    owner_id=world.users.get(owner),
                ),
            )
            await identities.attach_identity(
                tx, c.id, identities.IdentityInput(channel="wecom", external_id=f"{prefix}wm-{owner}", nickname=f"{prefix}{owner} nick")
            )
            i, _ = await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=c.id, channel="wecom", kind="message", text=f"{prefix}secret note of {owner}")
            )
            t = await tasks.create_task(
                tx, tasks.TaskInput(customer_id=c.id, title=f"{prefix}call {owner}'s client", assignee_id=world.users.get(owner))
            )
            await tags.change_tags(tx, c.id, add=[f"vip/{owner}"])
        world.customers[owner], world.interactions[owner], world.tasks[owner] = c.id, i.id, t.id
    return world
