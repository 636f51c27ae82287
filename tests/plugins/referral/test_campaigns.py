"""Invite-N campaigns: qualified invites reach the goal and write a reward to the ledger
(points, a coupon from the pool, a hand-over task); an invitee who leaves within the reversal
window reverses the credit and the unredeemed reward; progress is visible in GraphQL and fired
as ``guanxi_referral_progress``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from guanxi import Runtime, hookimpl
from guanxi.core.domain.events import ReferralProgress
from guanxi.testing import GraphQL
from tests.plugins.referral.conftest import Pigeon, create_campaign, customer_id_of, mint, staff

pytestmark = pytest.mark.plugins("pigeon", "referral", "listener")


class Listener:
    def __init__(self) -> None:
        self.progress: list[ReferralProgress] = []

    @hookimpl
    def guanxi_referral_progress(self, event: ReferralProgress) -> None:
        self.progress.append(event)


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
def extra_plugins(listener: Listener) -> dict[str, object]:
    return {"listener": listener}


POINTS = {"goal": 2, "rewardKind": "points", "rewardPoints": 100, "reversalDays": 7}

LEDGER = """
query {
  referralRewards { id kind points code status user { name } }
  referralLeaderboard(campaign: "spring") { qualified rewarded user { name } customer { displayName } }
  staff: referralStaffLeaderboard { user { name } direct viaCustomers total }
}"""

PROGRESS = 'query($id: ID!) { customer(id: $id) { referralProgress(campaign: "spring") { qualified goal remaining rewarded } } }'


async def ledger(graphql: GraphQL) -> dict[str, Any]:
    return (await graphql(LEDGER))["data"]


async def test_reaching_the_goal_writes_points_to_the_ledger_and_fires_progress(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, listener: Listener
) -> None:
    await create_campaign(graphql, **POINTS)
    li = await staff(runtime, tenant_id)
    token = (await mint(graphql, user=li))["token"]
    await pigeon.follow("a1", token)
    await pigeon.follow("a2", token)
    assert [(p.qualified, p.goal, p.rewarded) for p in listener.progress] == [(1, 2, False), (2, 2, True)]
    assert listener.progress[0].campaign_name == "Spring invite" and listener.progress[0].inviter_user_id is not None
    data = await ledger(graphql)
    assert [(r["kind"], r["points"], r["status"], r["user"]) for r in data["referralRewards"]] == [
        ("points", 100, "GRANTED", {"name": "Li Wei"})
    ]
    assert data["referralLeaderboard"] == [{"qualified": 2, "rewarded": True, "user": {"name": "Li Wei"}, "customer": None}]
    assert data["staff"] == [{"user": {"name": "Li Wei"}, "direct": 2, "viaCustomers": 0, "total": 2}]
    progress = '{ users { id referralProgress(campaign: "spring") { qualified remaining rewarded } } }'
    users = (await graphql(progress))["data"]["users"]
    assert [u["referralProgress"] for u in users if u["id"] == li] == [{"qualified": 2, "remaining": 0, "rewarded": True}]


async def test_an_invitee_leaving_within_the_window_reverses_the_credit_and_the_unredeemed_reward(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, listener: Listener
) -> None:
    await create_campaign(graphql, **POINTS)
    li = await staff(runtime, tenant_id)
    token = (await mint(graphql, user=li))["token"]
    await pigeon.follow("b1", token, at="2026-05-01T08:00:00Z")
    await pigeon.follow("b2", token, at="2026-05-01T09:00:00Z")
    await pigeon.unfollow("b2", at="2026-05-03T08:00:00Z")
    assert [(p.qualified, p.rewarded) for p in listener.progress] == [(1, False), (2, True), (1, False)]
    data = await ledger(graphql)
    assert [r["status"] for r in data["referralRewards"]] == ["REVERSED"]
    assert data["referralLeaderboard"][0]["qualified"] == 1
    b2 = await customer_id_of(runtime, tenant_id, "b2")
    status = "query($id: ID!) { customer(id: $id) { referredBy { status } } }"
    assert (await graphql(status, {"id": b2}))["data"]["customer"]["referredBy"] == {"status": "LEFT"}
    # a new invitee brings the count back to the goal: a new reward
    await pigeon.follow("b3", token, at="2026-05-04T08:00:00Z")
    assert [r["status"] for r in (await ledger(graphql))["referralRewards"]] == ["GRANTED", "REVERSED"]


async def test_a_redeemed_reward_stays_when_an_invitee_leaves(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql, **POINTS)
    li = await staff(runtime, tenant_id)
    token = (await mint(graphql, user=li))["token"]
    await pigeon.follow("c1", token)
    await pigeon.follow("c2", token)
    (reward,) = (await ledger(graphql))["referralRewards"]
    redeem = "mutation($id: ID!) { redeemReferralReward(id: $id) { reward { status } errors { code } } }"
    assert (await graphql(redeem, {"id": reward["id"]}))["data"]["redeemReferralReward"] == {"reward": {"status": "REDEEMED"}, "errors": []}
    await pigeon.unfollow("c2")
    data = await ledger(graphql)
    assert [r["status"] for r in data["referralRewards"]] == ["REDEEMED"]
    assert data["referralLeaderboard"][0]["qualified"] == 1


async def test_leaving_after_the_reversal_window_keeps_the_credit(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql, **{**POINTS, "reversalDays": 3})
    li = await staff(runtime, tenant_id)
    token = (await mint(graphql, user=li))["token"]
    await pigeon.follow("d1", token, at="2026-05-01T08:00:00Z")
    await pigeon.follow("d2", token, at="2026-05-01T08:00:00Z")
    await pigeon.unfollow("d2", at="2026-05-05T08:00:00Z")
    data = await ledger(graphql)
    assert [r["status"] for r in data["referralRewards"]] == ["GRANTED"]
    assert data["referralLeaderboard"][0]["qualified"] == 2


async def test_a_coupon_reward_takes_a_code_from_the_pool_and_a_reversal_returns_it(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql, goal=1, rewardKind="coupon", couponCodes=["SPRING-A", "SPRING-B"])
    ann_token = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
    bob_token = (await mint(graphql, user=await staff(runtime, tenant_id, "bob@example.com", "Bob")))["token"]
    await pigeon.follow("e1", ann_token)
    await pigeon.unfollow("e1")
    await pigeon.follow("e2", bob_token)
    rewards = (await ledger(graphql))["referralRewards"]
    assert sorted((r["user"]["name"], r["code"], r["status"]) for r in rewards) == [
        ("Bob", "SPRING-A", "GRANTED"),
        ("Li Wei", "SPRING-A", "REVERSED"),
    ]


async def test_a_task_reward_asks_staff_to_hand_over_the_gift(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql, goal=1, rewardKind="task", rewardTitle="Give Li's customer a tea set")
    await pigeon.follow("f0", name="Fan")
    fan = await customer_id_of(runtime, tenant_id, "f0")
    await pigeon.follow("f1", (await mint(graphql, customer=fan))["token"])
    query = """query($id: ID!) { customer(id: $id) {
      tasks { title }
      referralRewards { kind status taskId }
      referralProgress(campaign: "spring") { qualified goal remaining rewarded }
    } }"""
    found = (await graphql(query, {"id": fan}))["data"]["customer"]
    assert found["tasks"] == [{"title": "Give Li's customer a tea set"}]
    assert [(r["kind"], r["status"], r["taskId"] is not None) for r in found["referralRewards"]] == [("task", "GRANTED", True)]
    assert found["referralProgress"] == {"qualified": 1, "goal": 1, "remaining": 0, "rewarded": True}


async def test_arrivals_outside_the_window_earn_no_credit(graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await create_campaign(graphql, **POINTS, startsAt="2026-06-01T00:00:00Z", endsAt="2026-07-01T00:00:00Z")
    li = await staff(runtime, tenant_id)
    token = (await mint(graphql, user=li))["token"]
    await pigeon.follow("g1", token, at="2026-05-31T23:00:00Z")
    await pigeon.follow("g2", token, at="2026-06-02T08:00:00Z")
    assert (await ledger(graphql))["referralLeaderboard"][0]["qualified"] == 1


async def test_a_campaign_that_qualifies_on_a_stage_credits_when_the_invitee_reaches_it(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, listener: Listener
) -> None:
    await create_campaign(graphql, **{**POINTS, "goal": 1, "qualifyStage": "won"})
    li = await staff(runtime, tenant_id)
    await pigeon.follow("h1", (await mint(graphql, user=li))["token"])
    assert listener.progress == []
    h1 = await customer_id_of(runtime, tenant_id, "h1")
    await graphql('mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won") { errors { message } } }', {"id": h1})
    assert [(p.qualified, p.rewarded) for p in listener.progress] == [(1, True)]


UPDATE = """
mutation($key: String!, $input: UpdateReferralCampaignInput!) {
  updateReferralCampaign(key: $key, input: $input) { campaign { active landingUrl couponsLeft } errors { field code } }
}"""


async def test_a_paused_campaign_credits_nothing_and_a_topped_up_pool_pays_the_waiting_reward(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql, goal=1, rewardKind="coupon", couponCodes=["ONLY-1"])
    li = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
    zhang = (await mint(graphql, user=await staff(runtime, tenant_id, "zhang@example.com", "Zhang")))["token"]
    await pigeon.follow("p1", li)  # takes the only code
    await pigeon.follow("p2", zhang)  # the pool is empty: credited, no reward yet
    paused = await graphql(UPDATE, {"key": "spring", "input": {"active": False}})
    assert paused["data"]["updateReferralCampaign"] == {
        "campaign": {"active": False, "landingUrl": "https://shop.example.com/spring", "couponsLeft": 0},
        "errors": [],
    }
    await pigeon.follow("p3", zhang)  # paused: attributed, not credited
    data = await ledger(graphql)
    assert sorted((e["user"]["name"], e["qualified"], e["rewarded"]) for e in data["referralLeaderboard"]) == [
        ("Li Wei", 1, True),
        ("Zhang", 1, False),
    ]
    topped = await graphql(UPDATE, {"key": "spring", "input": {"active": True, "addCouponCodes": ["ONLY-1", "MORE-1"]}})
    assert topped["data"]["updateReferralCampaign"]["campaign"]["couponsLeft"] == 1
    await pigeon.follow("p4", zhang)
    codes = sorted((r["user"]["name"], r["code"]) for r in (await ledger(graphql))["referralRewards"])
    assert codes == [("Li Wei", "ONLY-1"), ("Zhang", "MORE-1")]


async def test_an_update_is_validated_like_a_creation(graphql: GraphQL) -> None:
    await create_campaign(graphql)
    bad = await graphql(UPDATE, {"key": "spring", "input": {"landingUrl": "//evil.example.com", "endsAt": "2020-01-01T00:00:00Z"}})
    assert bad["data"]["updateReferralCampaign"]["errors"] == [{"field": "landingUrl", "code": "VALIDATION"}]
    missing = await graphql(UPDATE, {"key": "autumn", "input": {"active": False}})
    assert missing["data"]["updateReferralCampaign"]["errors"] == [{"field": "campaign", "code": "NOT_FOUND"}]


async def test_the_staff_leaderboard_counts_own_invites_and_those_of_owned_customers_per_campaign(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    await create_campaign(graphql, key="autumn", name="Autumn invite")
    li = await staff(runtime, tenant_id)
    zhang = await staff(runtime, tenant_id, "zhang@example.com", "Zhang")
    await pigeon.follow("s1", (await mint(graphql, user=li))["token"])
    s1 = await customer_id_of(runtime, tenant_id, "s1")
    own = "mutation($id: ID!, $owner: ID!) { updateCustomer(id: $id, input: {ownerId: $owner}) { errors { message } } }"
    await graphql(own, {"id": s1, "owner": li})
    await pigeon.follow("s2", (await mint(graphql, customer=s1))["token"])
    await pigeon.follow("s3", (await mint(graphql, "autumn", user=zhang))["token"])
    board = "query($c: String) { referralStaffLeaderboard(campaign: $c) { user { name } direct viaCustomers total } }"
    everything = (await graphql(board, {"c": None}))["data"]["referralStaffLeaderboard"]
    assert everything == [
        {"user": {"name": "Li Wei"}, "direct": 1, "viaCustomers": 1, "total": 2},
        {"user": {"name": "Zhang"}, "direct": 1, "viaCustomers": 0, "total": 1},
    ]
    autumn = (await graphql(board, {"c": "autumn"}))["data"]["referralStaffLeaderboard"]
    assert autumn == [{"user": {"name": "Zhang"}, "direct": 1, "viaCustomers": 0, "total": 1}]


async def test_the_leaderboard_costs_the_same_statements_for_one_inviter_or_many(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    from guanxi.testing.sql import count_statements

    await create_campaign(graphql, **POINTS)
    board = '{ referralLeaderboard(campaign: "spring") { qualified customer { displayName } user { name } } }'

    async def statements() -> int:
        with count_statements(runtime.engine) as seen:
            await graphql(board)
        return len(seen)

    await pigeon.follow("q0", name="Q0")
    await pigeon.follow("q1", (await mint(graphql, customer=await customer_id_of(runtime, tenant_id, "q0")))["token"])
    one = await statements()
    for i in range(1, 5):
        inviter = await customer_id_of(runtime, tenant_id, f"q{i}")
        await pigeon.follow(f"q{i + 1}", (await mint(graphql, customer=inviter))["token"])
    assert len((await graphql(board))["data"]["referralLeaderboard"]) == 5
    assert await statements() == one == 3  # campaign, leaderboard, inviting customers (one batch)
