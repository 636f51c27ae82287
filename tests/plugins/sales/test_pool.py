"""The lead pool (公海) through GraphQL with manager and sales keys: a masked pool view, claims
decided once, the hold limit, release with a reason, return rules on the scheduler with a
notice a day before, and every move in the customer's pool history and the audit trail."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError
from guanxi.core.domain.models import AuditEvent, Customer, Notification, ScheduledJob, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import interactions
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import pool as svc
from guanxi.plugins.sales.models import SalesPoolLead
from tests.plugins.sales.conftest import CLAIM, CREATE_POOL, LEADS, PUT, RELEASE, Team, new_customer

pytestmark = pytest.mark.plugins("sales")


async def _pool(team: Team, key: str = "east", hold_limit: int | None = 2, return_after_days: int | None = 7) -> None:
    body = await team.call["admin"](
        CREATE_POOL, {"input": {"key": key, "name": "华东", "holdLimit": hold_limit, "returnAfterDays": return_after_days}}
    )
    assert body["data"]["createLeadPool"]["errors"] == [], body


async def _lead(runtime: Runtime, team: Team, name: str, phone: str = "+8613912345678", pool: str = "east") -> str:
    cid = await new_customer(runtime, team.tenant_id, name, phone, owner=team.users["mia"])
    body = await team.call["mia"](PUT, {"id": cid, "pool": pool, "reason": "no budget this year"})
    assert body["data"]["putLeadInPool"]["errors"] == [], body
    return cid


async def test_a_salesperson_sees_pool_leads_masked_claims_one_and_a_second_claim_conflicts(runtime: Runtime, team: Team) -> None:
    await _pool(team)
    cid = await _lead(runtime, team, "王芳")
    # before the claim: li cannot see the customer through `customers`, only through the pool
    mine = await team.call["li"]("{ customers { totalCount } }")
    assert mine["data"]["customers"]["totalCount"] == 0
    leads = (await team.call["li"](LEADS, {"pool": "east"}))["data"]["poolLeads"]
    assert [(lead["customerId"], lead["maskedPhones"]) for lead in leads] == [(cid, ["+86139****5678"])]
    claimed = (await team.call["li"](CLAIM, {"id": cid, "reason": "called back"}))["data"]["claimLead"]
    assert claimed["errors"] == []
    assert claimed["customer"]["owner"] == {"name": "li"} and claimed["customer"]["phones"] == ["+8613912345678"]
    assert (await team.call["wu"](LEADS, {"pool": "east"}))["data"]["poolLeads"] == []
    second = (await team.call["wu"](CLAIM, {"id": cid}))["data"]["claimLead"]
    assert second["errors"][0]["code"] == "CONFLICT" and second["customer"] is None
    history = await team.call["li"]("query($id: ID!) { customer(id: $id) { poolHistory { pool action reason userId rule } } }", {"id": cid})
    moves = history["data"]["customer"]["poolHistory"]
    assert [(m["pool"], m["action"], m["reason"]) for m in moves] == [
        ("east", "enter", "no budget this year"),
        ("east", "claim", "called back"),
    ]
    assert moves[1]["userId"] == team.gid("li")
    async with runtime.session(team.tenant_id) as s:
        actions = list((await s.execute(select(AuditEvent.action).order_by(AuditEvent.occurred_at))).scalars())
    assert [a for a in actions if a.startswith("sales.")] == ["sales.pool.create", "sales.pool.enter", "sales.pool.claim"]


async def test_the_hold_limit_refuses_a_claim_with_limit_reached_until_a_lead_is_released(runtime: Runtime, team: Team) -> None:
    await _pool(team, hold_limit=1)
    first, second = await _lead(runtime, team, "A"), await _lead(runtime, team, "B")
    assert (await team.call["li"](CLAIM, {"id": first}))["data"]["claimLead"]["errors"] == []
    refused = (await team.call["li"](CLAIM, {"id": second}))["data"]["claimLead"]["errors"][0]
    assert refused["code"] == "LIMIT_REACHED" and "hold limit" in refused["message"] and "'east'" in refused["message"]
    # another salesperson is not limited by li's holds
    assert (await team.call["wu"](CLAIM, {"id": second}))["data"]["claimLead"]["errors"] == []
    # releasing needs a reason; wu cannot release li's lead (not theirs: not found)
    no_reason = (await team.call["li"](RELEASE, {"id": first, "reason": " "}))["data"]["releaseLead"]["errors"][0]
    assert no_reason["code"] == "VALIDATION" and no_reason["field"] == "reason"
    assert (await team.call["wu"](RELEASE, {"id": first, "reason": "x"}))["data"]["releaseLead"]["errors"][0]["code"] == "NOT_FOUND"
    assert (await team.call["li"](RELEASE, {"id": first, "reason": "wrong region"}))["data"]["releaseLead"]["errors"] == []
    leads = (await team.call["wu"](LEADS, {"pool": "east"}))["data"]["poolLeads"]
    assert [lead["customerId"] for lead in leads] == [first]
    async with runtime.session(team.tenant_id) as s:
        assert (await s.execute(select(Customer.owner_id).where(Customer.id == from_global_id(first, "Customer")))).scalar_one() is None


async def test_pool_mistakes_are_clear_client_errors(runtime: Runtime, team: Team) -> None:
    await _pool(team)
    bad = await team.call["admin"](CREATE_POOL, {"input": {"key": "East Coast", "name": "x"}})
    assert bad["data"]["createLeadPool"]["errors"][0]["field"] == "key"
    bad = await team.call["admin"](CREATE_POOL, {"input": {"key": "west", "name": "x", "holdLimit": 0}})
    assert bad["data"]["createLeadPool"]["errors"][0]["field"] == "holdLimit"
    dup = await team.call["mia"](CREATE_POOL, {"input": {"key": "east", "name": "again"}})
    assert dup["data"]["createLeadPool"]["errors"][0]["code"] == "CONFLICT"
    forbidden = await team.call["li"](CREATE_POOL, {"input": {"key": "mine", "name": "mine"}})
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cid = await new_customer(runtime, team.tenant_id, "not pooled", owner=team.users["li"])
    assert (await team.call["wu"](CLAIM, {"id": cid}))["data"]["claimLead"]["errors"][0]["code"] == "NOT_FOUND"
    unknown = await team.call["li"](LEADS, {"pool": "nope"})
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    keyless = (await team.call["admin"](CLAIM, {"id": await _lead(runtime, team, "C")}))["data"]["claimLead"]["errors"][0]
    assert keyless["code"] == "NOT_A_USER"


async def test_claims_that_race_are_decided_once(runtime: Runtime, team: Team) -> None:
    """Four salespeople claim one lead at the same instant: exactly one owns it, the others get
    CONFLICT (SQLite serialises the writers; PostgreSQL re-checks the row's condition)."""
    await _pool(team, hold_limit=None)
    for name in ("zhao", "qian"):
        from tests.access.conftest import make_user

        team.users[name] = await make_user(runtime, team.tenant_id, f"{name}@corp.cn", "sales")
    cid = from_global_id(await _lead(runtime, team, "抢手客户"), "Customer")
    racers = ["li", "wu", "zhao", "qian"]

    async def claim(name: str) -> str:
        actor = Actor(kind="user", user_id=team.users[name], name=name, roles=("sales",))
        ctx = RequestContext(tenant_id=team.tenant_id, actor=actor, owners=frozenset({team.users[name]}))
        try:
            async with runtime.transaction(ctx) as tx:
                await svc.claim(tx, cid, "mine")
        except ConflictError:
            return "conflict"
        return "won"

    results = await asyncio.gather(*(claim(n) for n in racers))
    assert sorted(results) == ["conflict", "conflict", "conflict", "won"]
    winner = racers[results.index("won")]
    async with runtime.session(team.tenant_id) as s:
        assert (await s.execute(select(Customer.owner_id).where(Customer.id == cid))).scalar_one() == team.users[winner]
        lead = (await s.execute(select(SalesPoolLead).where(SalesPoolLead.customer_id == cid))).scalar_one()
        assert (lead.status, lead.holder_id) == ("held", team.users[winner])


async def test_return_rules_send_quiet_leads_back_and_warn_their_holder_a_day_before(runtime: Runtime, team: Team) -> None:
    """Creating a pool with a return rule schedules the hourly job; a run evaluates the rule in SQL:
    a lead held 8 days without follow-up returns (history: return, by the rule), one held 6.5 days
    gets its holder one notice (not two on a second run), one with a recent outbound interaction stays."""
    await _pool(team, hold_limit=None, return_after_days=7)
    async with runtime.session(team.tenant_id) as s:
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == svc.RETURN_JOB))).scalar_one()
    assert job.cron == svc.RETURN_CRON and job.status == "scheduled"
    ids = {}
    for name in ("quiet", "almost", "followed"):
        gid = await _lead(runtime, team, name)
        assert (await team.call["li"](CLAIM, {"id": gid}))["data"]["claimLead"]["errors"] == []
        ids[name] = from_global_id(gid, "Customer")
    now = utcnow()
    held_at = {"quiet": now - dt.timedelta(days=8), "almost": now - dt.timedelta(days=6, hours=12), "followed": now - dt.timedelta(days=9)}
    async with runtime.write_session(team.tenant_id) as s:
        for name, at in held_at.items():
            await s.execute(update(SalesPoolLead).where(SalesPoolLead.customer_id == ids[name]).values(held_at=at))
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await interactions.record_interaction(
            tx,
            interactions.InteractionInput(
                customer_id=ids["followed"], channel="phone", kind="call", direction="out", occurred_at=now - dt.timedelta(days=2)
            ),
        )
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k1") == (1, 1)
    assert await svc.run_return_rules(runtime, team.tenant_id, now, "k2") == (0, 0)  # warned once, returned once
    async with runtime.session(team.tenant_id) as s:
        owners = dict((await s.execute(select(Customer.id, Customer.owner_id).where(Customer.id.in_(ids.values())))).all())
        notes = (await s.execute(select(Notification).where(Notification.kind == svc.RETURN_NOTICE))).scalars().all()
    assert owners == {ids["quiet"]: None, ids["almost"]: team.users["li"], ids["followed"]: team.users["li"]}
    assert [(n.user_id, n.link_id) for n in notes] == [(team.users["li"], ids["almost"])]
    assert "almost" in notes[0].title and "tomorrow" in notes[0].title
    leads = (await team.call["wu"](LEADS, {"pool": "east"}))["data"]["poolLeads"]
    assert [from_global_id(lead["customerId"], "Customer") for lead in leads] == [ids["quiet"]]
    q = "query($id: ID!) { customer(id: $id) { poolHistory { action rule userId } } }"
    history = await team.call["admin"](q, {"id": leads[0]["customerId"]})
    last = history["data"]["customer"]["poolHistory"][-1]
    assert last == {"action": "return", "rule": "no follow-up for 7 days", "userId": None}


