"""Helpers for the access-control suites: clients acting with a given credential."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from guanxi.core.context import RequestContext
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
        user = await users.create_user(tx, email=email, name=email.split("@")[0], role=role, team=team)
    return user.id


async def key_for(runtime: Runtime, tenant_id: uuid.UUID, role: str, user_id: uuid.UUID | None = None) -> str:
    return await api_key(runtime, tenant_id, role, user_id=user_id)
