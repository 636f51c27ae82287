"""The contracts' pool return rule as SQL: held leads whose last contract ended more than N days
ago without a new one match; a running contract, a renewal, or no contract at all do not."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer
from guanxi.core.runtime import Runtime
from guanxi.core.services.schedule import tenant_zone
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.sales.deals.models import SalesContract, SalesDeal
from guanxi.plugins.sales.deals.pool_rule import contract_lapsed, rule_text
from guanxi.plugins.sales.deals.service import DealInput, create_deal, move_deal
from guanxi.plugins.sales.models import SalesPool, SalesPoolLead
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")
TODAY = dt.date(2026, 6, 1)


async def _with_contracts(runtime: Runtime, team: Team, name: str, ends: list[dt.date]) -> uuid.UUID:
    cid = from_global_id(await new_customer(runtime, team.tenant_id, name, owner=team.users["li"]), "Customer")
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        for n, end in enumerate(ends):
            deal: SalesDeal = await create_deal(tx, DealInput(customer_id=cid, title=f"{name}-{n}", amount=Decimal(100)))
            await move_deal(tx, deal.id, "won")
            tx.session.add(
                SalesContract(customer_id=cid, deal_id=deal.id, number=f"{name}-{n}", owner_id=team.users["li"], amount=Decimal(100),
                              currency="CNY", signed_on=end - dt.timedelta(days=365), starts_on=end - dt.timedelta(days=365), ends_on=end)
            )  # fmt: skip
        pool = (await tx.session.execute(select(SalesPool.id))).scalar_one()
        tx.session.add(SalesPoolLead(customer_id=cid, pool_id=pool, status="held", holder_id=team.users["li"]))
    return cid


async def test_only_leads_whose_last_contract_ended_n_days_ago_without_a_new_one_match(runtime: Runtime, team: Team) -> None:
    body = await team.call["admin"]('mutation { createLeadPool(input: {key: "east", name: "East"}) { errors { code } } }')
    assert body["data"]["createLeadPool"]["errors"] == []
    lapsed = await _with_contracts(runtime, team, "lapsed", [TODAY - dt.timedelta(days=400), TODAY - dt.timedelta(days=40)])
    renewed = await _with_contracts(runtime, team, "renewed", [TODAY - dt.timedelta(days=40), TODAY + dt.timedelta(days=300)])
    recent = await _with_contracts(runtime, team, "recent", [TODAY - dt.timedelta(days=10)])
    never = await _with_contracts(runtime, team, "never", [])
    async with runtime.session(team.tenant_id) as s:
        found = set(
            (
                await s.execute(
                    select(SalesPoolLead.customer_id).where(contract_lapsed(SalesPoolLead.tenant_id, SalesPoolLead.customer_id, TODAY, 30))
                )
            )
            .scalars()
            .all()
        )
    assert found == {lapsed} and not {renewed, recent, never} & found
    assert rule_text(30) == "30 days after the last contract ended without a new one"


async def test_a_pool_with_the_contract_rule_takes_back_a_lead_whose_contract_lapsed(runtime: Runtime, team: Team) -> None:
    """A pool created with returnAfterContractDays schedules the return job; a run gives back the
    held lead whose last contract ended 40 days ago (history: return, by the contract rule) and
    keeps the renewed one."""
    from guanxi.core.domain.models import ScheduledJob
    from guanxi.plugins.sales import pool as svc
    from tests.plugins.sales.conftest import CLAIM, PUT

    q = """mutation { createLeadPool(input: {key: "renewals", name: "续约", returnAfterContractDays: 30}) {
      pool { returnAfterContractDays } errors { code } } }"""
    made = (await team.call["admin"](q))["data"]["createLeadPool"]
    assert made == {"pool": {"returnAfterContractDays": 30}, "errors": []}
    today = dt.datetime.now(dt.UTC).date()
    ids = {}
    for name, ends in (
        ("lapsed", [today - dt.timedelta(days=40)]),
        ("renewed", [today - dt.timedelta(days=40), today + dt.timedelta(days=300)]),
    ):
        cid = from_global_id(await new_customer(runtime, team.tenant_id, name, owner=team.users["li"]), "Customer")
        async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
            for n, end in enumerate(ends):
                deal = await create_deal(tx, DealInput(customer_id=cid, title=f"{name}-{n}", amount=Decimal(100)))
                await move_deal(tx, deal.id, "won")
                begun = end - dt.timedelta(days=365)
                tx.session.add(
                    SalesContract(customer_id=cid, deal_id=deal.id, number=f"{name}-{n}", owner_id=team.users["li"], amount=Decimal(100),
                                  currency="CNY", signed_on=begun, starts_on=begun, ends_on=end)
                )  # fmt: skip
        gid = to_global_id("Customer", cid)
        assert (await team.call["admin"](PUT, {"id": gid, "pool": "renewals"}))["data"]["putLeadInPool"]["errors"] == []
        assert (await team.call["li"](CLAIM, {"id": gid}))["data"]["claimLead"]["errors"] == []
        ids[name] = cid
    async with runtime.session(team.tenant_id) as s:
        assert (await s.execute(select(ScheduledJob.kind).where(ScheduledJob.kind == svc.RETURN_JOB))).scalar_one() == svc.RETURN_JOB
    assert await svc.run_return_rules(runtime, team.tenant_id, dt.datetime.now(dt.UTC), "k") == (1, 0)
    async with runtime.session(team.tenant_id) as s:
        owners = dict((await s.execute(select(Customer.id, Customer.owner_id).where(Customer.id.in_(ids.values())))).all())
    assert owners == {ids["lapsed"]: None, ids["renewed"]: team.users["li"]}
    history = await team.call["admin"](
        "query($id: ID!) { customer(id: $id) { poolHistory { action rule } } }", {"id": to_global_id("Customer", ids["lapsed"])}
    )
    assert history["data"]["customer"]["poolHistory"][-1] == {"action": "return", "rule": rule_text(30)}


async def test_the_holder_is_told_a_day_before_the_contract_rule_takes_a_lead_back(runtime: Runtime, team: Team) -> None:
    """A lead whose last contract ended 30 days ago on the tenant's calendar (not UTC's: Shanghai
    is a day ahead from 16:00 UTC on) under a 30-day rule stays, and its holder is notified once
    (a second run tells nobody); the next day it returns."""
    from guanxi.core.domain.models import Notification
    from guanxi.plugins.sales import pool as svc
    from tests.plugins.sales.conftest import CLAIM, PUT

    q = 'mutation { createLeadPool(input: {key: "renewals", name: "续约", returnAfterContractDays: 30}) { errors { code } } }'
    assert (await team.call["admin"](q))["data"]["createLeadPool"]["errors"] == []
    # 17:00 UTC is 01:00 of the next day in Shanghai (the tenant's zone): the run falls on the
    # edge where the two calendars differ, every time the test runs, not only in the evening.
    now = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), dt.time(17), dt.UTC)
    async with runtime.session(team.tenant_id) as s:
        zone = await tenant_zone(s)
    assert zone.key == "Asia/Shanghai"
    today = now.astimezone(zone).date()  # the rule counts days on the tenant's calendar
    cid = from_global_id(await new_customer(runtime, team.tenant_id, "soon", owner=team.users["li"]), "Customer")
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        deal = await create_deal(tx, DealInput(customer_id=cid, title="soon", amount=Decimal(100)))
        await move_deal(tx, deal.id, "won")
        end = today - dt.timedelta(days=30)  # lapsed by more than 30 days from tomorrow on
        tx.session.add(
            SalesContract(customer_id=cid, deal_id=deal.id, number="soon", owner_id=team.users["li"], amount=Decimal(100),
                          currency="CNY", signed_on=end - dt.timedelta(days=365), starts_on=end - dt.timedelta(days=365), ends_on=end)
        )  # fmt: skip
    gid = to_global_id("Customer", cid)
    assert (await team.call["admin"](PUT, {"id": gid, "pool": "renewals"}))["data"]["putLeadInPool"]["errors"] == []
    assert (await team.call["li"](CLAIM, {"id": gid}))["data"]["claimLead"]["errors"] == []
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k1") == (0, 1)
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k2") == (0, 0)
    async with runtime.session(team.tenant_id) as s:
        (note,) = (await s.scalars(select(Notification).where(Notification.user_id == team.users["li"]))).all()
        assert note.kind == svc.RETURN_NOTICE and "tomorrow" in note.title
    assert await svc.run_return_rules(runtime, team.tenant_id, now + dt.timedelta(days=1), "k3") == (1, 0)


def test_months_before_keeps_the_wall_clock_and_clamps_the_day() -> None:
    from guanxi.plugins.sales.deals.pool_rule import months_before

    at = dt.datetime(2026, 3, 31, 9, 30, tzinfo=dt.UTC)
    assert months_before(at, 1) == dt.datetime(2026, 2, 28, 9, 30, tzinfo=dt.UTC)
    assert months_before(at, 13) == dt.datetime(2025, 2, 28, 9, 30, tzinfo=dt.UTC)
    assert months_before(dt.datetime(2024, 5, 31, tzinfo=dt.UTC), 3) == dt.datetime(2024, 2, 29, tzinfo=dt.UTC)


async def test_no_won_deal_months_after_the_first_inquiry_returns_leads_and_warns_a_day_before(runtime: Runtime, team: Team) -> None:
    """``sales.no_won_deal`` (3 months): the first inquiry is the first inbound interaction, else
    the customer's creation. Returned: asked 4 months ago and never won; entered by hand 4 months
    ago and never wrote. Kept: asked 4 months ago and won a deal; entered 4 months ago but first
    wrote a month ago. Warned: asked 3 months ago less half a day (lapses tomorrow)."""
    from sqlalchemy import update

    from guanxi.core.domain.models import Notification
    from guanxi.core.services import interactions
    from guanxi.plugins.sales import pool as svc
    from guanxi.plugins.sales.deals.pool_rule import months_before, no_won_deal_text
    from tests.plugins.sales.conftest import CLAIM, PUT

    q = """mutation { createLeadPool(input: {key: "inbound", name: "询盘", returnRules: [{rule: "sales.no_won_deal", value: 3}]}) {
      pool { returnRules { rule value unit text } } errors { code } } }"""
    made = (await team.call["mia"](q))["data"]["createLeadPool"]
    assert made["pool"]["returnRules"] == [{"rule": "sales.no_won_deal", "value": 3, "unit": "MONTHS", "text": no_won_deal_text(3)}]
    now = dt.datetime.now(dt.UTC)
    four_months = months_before(now, 4)
    cases = {  # name: (first inbound, created, won a deal)
        "asked-never-won": (four_months, None, False),
        "hand-entered-old": (None, four_months, False),
        "asked-and-won": (four_months, None, True),
        "old-but-asked-lately": (now - dt.timedelta(days=30), four_months, False),
        "lapses-tomorrow": (months_before(now, 3) + dt.timedelta(hours=12), None, False),
    }
    ids = {}
    for name, (inbound, created, won) in cases.items():
        cid = from_global_id(await new_customer(runtime, team.tenant_id, name, owner=team.users["li"]), "Customer")
        async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
            if created is not None:
                await tx.session.execute(update(Customer).where(Customer.id == cid).values(created_at=created))
            if inbound is not None:
                await interactions.record_interaction(
                    tx, interactions.InteractionInput(customer_id=cid, channel="web", kind="form", direction="in", occurred_at=inbound)
                )
            if won:
                deal = await create_deal(tx, DealInput(customer_id=cid, title=name, amount=Decimal(100)))
                await move_deal(tx, deal.id, "won")
        gid = to_global_id("Customer", cid)
        assert (await team.call["admin"](PUT, {"id": gid, "pool": "inbound"}))["data"]["putLeadInPool"]["errors"] == []
        assert (await team.call["li"](CLAIM, {"id": gid}))["data"]["claimLead"]["errors"] == []
        ids[name] = cid
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k1") == (2, 1)
    async with runtime.session(team.tenant_id) as s:
        back = set((await s.execute(select(Customer.id).where(Customer.id.in_(ids.values()), Customer.owner_id.is_(None)))).scalars())
        (note,) = (await s.scalars(select(Notification).where(Notification.user_id == team.users["li"]))).all()
    assert back == {ids["asked-never-won"], ids["hand-entered-old"]}
    assert note.title.startswith("lapses-tomorrow ") and "No won deal 3 months after the first inquiry" in note.body
    history = await team.call["admin"](
        "query($id: ID!) { customer(id: $id) { poolHistory { action rule } } }", {"id": to_global_id("Customer", ids["asked-never-won"])}
    )
    assert history["data"]["customer"]["poolHistory"][-1] == {"action": "return", "rule": "no won deal 3 months after the first inquiry"}
    assert await svc.run_return_rules(runtime, team.tenant_id, now + dt.timedelta(days=1), "k2") == (1, 0)
