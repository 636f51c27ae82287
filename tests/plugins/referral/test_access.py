"""The referral graph as an ownership-limited caller (a salesperson) sees it."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import update

from guanxi import Runtime
from guanxi.core.domain.models import Customer
from guanxi.graphql.ids import from_global_id
from guanxi.testing import GraphQL
from guanxi.testing.plugin import api_key
from tests.plugins.referral.conftest import Pigeon
from tests.plugins.referral.test_chain import TREE, build_chain

pytestmark = pytest.mark.plugins("pigeon", "referral")


async def test_a_salespersons_view_of_a_tree_stops_at_customers_they_may_not_see(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    """Bo (theirs) referred Chen (another salesperson's), who referred Dai (theirs). Ownership
    applies to referral rows as to every customer-owned row: the tree of Bo and its counts stop at
    Chen (no name, no count), and Chen's page is not theirs to open; an admin sees all of it."""
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)
    from tests.access.conftest import make_user

    me = await make_user(runtime, tenant_id, "me@x.cn", "sales")
    other = await make_user(runtime, tenant_id, "other@x.cn", "sales")
    async with runtime.write_session(tenant_id) as s:
        for name, owner in (("bo", me), ("chen", other), ("dai", me)):
            await s.execute(update(Customer).where(Customer.id == from_global_id(ids[name], "Customer")).values(owner_id=owner))
    key = await api_key(runtime, tenant_id, "sales", user_id=me)
    response = await anonymous_client.post(
        "/graphql", json={"query": TREE, "variables": {"id": ids["bo"], "depth": 5}}, headers={"Authorization": f"Bearer {key}"}
    )
    bo = response.json()["data"]["customer"]
    assert "Chen" not in response.text
    assert bo["referrals"]["edges"] == [] and bo["referralStats"] == {"direct": 0, "indirect": 0, "converted": 0}
    chen = await anonymous_client.post(
        "/graphql", json={"query": TREE, "variables": {"id": ids["chen"], "depth": 5}}, headers={"Authorization": f"Bearer {key}"}
    )
    assert chen.json()["data"]["customer"] is None
    admin = (await graphql(TREE, {"id": ids["bo"], "depth": 5}))["data"]["customer"]
    assert admin["referralStats"] == {"direct": 1, "indirect": 1, "converted": 0}
