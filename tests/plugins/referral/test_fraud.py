"""Anti-fraud rules of attribution: no self-referral, one attribution per person across
channels, only new customers, no cycles, a cool-down between touches; and the touch model."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.events import ContactArrived
from guanxi.core.domain.models import AuditEvent
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.graphql.ids import to_global_id
from guanxi.testing import GraphQL
from tests.plugins.referral.conftest import PUBLIC_URL, Pigeon, create_campaign, customer_id_of, mint, staff

pytestmark = pytest.mark.plugins("pigeon", "referral")

REFERRED = """
query($id: ID!) { customer(id: $id) {
  referredBy { customer { displayName } user { name } firstTouch { at } lastTouch { at channel } }
} }"""


async def referred_by(graphql: GraphQL, customer: str) -> Any:
    return (await graphql(REFERRED, {"id": customer}))["data"]["customer"]["referredBy"]


async def refusals(runtime: Runtime, tenant_id: uuid.UUID) -> list[str]:
    async with runtime.session(tenant_id) as s:
        rows = await s.execute(
            select(AuditEvent.changes).where(AuditEvent.action == "referral.attribution.refuse").order_by(AuditEvent.occurred_at)
        )
        return [c["reason"] for c in rows.scalars()]


async def arrive(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID, token: str, *, channel: str = "wecom") -> None:
    """What a channel plugin does: emit ContactArrived with the token as state."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        tx.emit(
            "guanxi_contact_arrived",
            ContactArrived(
                tenant_id=tenant_id,
                actor=tx.ctx.actor,
                customer_id=customer_id,
                identity_id=uuid.uuid4(),
                channel=channel,
                external_id=f"ext-{customer_id}",
                state=token,
                staff_user_id=None,
                new_customer=True,
                occurred_at=dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC),
            ),
        )


async def new_customer(runtime: Runtime, tenant_id: uuid.UUID, name: str, **fields: Any) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return (await create_customer(tx, CustomerInput(display_name=name, **fields))).id


async def test_a_person_using_their_own_token_under_another_account_is_not_attributed(
    graphql: GraphQL, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    bo = await new_customer(runtime, tenant_id, "Bo", phones=["+86 138 0013 8000"])
    token = (await mint(graphql, customer=to_global_id("Customer", bo)))["token"]
    twin = await new_customer(runtime, tenant_id, "Bo again", phones=["+8613800138000"])
    await arrive(runtime, tenant_id, twin, token)
    await arrive(runtime, tenant_id, bo, token)
    assert await referred_by(graphql, to_global_id("Customer", twin)) is None
    assert await referred_by(graphql, to_global_id("Customer", bo)) is None
    assert await refusals(runtime, tenant_id) == ["self", "self"]


async def test_one_attribution_per_person_across_channels(graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await create_campaign(graphql)
    li = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
    zhang = (await mint(graphql, user=await staff(runtime, tenant_id, "zhang@example.com", "Zhang San")))["token"]
    await pigeon.follow("chen", li, name="Chen")
    chen = await customer_id_of(runtime, tenant_id, "chen")
    update = 'mutation($id: ID!) { updateCustomer(id: $id, input: {emails: ["chen@example.com"]}) { errors { message } } }'
    await graphql(update, {"id": chen})
    # the same person arrives on another channel as a customer core could not match
    other = await new_customer(runtime, tenant_id, "Chen (WeCom)", emails=["Chen@Example.com"])
    await arrive(runtime, tenant_id, other, zhang)
    assert await referred_by(graphql, to_global_id("Customer", other)) is None
    assert (await referred_by(graphql, chen))["user"] == {"name": "Li Wei"}
    assert await refusals(runtime, tenant_id) == ["duplicate_person"]


async def test_an_existing_customer_arriving_with_a_token_is_not_a_referral(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    token = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
    await pigeon.send("message", "eve", text="hello")
    await pigeon.follow("eve", token)
    assert await referred_by(graphql, await customer_id_of(runtime, tenant_id, "eve")) is None
    assert await refusals(runtime, tenant_id) == ["not_new"]


async def test_an_unknown_state_is_ignored_and_a_follow_without_state_attributes_nothing(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    await pigeon.follow("fay", "not-a-real-token-12345")
    await pigeon.follow("gus")
    assert await referred_by(graphql, await customer_id_of(runtime, tenant_id, "fay")) is None
    assert await referred_by(graphql, await customer_id_of(runtime, tenant_id, "gus")) is None
    assert await refusals(runtime, tenant_id) == ["unknown_token"]


async def test_first_touch_keeps_the_inviter_and_a_touch_within_the_cool_down_is_ignored(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    li = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
    zhang = (await mint(graphql, user=await staff(runtime, tenant_id, "zhang@example.com", "Zhang San")))["token"]
    await pigeon.follow("hu", li, at="2026-05-01T08:00:00Z")
    hu = await customer_id_of(runtime, tenant_id, "hu")
    await pigeon.follow("hu", zhang, at="2026-05-01T08:30:00Z")  # within the 1 h cool-down
    assert (await referred_by(graphql, hu))["lastTouch"]["at"] == "2026-05-01T08:00:00+00:00"
    await pigeon.follow("hu", zhang, at="2026-05-01T10:00:00Z")
    found = await referred_by(graphql, hu)
    assert found["user"] == {"name": "Li Wei"}  # first touch decides
    assert (found["firstTouch"]["at"], found["lastTouch"]["at"]) == ("2026-05-01T08:00:00+00:00", "2026-05-01T10:00:00+00:00")
    assert await refusals(runtime, tenant_id) == ["cooldown"]


class TestLastTouch:
    @pytest.fixture
    def plugin_config(self, tmp_path: Any) -> dict[str, dict[str, Any]]:
        return {
            "pigeon": {"webhook_secret": "referral-test-secret"},
            "referral": {
                "public_url": PUBLIC_URL,
                "attribution_model": "last_touch",
                "cooldown_hours": 0,
                "poster_cache_dir": str(tmp_path),
            },
        }

    async def test_last_touch_moves_the_inviter(self, graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        await create_campaign(graphql)
        li = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
        zhang = (await mint(graphql, user=await staff(runtime, tenant_id, "zhang@example.com", "Zhang San")))["token"]
        await pigeon.follow("ivy", li, at="2026-05-01T08:00:00Z")
        await pigeon.follow("ivy", zhang, at="2026-05-03T08:00:00Z")
        assert (await referred_by(graphql, await customer_id_of(runtime, tenant_id, "ivy")))["user"] == {"name": "Zhang San"}

    async def test_a_touch_that_would_close_a_loop_is_refused(
        self, graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        await create_campaign(graphql)
        li = (await mint(graphql, user=await staff(runtime, tenant_id)))["token"]
        await pigeon.follow("ann", li, name="Ann")
        ann = await customer_id_of(runtime, tenant_id, "ann")
        await pigeon.follow("ben", (await mint(graphql, customer=ann))["token"], name="Ben")
        ben = await customer_id_of(runtime, tenant_id, "ben")
        await pigeon.follow("cai", (await mint(graphql, customer=ben))["token"], name="Cai")
        cai = await customer_id_of(runtime, tenant_id, "cai")
        # Ann comes back through Cai's token: Cai was brought in by Ben, whom Ann brought in
        await pigeon.follow("ann", (await mint(graphql, customer=cai))["token"], at="2026-05-04T08:00:00Z")
        assert (await referred_by(graphql, ann))["user"] == {"name": "Li Wei"}
        assert await refusals(runtime, tenant_id) == ["cycle"]
