"""GraphQL test helpers: an HTTP client on the app for the test's tenant, and a `gql` call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from guanxi.app import create_app
from guanxi.core.runtime import Runtime

GQL = Callable[..., Awaitable[dict[str, Any]]]


async def use_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Make the app act in this tenant (until authentication, the app uses the configured one)."""
    import msgspec
    from sqlalchemy import select

    from guanxi.core.models import Tenant
    from guanxi.core.tenancy import unscoped

    async with runtime.session(None) as s, unscoped(s):
        slug = (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one()
    runtime.settings = msgspec.structs.replace(runtime.settings, tenant=slug)


@pytest.fixture
async def client(runtime: Runtime, tenant_id: uuid.UUID) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, acting in this test's tenant."""
    await use_tenant(runtime, tenant_id)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
        yield c


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GQL:
    """POST a GraphQL operation; returns the decoded JSON body (``data`` and ``errors``)."""

    async def call(query: str, variables: dict[str, Any] | None = None, *, ok: bool = True) -> dict[str, Any]:
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if ok:
            assert not body.get("errors"), body["errors"]
        return body

    return call