UPDATE_POOL = """mutation($input: CreateLeadPoolInput!) { updateLeadPool(input: $input) {
  pool { key name holdLimit returnAfterDays claimRoles returnRules { rule value } } errors { field code message } } }"""


async def test_a_manager_changes_a_pools_settings_audited_and_held_leads_stay(runtime: Runtime, team: Team) -> None:
    """updateLeadPool replaces the pool's settings (limit, rules, who may claim); the change is in
    the audit trail with what it was before; a lead held under the old settings stays held, and
    the new hold limit refuses the next claim."""
    await _pool(team, hold_limit=3)
    held = await _lead(runtime, team, "王芳")
    assert (await team.call["li"](CLAIM, {"id": held}))["data"]["claimLead"]["errors"] == []
    other = await _lead(runtime, team, "李雷", "+8613900002222")
    changed = await team.call["mia"](
        UPDATE_POOL,
        {
            "input": {
                "key": "east",
                "name": "华东大区",
                "holdLimit": 1,
                "returnAfterDays": 10,
                "claimRoles": ["sales"],
                "returnRules": [{"rule": "sales.no_won_deal", "value": 2}],
            }
        },
    )
    assert changed["data"]["updateLeadPool"] == {
        "pool": {
            "key": "east",
            "name": "华东大区",
            "holdLimit": 1,
            "returnAfterDays": 10,
            "claimRoles": ["sales"],
            "returnRules": [{"rule": "sales.no_won_deal", "value": 2}],
        },
        "errors": [],
    }
    async with runtime.session(team.tenant_id) as s:
        customer = await s.get(Customer, (team.tenant_id, from_global_id(held, "Customer")))
        assert customer is not None and customer.owner_id == from_global_id(team.gid("li"), "User")
        [entry] = (await s.execute(select(AuditEvent).where(AuditEvent.action == "sales.pool.update"))).scalars().all()
    assert entry.changes["changed"]["hold_limit"] == {"from": 3, "to": 1}
    assert entry.changes["changed"]["name"] == {"from": "华东", "to": "华东大区"}
    refused = (await team.call["li"](CLAIM, {"id": other}))["data"]["claimLead"]
    assert refused["errors"][0]["code"] == "LIMIT_REACHED"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"key": "nowhere"}, "NOT_FOUND", "key"),
        ({"holdLimit": 0}, "VALIDATION", "holdLimit"),
        ({"returnRules": [{"rule": "sales.no_such_rule", "value": 3}]}, "VALIDATION", "returnRules"),
        ({"claimRoles": ["wizard"]}, "VALIDATION", "claimRoles"),
    ],
)
async def test_a_bad_pool_change_is_refused_naming_the_field_and_changes_nothing(team: Team, change: dict, code: str, field: str) -> None:
    await _pool(team)
    body = await team.call["mia"](UPDATE_POOL, {"input": {"key": "east", "name": "华东"} | change})
    [error] = body["data"]["updateLeadPool"]["errors"]
    assert (error["code"], error["field"]) == (code, field), error
    pools = (await team.call["mia"]("{ leadPools { key holdLimit claimRoles } }"))["data"]["leadPools"]
    assert pools == [{"key": "east", "holdLimit": 2, "claimRoles": ["admin", "manager", "sales"]}]


async def test_a_salesperson_may_not_change_a_pool(team: Team) -> None:
    await _pool(team)
    body = await team.call["li"](UPDATE_POOL, {"input": {"key": "east", "name": "mine now", "holdLimit": 99}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
