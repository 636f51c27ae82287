"""Who may claim from a pool (roles and/or teams) and the daily claim limit per role (issue 20
item 3), through GraphQL with sales and manager keys: a refused claim leaves the lead open."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import User
from guanxi.core.runtime import Runtime
from tests.plugins.sales.conftest import CLAIM, PUT, Team, new_customer

pytestmark = pytest.mark.plugins("sales")

CREATE = """mutation($input: CreateLeadPoolInput!) { createLeadPool(input: $input) {
  pool { key claimRoles claimTeams dailyClaimLimits { role limit } } errors { code field message } } }"""


async def _pool(team: Team, **extra: Any) -> dict[str, Any]:
    body = await team.call["admin"](CREATE, {"input": {"key": "east", "name": "华东", **extra}})
    assert body["data"]["createLeadPool"]["errors"] == [], body
    pool: dict[str, Any] = body["data"]["createLeadPool"]["pool"]
    return pool


async def _leads(runtime: Runtime, team: Team, n: int) -> list[str]:
    out = []
    for i in range(n):
        cid = await new_customer(runtime, team.tenant_id, f"Lead {i}", owner=team.users["mia"])
        assert (await team.call["mia"](PUT, {"id": cid, "pool": "east"}))["data"]["putLeadInPool"]["errors"] == []
        out.append(cid)
    return out


async def _claim(team: Team, who: str, cid: str) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = (await team.call[who](CLAIM, {"id": cid}))["data"]["claimLead"]["errors"]
    return errors


async def test_a_pool_names_the_roles_and_teams_that_may_claim(runtime: Runtime, team: Team) -> None:
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        li = (await tx.session.scalars(select(User).where(User.id == team.users["li"]))).one()
        li.team = "north"
    pool = await _pool(team, claimRoles=["sales"], claimTeams=["north"])
    assert (pool["claimRoles"], pool["claimTeams"]) == (["sales"], ["north"])
    a, b = await _leads(runtime, team, 2)
    refused = await _claim(team, "mia", a)  # a manager: not a role of this pool
    assert refused[0]["code"] == "FORBIDDEN" and "sales" in refused[0]["message"]
    refused = await _claim(team, "wu", a)  # a salesperson of no team
    assert refused[0]["code"] == "FORBIDDEN" and "north" in refused[0]["message"]
    assert await _claim(team, "li", a) == []
    open_leads = (await team.call["wu"]('{ poolLeads(pool: "east") { customerId } }'))["data"]["poolLeads"]
    assert [row["customerId"] for row in open_leads] == [b]  # the refused claims left b open


async def test_the_daily_claim_limit_of_a_role_is_named_when_reached(runtime: Runtime, team: Team) -> None:
    pool = await _pool(team, dailyClaimLimits=[{"role": "sales", "limit": 2}])
    assert pool["claimRoles"] == ["admin", "manager", "sales"] and pool["dailyClaimLimits"] == [{"role": "sales", "limit": 2}]
    leads = await _leads(runtime, team, 4)
    assert await _claim(team, "li", leads[0]) == [] and await _claim(team, "li", leads[1]) == []
    third = await _claim(team, "li", leads[2])
    assert third[0]["code"] == "LIMIT_REACHED" and "daily claim limit" in third[0]["message"]
    release = 'mutation($id: ID!) { releaseLead(customerId: $id, reason: "wrong region") { errors { code } } }'
    assert (await team.call["li"](release, {"id": leads[0]}))["data"]["releaseLead"]["errors"] == []
    assert (await _claim(team, "li", leads[2]))[0]["code"] == "LIMIT_REACHED"  # releasing does not give a claim back
    assert await _claim(team, "wu", leads[2]) == []  # the limit is per user
    assert await _claim(team, "mia", leads[3]) == []  # a manager's role has no limit here


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"claimRoles": ["boss"]}, "claimRoles"),
        ({"claimRoles": []}, "claimRoles"),
        ({"claimTeams": [" "]}, "claimTeams"),
        ({"dailyClaimLimits": [{"role": "sales", "limit": 0}]}, "dailyClaimLimits"),
        ({"dailyClaimLimits": [{"role": "boss", "limit": 3}]}, "dailyClaimLimits"),
        ({"dailyClaimLimits": [{"role": "sales", "limit": 3}, {"role": "sales", "limit": 4}]}, "dailyClaimLimits"),
    ],
)
async def test_bad_claim_rules_are_refused_naming_the_field(team: Team, extra: dict[str, Any], field: str) -> None:
    body = await team.call["admin"](CREATE, {"input": {"key": "east", "name": "华东", **extra}})
    errors = body["data"]["createLeadPool"]["errors"]
    assert errors and errors[0]["code"] == "VALIDATION" and errors[0]["field"] == field, errors
