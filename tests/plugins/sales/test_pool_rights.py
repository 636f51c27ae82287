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
    open_leads = (await team.call["mia"]('{ poolLeads(pool: "east") { customerId } }'))["data"]["poolLeads"]
    assert [row["customerId"] for row in open_leads] == [b]  # the refused claims left b open


LIST = '{ poolLeads(pool: "east") { customerId maskedPhones } }'


async def _listing(team: Team, who: str) -> Any:
    body = await team.call[who](LIST)
    if "errors" in body:
        (error,) = body["errors"]
        assert body["data"] is None
        return error["extensions"]["code"], error["message"]
    return [row["customerId"] for row in body["data"]["poolLeads"]]


async def test_only_users_the_pool_lets_claim_managers_and_admins_list_its_leads(runtime: Runtime, team: Team) -> None:
    """poolLeads of a pool for the team "north" of sales: li (sales, north) lists it; wu (sales,
    no team) gets FORBIDDEN naming the teams; the manager and the admin list it though the pool
    does not let them claim; nothing of a lead is in a refusal."""
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        li = (await tx.session.scalars(select(User).where(User.id == team.users["li"]))).one()
        li.team = "north"
    await _pool(team, claimRoles=["sales"], claimTeams=["north"])
    (lead,) = await _leads(runtime, team, 1)
    assert await _listing(team, "li") == [lead]
    assert await _listing(team, "mia") == [lead]
    assert await _listing(team, "admin") == [lead]
    code, message = await _listing(team, "wu")
    assert code == "FORBIDDEN" and "north" in message and "Lead" not in message


async def test_a_pool_for_managers_only_is_not_listed_to_salespeople(runtime: Runtime, team: Team) -> None:
    """A pool whose claimRoles leave out sales: a salesperson's poolLeads is FORBIDDEN naming the
    roles that may; a pool with the default roles is listed to every salesperson."""
    await _pool(team, claimRoles=["manager"])
    (lead,) = await _leads(runtime, team, 1)
    for who in ("li", "wu"):
        code, message = await _listing(team, who)
        assert code == "FORBIDDEN" and "manager" in message
    assert await _listing(team, "mia") == [lead]
    body = await team.call["admin"](CREATE, {"input": {"key": "west", "name": "华西"}})
    assert body["data"]["createLeadPool"]["errors"] == []
    for who in ("li", "wu"):
        listed = await team.call[who]('{ poolLeads(pool: "west") { customerId } }')
        assert listed["data"]["poolLeads"] == []


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
