"""A three-level referral chain built through the Pigeon example channel's real webhook route:
a staff member's token brings Bo, Bo's token brings Chen, Chen's brings Dai."""

from __future__ import annotations

import uuid

import pytest

from guanxi import Runtime
from guanxi.testing import GraphQL
from guanxi.testing.sql import count_statements
from tests.plugins.referral.conftest import Pigeon, create_campaign, customer_id_of, mint, staff

pytestmark = pytest.mark.plugins("pigeon", "referral")

TREE = """
query($id: ID!, $depth: Int!, $first: Int, $after: String) {
  customer(id: $id) {
    displayName
    referredBy { channel campaign customer { displayName } user { name } firstTouch { channel } }
    referrals(depth: $depth, first: $first, after: $after) {
      edges { cursor depth channel node { displayName } }
      pageInfo { hasNextPage endCursor }
    }
    referralStats { direct indirect converted }
  }
}"""


async def build_chain(graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, str]:
    await create_campaign(graphql)
    li = await staff(runtime, tenant_id)
    share = await mint(graphql, user=li)
    await pigeon.follow("bo", share["token"], name="Bo")
    bo = await customer_id_of(runtime, tenant_id, "bo")
    await pigeon.follow("chen", (await mint(graphql, customer=bo))["token"], name="Chen")
    chen = await customer_id_of(runtime, tenant_id, "chen")
    await pigeon.follow("dai", (await mint(graphql, customer=chen))["token"], name="Dai")
    dai = await customer_id_of(runtime, tenant_id, "dai")
    return {"li": li, "bo": bo, "chen": chen, "dai": dai}


async def test_a_three_level_chain_from_pigeon_follows_is_the_referral_tree(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)
    bo = (await graphql(TREE, {"id": ids["bo"], "depth": 5}))["data"]["customer"]
    assert bo["referredBy"] == {
        "channel": "pigeon",
        "campaign": "spring",
        "customer": None,
        "user": {"name": "Li Wei"},
        "firstTouch": {"channel": "pigeon"},
    }
    assert [(e["depth"], e["node"]["displayName"], e["channel"]) for e in bo["referrals"]["edges"]] == [
        (1, "Chen", "pigeon"),
        (2, "Dai", "pigeon"),
    ]
    assert bo["referralStats"] == {"direct": 1, "indirect": 1, "converted": 0}
    dai = (await graphql(TREE, {"id": ids["dai"], "depth": 5}))["data"]["customer"]
    assert dai["referredBy"]["customer"] == {"displayName": "Chen"}
    assert dai["referrals"]["edges"] == []


async def test_depth_limits_the_tree_and_pages_follow_the_cursor(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)
    one = (await graphql(TREE, {"id": ids["bo"], "depth": 1}))["data"]["customer"]["referrals"]
    assert [e["node"]["displayName"] for e in one["edges"]] == ["Chen"]
    first = (await graphql(TREE, {"id": ids["bo"], "depth": 5, "first": 1}))["data"]["customer"]["referrals"]
    assert [e["node"]["displayName"] for e in first["edges"]] == ["Chen"] and first["pageInfo"]["hasNextPage"]
    rest = (await graphql(TREE, {"id": ids["bo"], "depth": 5, "first": 1, "after": first["pageInfo"]["endCursor"]}))["data"]["customer"]
    assert [e["node"]["displayName"] for e in rest["referrals"]["edges"]] == ["Dai"]
    assert not rest["referrals"]["pageInfo"]["hasNextPage"]


async def test_referrals_and_stats_read_the_closure_in_one_statement_each(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """An admin's tree and counts are one statement each on ``referral_closure``, no recursion."""
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)
    tree = "query($id: ID!) { customer(id: $id) { referrals(depth: 5) { edges { depth node { displayName } } } } }"
    with count_statements(runtime.engine) as seen:
        await graphql(tree, {"id": ids["bo"]})
    assert not [s for s in seen if "RECURSIVE" in s.upper()]
    assert len(seen) == 2  # the customer, then the page of the tree
    assert "referral_closure" in seen[1]
    stats = "query($id: ID!) { customer(id: $id) { referralStats { direct indirect converted } } }"
    with count_statements(runtime.engine) as seen:
        await graphql(stats, {"id": ids["bo"]})
    assert not [s for s in seen if "RECURSIVE" in s.upper()]
    assert len(seen) == 2 and "referral_closure" in seen[1]


async def test_converted_counts_referrals_in_the_configured_stage(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)
    move = 'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won") { errors { message } } }'
    assert (await graphql(move, {"id": ids["dai"]}))["data"]["moveCustomerStage"]["errors"] == []
    stats = (await graphql(TREE, {"id": ids["bo"], "depth": 5}))["data"]["customer"]["referralStats"]
    assert stats == {"direct": 1, "indirect": 1, "converted": 1}


async def test_after_a_merge_the_survivor_holds_both_trees_and_the_old_token_still_credits_them(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await build_chain(graphql, pigeon, runtime, tenant_id)  # Li -> Bo -> Chen -> Dai
    await pigeon.follow("bo-alt", name="Bo (second account)")
    alt = await customer_id_of(runtime, tenant_id, "bo-alt")
    alt_token = (await mint(graphql, customer=alt))["token"]
    await pigeon.follow("eli", alt_token, name="Eli")
    merge = "mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m) { errors { message } } }"
    assert (await graphql(merge, {"s": ids["bo"], "m": alt}))["data"]["mergeCustomers"]["errors"] == []
    await pigeon.follow("fei", alt_token, name="Fei")  # a poster printed before the merge
    bo = (await graphql(TREE, {"id": ids["bo"], "depth": 5}))["data"]["customer"]
    assert [(e["depth"], e["node"]["displayName"]) for e in bo["referrals"]["edges"]] == [(1, "Chen"), (1, "Eli"), (1, "Fei"), (2, "Dai")]
    assert bo["referralStats"] == {"direct": 3, "indirect": 1, "converted": 0}
    assert bo["referredBy"]["user"] == {"name": "Li Wei"}
