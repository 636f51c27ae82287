"""Lead events that name no user open_id (issue 18 follow-up 2): the person is the phone number
of the lead, matched against customers' phones (core contact points) or made a new customer
with it, in both ``content`` forms; a lead with neither an open_id nor a phone stays ignored."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import Customer, Identity, Interaction
from guanxi.plugins.douyin.models import DouyinEvent
from tests.plugins.douyin.conftest import deliver, envelope, settle

pytestmark = pytest.mark.plugins("douyin")

CUSTOMERS = "{ customers(first: 10) { edges { node { displayName phones douyin { openId leadAnswers { label value } } } } } }"


async def leads(runtime: Runtime, tenant_id: uuid.UUID) -> list[Interaction]:
    async with runtime.session(tenant_id) as s:
        stmt = select(Interaction).where(Interaction.channel == "douyin").order_by(Interaction.recorded_at)
        return list((await s.execute(stmt)).scalars())


@pytest.mark.parametrize("as_string", [True, False], ids=["content-as-json-string", "content-as-object"])
async def test_a_lead_without_an_open_id_joins_the_customer_who_has_its_phone(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any, as_string: bool
) -> None:
    made = await graphql('mutation { createCustomer(input: {displayName: "张女士", phones: ["+86 138-0013-8000"]}) { customer { id } } }')
    assert made["data"]["createCustomer"]["customer"]["id"]
    content = {"name": "张女士", "telephone": "+8613800138000", "create_time": "1765000000"}
    body = envelope("website_contact", content, to_user=business, as_string=as_string)  # no from_user_id
    assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    (row,) = await leads(runtime, tenant_id)
    assert row.kind == "lead" and row.payload["phone"] == "+8613800138000"
    async with runtime.session(tenant_id) as s:
        people = list((await s.execute(select(Customer))).scalars())
    assert [p.display_name for p in people] == ["张女士"] and row.customer_id == people[0].id
    assert people[0].attributes["douyin_lead"]["lead_type"] == "website_contact"
    async with runtime.session(tenant_id) as s:
        assert await s.scalar(select(DouyinEvent.dedupe_key)) is None  # not kept as ignored


@pytest.mark.parametrize("as_string", [True, False], ids=["content-as-json-string", "content-as-object"])
async def test_a_lead_without_an_open_id_and_an_unknown_phone_makes_a_customer_and_a_second_lead_finds_them(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any, as_string: bool
) -> None:
    first = envelope("dial_phone", {"phone": "139 0000 1111", "create_time": "1765000000"}, to_user=business, as_string=as_string)
    second = envelope("personal_tab_contact", {"mobile": "13900001111", "city": "杭州"}, from_user=business, as_string=as_string)
    for body in (first, second):
        assert (await deliver(anonymous_client, body)).status_code == 200
    await settle(runtime, tenant_id)
    rows = await leads(runtime, tenant_id)
    assert [r.payload["lead_type"] for r in rows] == ["dial_phone", "personal_tab_contact"]
    assert rows[0].customer_id == rows[1].customer_id
    async with runtime.session(tenant_id) as s:
        (identity,) = (await s.execute(select(Identity).where(Identity.channel == "douyin"))).scalars()
    assert identity.external_id == "lead-phone:13900001111"
    (edge,) = (await graphql(CUSTOMERS))["data"]["customers"]["edges"]
    assert edge["node"]["phones"] == ["13900001111"]
    assert {a["label"]: a["value"] for a in edge["node"]["douyin"]["leadAnswers"]} == {"mobile": "13900001111", "city": "杭州"}


async def test_a_lead_with_an_open_id_keeps_the_account_as_the_customers_douyin_identity(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any
) -> None:
    """The phone-only lead and a later lead of the same phone from an account: one customer, and
    ``Customer.douyin`` shows the account, not the phone contact."""
    phone_only = envelope("dial_phone", {"phone": "13700001234"}, to_user=business)
    with_account = envelope("website_contact", {"telephone": "13700001234"}, from_user="cust-acc", to_user=business)
    for body in (phone_only, with_account):
        assert (await deliver(anonymous_client, body)).status_code == 200
        await settle(runtime, tenant_id)
    rows = await leads(runtime, tenant_id)
    assert len(rows) == 2 and rows[0].customer_id == rows[1].customer_id
    (edge,) = (await graphql(CUSTOMERS))["data"]["customers"]["edges"]
    assert edge["node"]["douyin"]["openId"] == "cust-acc"


@pytest.mark.parametrize("content", [{"name": "无电话"}, {"phone": "138****0000"}])
async def test_a_lead_with_neither_an_open_id_nor_a_usable_phone_is_kept_as_ignored(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, content: dict[str, Any]
) -> None:
    assert (await deliver(anonymous_client, envelope("dial_phone", content, to_user=business))).status_code == 200
    await settle(runtime, tenant_id)
    assert await leads(runtime, tenant_id) == []
    async with runtime.session(tenant_id) as s:
        (row,) = (await s.execute(select(DouyinEvent))).scalars()
    assert (row.event, row.status) == ("dial_phone", "ignored")
