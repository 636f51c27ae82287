"""The contracts' pool return rule as SQL: held leads whose last contract ended more than N days
ago without a new one match; a running contract, a renewal, or no contract at all do not."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.graphql.ids import from_global_id
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
