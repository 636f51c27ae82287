"""The scoring plugin's own components, computed in SQL after each interaction."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import pytest

from tests.plugins.scoring.conftest import NOW, Shop

pytestmark = pytest.mark.plugins("scoring")
DAY = dt.timedelta(days=1)


async def test_engagement_points_decay_with_the_configured_half_life(shop: Shop) -> None:
    """A message 30 days old (the default half-life) counts half of a message today."""
    cid = await shop.customer()
    await shop.interact(cid, "message_in", at=NOW)
    await shop.interact(cid, "message_in", at=NOW - 30 * DAY)
    part = (await shop.parts(cid))[("engagement", "message_in@*")]
    assert part.count == 2 and part.skipped == 0
    assert part.value == pytest.approx(5 + 2.5)


async def test_a_cap_counts_only_so_many_interactions_per_period_and_shows_the_rest(shop: Shop) -> None:
    """Default: the first 5 inbound messages of a day count; the 6th and 7th are reported as over the cap."""
    cid = await shop.customer()
    for minute in range(7):
        await shop.interact(cid, "message_in", at=NOW - dt.timedelta(minutes=minute))
    await shop.interact(cid, "message_in", at=NOW - 2 * DAY)
    part = (await shop.parts(cid))[("engagement", "message_in@*")]
    assert (part.count, part.skipped) == (6, 2)
    decay = 0.5 ** (2 / 30)
    expected = sum(5 * 0.5 ** (m / 60 / 24 / 30) for m in range(2, 7)) + 5 * decay
    assert part.value == pytest.approx(expected)


async def test_unsubscribe_complaint_and_removing_the_salesperson_cost_points(shop: Shop) -> None:
    cid = await shop.customer()
    for kind in ("unsubscribe", "complaint", "contact_removed"):
        await shop.interact(cid, kind)
    parts = await shop.parts(cid)
    assert parts[("engagement", "unsubscribe@*")].value == pytest.approx(-20)
    assert parts[("engagement", "complaint@*")].value == pytest.approx(-30)
    assert parts[("engagement", "contact_removed@*")].value == pytest.approx(-25)
    assert await shop.total(cid) == pytest.approx(-75)


async def test_future_interactions_and_unknown_kinds_do_not_count(shop: Shop) -> None:
    cid = await shop.customer()
    await shop.interact(cid, "message_in", at=NOW + DAY)
    await shop.interact(cid, "note")
    assert await shop.parts(cid) == {}
    assert await shop.total(cid) == 0


async def test_purchases_give_recency_frequency_and_log_scaled_monetary_value(shop: Shop) -> None:
    cid = await shop.customer()
    await shop.interact(cid, "purchase", channel="shop", at=NOW - 90 * DAY, amount=99.0)
    await shop.interact(cid, "purchase", channel="shop", at=NOW - 10 * DAY, total=900.0)  # another amount key
    await shop.interact(cid, "purchase", channel="shop", at=NOW - 5 * DAY)  # no amount: counts, spends 0
    parts = await shop.parts(cid)
    assert parts[("purchase", "recency")].value == pytest.approx(20 * 0.5 ** (5 / 90))
    assert parts[("purchase", "frequency")].value == pytest.approx(15) and parts[("purchase", "frequency")].count == 3
    monetary = parts[("purchase", "monetary")]
    assert monetary.measure == pytest.approx(999.0)
    assert monetary.value == pytest.approx(10 * math.log10(1000))


async def test_payments_count_as_money_received_and_a_refund_lowers_it_without_being_a_purchase(shop: Shop) -> None:
    """A `payment` of 5,000 (a contract's instalment) counts like a purchase; a refund (a negative
    payment) lowers the money spent but adds no frequency and is not the last purchase."""
    cid = await shop.customer()
    await shop.interact(cid, "payment", channel="sales", at=NOW - 20 * DAY, amount=5000.0)
    await shop.interact(cid, "purchase", channel="shop", at=NOW - 10 * DAY, amount=1000.0)
    await shop.interact(cid, "payment", channel="sales", at=NOW - 2 * DAY, amount=-1000.0)
    parts = await shop.parts(cid)
    assert parts[("purchase", "frequency")].count == 2 and parts[("purchase", "frequency")].value == pytest.approx(10)
    assert parts[("purchase", "recency")].value == pytest.approx(20 * 0.5 ** (10 / 90))
    assert parts[("purchase", "monetary")].measure == pytest.approx(5000.0)
    refunded_only = await shop.customer()
    await shop.interact(refunded_only, "payment", channel="sales", at=NOW - DAY, amount=-10.0)
    assert not [k for k in await shop.parts(refunded_only) if k[0] == "purchase"]


async def test_purchase_amounts_are_read_from_numbers_and_numeric_strings_only(shop: Shop) -> None:
    """A text amount like "¥99" is not a number: the next amount key is tried (both databases
    alike; PostgreSQL would otherwise fail the whole recompute on the cast)."""
    cid = await shop.customer()
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount="¥99", total=50)
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount=" 100.5 ")
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount="1e9")
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount="-")
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount="1.2.3")
    await shop.interact(cid, "purchase", channel="shop", at=NOW - DAY, amount=".5")
    assert (await shop.parts(cid))[("purchase", "monetary")].measure == pytest.approx(151.0)


async def test_social_value_is_log_scaled_followers_capped_plus_engagement_rate(shop: Shop) -> None:
    cid = await shop.customer()
    await shop.identity(cid, "douyin", 200_000, engagement_rate=0.08)
    await shop.identity(cid, "weibo", 9)
    parts = await shop.parts(cid)
    assert parts[("social", "followers@douyin")].value == pytest.approx(min(5 * math.log10(200_001), 30))
    assert parts[("social", "followers@weibo")].value == pytest.approx(5 * math.log10(10))
    assert parts[("social", "engagement@douyin")].value == pytest.approx(20 * 0.08)
    assert parts[("social", "followers@douyin")].measure == 200_000


@pytest.fixture
def plugin_config() -> dict[str, dict[str, object]]:
    return {
        "scoring": {
            "profile": {
                "completeness": {"company": 4, "emails": 6},
                "attributes": [{"key": "industry", "equals": "retail", "points": 10}, {"key": "budget", "points": 3}],
            },
        }
    }


async def test_profile_fit_counts_filled_fields_and_configured_attribute_rules(shop: Shop) -> None:
    cid = await shop.customer(company="ACME", emails=["li@acme.cn"], attributes={"industry": "retail", "budget": 5000})
    other = await shop.customer(attributes={"industry": "bank"})
    await shop.interact(cid, "note")
    await shop.interact(other, "note")
    parts = await shop.parts(cid)
    assert {k: p.value for k, p in parts.items()} == {
        ("profile", "company"): 4,
        ("profile", "emails"): 6,
        ("profile", "attribute:industry=retail"): 10,
        ("profile", "attribute:budget"): 3,
    }
    assert await shop.parts(other) == {}


async def test_a_merge_gives_the_survivor_the_score_of_both_timelines_and_drops_the_tombstones(shop: Shop) -> None:
    from guanxi.core.services.merge import merge_customers

    survivor = await shop.customer("Li Lei")
    merged = await shop.customer("李雷")
    await shop.interact(survivor, "visit")
    await shop.interact(merged, "meeting")
    assert await shop.total(merged) == pytest.approx(15)
    async with shop.runtime.transaction(shop.ctx) as tx:
        await merge_customers(tx, survivor, merged)
    assert await shop.total(survivor) == pytest.approx(25)
    assert await shop.total(merged) is None and await shop.parts(merged) == {}


async def test_a_departure_reported_by_a_channel_rescores_the_customer(shop: Shop) -> None:
    """guanxi_contact_left recomputes: the channel's contact_removed interaction is counted even
    when the departure event is the last to arrive."""
    from guanxi.core.domain.events import ContactLeft
    from guanxi.core.hooks.manager import fire
    from guanxi.core.runtime import Tx

    cid = await shop.customer()
    async with shop.runtime.write_session(shop.ctx.tenant_id) as s:  # recorded without its own event
        from guanxi.core.services.interactions import InteractionInput, record_interaction

        await record_interaction(
            Tx(shop.runtime, s, shop.ctx), InteractionInput(customer_id=cid, channel="wecom", kind="contact_removed", occurred_at=NOW)
        )
    assert await shop.total(cid) == 0
    event = ContactLeft(
        tenant_id=shop.ctx.tenant_id,
        actor=shop.ctx.actor,
        customer_id=cid,
        channel="wecom",
        external_id="wm1",
        staff_user_id=None,
        reason="removed_staff",
        occurred_at=NOW,
    )
    await fire(shop.runtime.pm.hook.guanxi_contact_left, runtime=shop.runtime, event=event)
    assert await shop.total(cid) == pytest.approx(-25)


class TestShortHalfLife:
    @pytest.fixture
    def plugin_config(self) -> dict[str, dict[str, object]]:
        return {"scoring": {"engagement": {"half_life_days": 0.5, "rules": [{"kind": "visit", "points": 10, "channel": "shop"}]}}}

    async def test_a_decade_old_interaction_decays_to_zero_without_an_underflow_error(self, shop: Shop) -> None:
        """exp() of a huge negative exponent is clamped (PostgreSQL raises on underflow)."""
        cid = await shop.customer()
        await shop.interact(cid, "visit", channel="shop", at=NOW - 3650 * DAY)
        await shop.interact(cid, "visit", channel="wecom", at=NOW)  # the only rule is for the shop
        part = (await shop.parts(cid))[("engagement", "visit@shop")]
        assert part.count == 1 and 0 <= part.value < 1e-300
        assert ("engagement", "visit@*") not in await shop.parts(cid)


async def test_a_merge_then_its_undo_leaves_both_scores_as_before(shop: Shop) -> None:
    """guanxi_merge_undone: after the undo each customer's total and parts are what they were
    before the merge (the survivor no longer counts the merged timeline; the restored customer
    has its score back)."""
    from guanxi.core.services.merge import merge_customers
    from guanxi.core.services.merge_undo import undo_merge

    survivor = await shop.customer("Li Lei", company="Acme")
    merged = await shop.customer("李雷", emails=["lilei@example.com"])
    await shop.interact(survivor, "visit")
    await shop.interact(merged, "meeting")
    await shop.interact(merged, "message_in", at=NOW - dt.timedelta(days=3))

    async def scores() -> dict[uuid.UUID, Any]:
        parts = {c: {k: (p.count, p.value, p.measure) for k, p in (await shop.parts(c)).items()} for c in (survivor, merged)}
        return {c: (await shop.total(c), parts[c]) for c in (survivor, merged)}

    before = await scores()
    assert before[merged][0] is not None and before[merged][0] > 0
    async with shop.runtime.transaction(shop.ctx) as tx:
        await merge_customers(tx, survivor, merged)
    merged_state = await scores()
    assert merged_state[merged] == (None, {}) and merged_state[survivor][0] > before[survivor][0]  # type: ignore[operator]
    async with shop.runtime.transaction(shop.ctx) as tx:
        await undo_merge(tx, merged)
    assert await scores() == before
