"""The scoring plugin's fields through the authenticated HTTP API, as each role sees them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.users import create_user
from guanxi.testing.plugin import api_key
from tests.plugins.scoring.conftest import Shop

pytestmark = pytest.mark.plugins("scoring")


async def post(client: httpx.AsyncClient, key: str, query: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_salespersons_priority_queue_and_score_filters_hold_only_their_customers(
    runtime: Runtime, tenant_id: uuid.UUID, ctx: RequestContext, shop: Shop, anonymous_client: httpx.AsyncClient
) -> None:
    async with runtime.transaction(ctx) as tx:
        mine, theirs = (await create_user(tx, email="me@x.cn", name="Me")).id, (await create_user(tx, email="you@x.cn", name="You")).id
    a = await shop.customer("Mine", owner_id=mine)
    b = await shop.customer("Theirs", owner_id=theirs)
    for customer in (a, b):
        await shop.interact(customer, "message", direction="in")
    key = await api_key(runtime, tenant_id, "sales", user_id=mine)
    queue = await post(anonymous_client, key, "{ myPriorityQueue { customer { displayName } reasons } }")
    assert [i["customer"]["displayName"] for i in queue["data"]["myPriorityQueue"]] == ["Mine"]
    scored = await post(
        anonymous_client, key, "{ customers(filter: {scoreGte: 0}, orderBy: SCORE_DESC) { totalCount edges { node { displayName } } } }"
    )
    assert scored["data"]["customers"]["totalCount"] == 1
    readonly = await api_key(runtime, tenant_id, "readonly")
    denied = await post(anonymous_client, readonly, "{ myPriorityQueue { rank } }")
    assert denied["data"] is None and denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
