"""Owner from a salesperson's referral poster (issue 20 item 4): a person who arrives through a
staff member's token (the state of their poster's link or QR code) becomes a customer owned by
that staff member, through core's ``guanxi_assign_owner``, unless a rule of another plugin answers
first; a customer's token, an unknown state or no state leave the customer unassigned."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import Arrival
from guanxi.core.domain.models import Customer
from guanxi.core.services import users
from guanxi.graphql.ids import to_global_id
from guanxi.testing import GraphQL
from guanxi.testing.plugin import api_key
from tests.plugins.referral.conftest import Pigeon, create_campaign, customer_id_of, mint


class Rule:
    """A rule that says otherwise for the Pigeon account "vip"."""

    owner: uuid.UUID | None = None

    @hookimpl(tryfirst=True)
    def guanxi_assign_owner(self, arrival: Arrival | None) -> uuid.UUID | None:
        return self.owner if arrival is not None and arrival.external_id == "vip" else None


RULE = Rule()
pytestmark = pytest.mark.plugins("pigeon", "referral", "rule")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"rule": RULE}


async def test_a_person_who_follows_a_salespersons_poster_becomes_their_customer_unless_a_rule_says_otherwise(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        li = await users.create_user(tx, email="li@acme.example", name="李伟", role="sales")
        boss = await users.create_user(tx, email="boss@acme.example", name="Boss", role="manager")
    RULE.owner = boss.id
    await create_campaign(graphql)
    poster = await mint(graphql, user=to_global_id("User", li.id))
    assert poster["posterUrl"]  # the salesperson's poster carries this token in its QR code
    await pigeon.follow("ann", poster["token"], name="Ann")  # scanned Li's poster, followed on Pigeon
    await pigeon.follow("vip", poster["token"], name="Vip")  # a rule of another plugin answers first
    ann = await customer_id_of(runtime, tenant_id, "ann")
    await pigeon.follow("bo", (await mint(graphql, customer=ann))["token"], name="Bo")  # a customer's token
    await pigeon.follow("cy", "not-a-token-of-ours", name="Cy")
    await pigeon.follow("di", name="Di")
    async with runtime.session(tenant_id) as s:
        owners = {name: owner for name, owner in await s.execute(select(Customer.display_name, Customer.owner_id))}
    assert owners == {"Ann": li.id, "Vip": boss.id, "Bo": None, "Cy": None, "Di": None}

    li_key = await api_key(runtime, tenant_id, "sales", user_id=li.id)
    query = "{ customers(first: 10) { edges { node { displayName owner { email } } } } }"
    mine = (await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {li_key}"})).json()
    assert [e["node"] for e in mine["data"]["customers"]["edges"]] == [{"displayName": "Ann", "owner": {"email": "li@acme.example"}}]


async def test_an_inactive_salespersons_poster_leaves_the_customer_unassigned(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        gone = await users.create_user(tx, email="gone@acme.example", name="Gone", role="sales")
    await create_campaign(graphql)
    token = (await mint(graphql, user=to_global_id("User", gone.id)))["token"]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        (await tx.session.get(type(gone), (tenant_id, gone.id))).active = False  # type: ignore[union-attr]
    await pigeon.follow("eve", token, name="Eve")
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(Customer.owner_id).where(Customer.display_name == "Eve"))).scalar_one() is None
