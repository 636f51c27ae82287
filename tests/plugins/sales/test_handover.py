"""Staff handover (issue 20 item 6): a salesperson's customers, open tasks and pool holds handed
to another user, or back to a pool, in one audited operation; another plugin hands over its part
(here a deals-like plugin) through ``guanxi_staff_handover`` in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import Runtime, Tx, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import StaffHandover
from guanxi.core.domain.models import AuditEvent, Customer, Task
from guanxi.core.services import tasks
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.sales.deals.models import SalesDeal
from guanxi.plugins.sales.models import SalesPoolLead, SalesPoolMove
from tests.plugins.sales.conftest import CLAIM, CREATE_POOL, PUT, Team, new_customer

HAND_OVER = """mutation($input: HandOverInput!) { handOverCustomers(input: $input) {
  result { customers tasks poolHolds plugins } errors { code field message } } }"""


class Deals:
    """A plugin with rows of its own per salesperson (open deals), handed over with the rest."""

    def __init__(self) -> None:
        self.seen: list[StaffHandover] = []

    @hookimpl
    async def guanxi_staff_handover(self, tx: Tx, handover: StaffHandover) -> dict[str, int]:
        assert tx.tenant_id is not None
        self.seen.append(handover)
        return {"open_deals": len(handover.customer_ids)}


DEALS = Deals()
pytestmark = pytest.mark.plugins("sales", "deals")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"deals": DEALS}


async def _setup(runtime: Runtime, team: Team) -> dict[str, Any]:
    """li owns two customers (one a held pool lead), with open tasks; wu owns one."""
    body = await team.call["admin"](CREATE_POOL, {"input": {"key": "east", "name": "华东", "holdLimit": 5}})
    assert body["data"]["createLeadPool"]["errors"] == []
    a = await new_customer(runtime, team.tenant_id, "Li's A", owner=team.users["li"])
    lead = await new_customer(runtime, team.tenant_id, "Pool lead", "+8613912345678", owner=team.users["mia"])
    assert (await team.call["mia"](PUT, {"id": lead, "pool": "east", "reason": "later"}))["data"]["putLeadInPool"]["errors"] == []
    assert (await team.call["li"](CLAIM, {"id": lead}))["data"]["claimLead"]["errors"] == []
    other = await new_customer(runtime, team.tenant_id, "Wu's", owner=team.users["wu"])
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        for cid in (a, lead):
            await tasks.create_task(
                tx, tasks.TaskInput(customer_id=from_global_id(cid, "Customer"), title="call", assignee_id=team.users["li"])
            )
        done = await tasks.create_task(
            tx, tasks.TaskInput(customer_id=from_global_id(a, "Customer"), title="old", assignee_id=team.users["li"])
        )
        await tasks.complete_task(tx, done.id)
    return {"a": a, "lead": lead, "other": other}


async def _owners(runtime: Runtime, team: Team) -> dict[str, uuid.UUID | None]:
    async with runtime.session(team.tenant_id) as s:
        return {c.display_name: c.owner_id for c in (await s.scalars(select(Customer))).all()}


async def test_a_salespersons_customers_tasks_and_pool_holds_go_to_another_user_in_one_audited_operation(
    runtime: Runtime, team: Team
) -> None:
    DEALS.seen.clear()
    ids = await _setup(runtime, team)
    body = await team.call["admin"](HAND_OVER, {"input": {"fromUserId": team.gid("li"), "toUserId": team.gid("wu"), "reason": "离职"}})
    payload = body["data"]["handOverCustomers"]
    assert payload["errors"] == []
    assert payload["result"] == {
        "customers": 2,
        "tasks": 2,
        "poolHolds": 1,
        "plugins": {"deals": {"open_deals": 2}, "sales": {"open_deals": 0}},
    }
    owners = await _owners(runtime, team)
    assert owners["Li's A"] == owners["Pool lead"] == owners["Wu's"] == team.users["wu"]
    async with runtime.session(team.tenant_id) as s:
        open_tasks = (await s.scalars(select(Task).where(Task.done_at.is_(None)))).all()
        assert {t.assignee_id for t in open_tasks} == {team.users["wu"]}
        assert (await s.scalars(select(Task.assignee_id).where(Task.done_at.is_not(None)))).all() == [team.users["li"]]  # history stays
        lead = (await s.scalars(select(SalesPoolLead))).one()
        assert (lead.status, lead.holder_id) == ("held", team.users["wu"])
        moves = (await s.scalars(select(SalesPoolMove.action).order_by(SalesPoolMove.at))).all()
        assert moves[-1] == "handover"
        entry = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "sales.handover"))).one()
        assert entry.object_id == team.users["li"] and entry.changes["customers"] == 2
    (seen,) = DEALS.seen
    assert seen.to_user_id == team.users["wu"] and {to_global_id("Customer", c) for c in seen.customer_ids} == {ids["a"], ids["lead"]}
    # the pool history shows the handover
    history = await team.call["wu"]("query($id: ID!) { customer(id: $id) { poolHistory { action reason } } }", {"id": ids["lead"]})
    assert history["data"]["customer"]["poolHistory"][-1] == {"action": "handover", "reason": "离职"}


async def test_customers_go_back_to_a_pool_with_their_tasks_unassigned(runtime: Runtime, team: Team) -> None:
    ids = await _setup(runtime, team)
    variables = {"input": {"fromUserId": team.gid("li"), "pool": "east", "customerIds": [ids["a"]], "reason": "调岗"}}
    payload = (await team.call["admin"](HAND_OVER, variables))["data"]["handOverCustomers"]
    assert payload["errors"] == [] and payload["result"]["customers"] == 1 and payload["result"]["tasks"] == 1
    owners = await _owners(runtime, team)
    assert owners["Li's A"] is None and owners["Pool lead"] == team.users["li"]  # only the one named
    leads = await team.call["wu"]('{ poolLeads(pool: "east") { customerId } }')
    assert [row["customerId"] for row in leads["data"]["poolLeads"]] == [ids["a"]]
    async with runtime.session(team.tenant_id) as s:
        task = (await s.scalars(select(Task).where(Task.customer_id == from_global_id(ids["a"], "Customer"), Task.done_at.is_(None)))).one()
        assert task.assignee_id is None


async def test_bad_handovers_are_refused_and_salespeople_may_not_hand_over(runtime: Runtime, team: Team) -> None:
    ids = await _setup(runtime, team)
    li, wu = team.gid("li"), team.gid("wu")
    for bad, field in [
        ({"fromUserId": li, "reason": "x"}, "toUserId"),
        ({"fromUserId": li, "toUserId": wu, "pool": "east", "reason": "x"}, "toUserId"),
        ({"fromUserId": li, "toUserId": li, "reason": "x"}, "toUserId"),
        ({"fromUserId": li, "toUserId": wu, "reason": " "}, "reason"),
        ({"fromUserId": li, "toUserId": wu, "customerIds": [ids["other"]], "reason": "x"}, "customerIds"),
        ({"fromUserId": li, "toUserId": to_global_id("User", uuid.uuid4()), "reason": "x"}, "toUserId"),
        ({"fromUserId": li, "pool": "nope", "reason": "x"}, None),
    ]:
        errors = (await team.call["admin"](HAND_OVER, {"input": bad}))["data"]["handOverCustomers"]["errors"]
        assert errors and (field is None or errors[0]["field"] == field), (bad, errors)
    assert (await _owners(runtime, team))["Li's A"] == team.users["li"]
    refused = await team.call["li"](HAND_OVER, {"input": {"fromUserId": li, "toUserId": wu, "reason": "x"}})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_another_tenants_admin_cannot_hand_over_this_tenants_salesperson(runtime: Runtime, team: Team, http: Any) -> None:
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.testing.plugin import api_key

    ids = await _setup(runtime, team)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = await api_key(runtime, beta, "admin")
    before = await _owners(runtime, team)
    for target in ({"toUserId": team.gid("wu")}, {"pool": "east"}):
        variables = {"input": {"fromUserId": team.gid("li"), "customerIds": [ids["a"]], "reason": "x", **target}}
        response = await http.post(
            "/graphql", json={"query": HAND_OVER, "variables": variables}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.json()["data"]["handOverCustomers"]["errors"], response.json()
    assert await _owners(runtime, team) == before


DEALS_OF = "{ deals { title ownerId customer { displayName } } }"


async def test_open_deals_go_with_their_customers_and_won_deals_keep_their_owner(runtime: Runtime, team: Team) -> None:
    """The sales plugin's deals join the handover: the departing salesperson's open deals on the
    handed customers go to the receiver (a manager's key hands over), won deals stay theirs; the
    receiver's sales key then sees the customer's deals."""
    from guanxi.core.domain.models import User
    from tests.plugins.sales.test_deals import MOVE, deal_for

    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:  # mia manages li and wu
        for user in (await tx.session.scalars(select(User).where(User.id.in_(team.users.values())))).all():
            user.team = "north"
    ids = await _setup(runtime, team)
    open_deal = await deal_for(team, "li", ids["a"], title="ERP", amount=1000)
    won = await deal_for(team, "li", ids["a"], title="Support", amount=500)
    assert (await team.call["li"](MOVE, {"id": won["id"], "stage": "won"}))["data"]["moveDeal"]["errors"] == []
    await deal_for(team, "li", ids["lead"], title="Other", amount=10)  # li's customer not handed over
    variables = {"input": {"fromUserId": team.gid("li"), "toUserId": team.gid("wu"), "customerIds": [ids["a"]], "reason": "调岗"}}
    payload = (await team.call["mia"](HAND_OVER, variables))["data"]["handOverCustomers"]
    assert payload["errors"] == [] and payload["result"]["plugins"]["sales"] == {"open_deals": 1}
    seen = (await team.call["wu"](DEALS_OF))["data"]["deals"]
    assert {(d["title"], d["ownerId"]) for d in seen} == {("ERP", team.gid("wu")), ("Support", team.gid("li"))}  # wu's customer now
    assert open_deal["ownerId"] == team.gid("li")
    async with runtime.session(team.tenant_id) as s:
        owners = {d.title: d.owner_id for d in (await s.scalars(select(SalesDeal))).all()}
    assert owners == {"ERP": team.users["wu"], "Support": team.users["li"], "Other": team.users["li"]}


async def test_open_deals_are_unowned_when_their_customers_go_back_to_a_pool(runtime: Runtime, team: Team) -> None:
    from tests.plugins.sales.test_deals import deal_for

    ids = await _setup(runtime, team)
    await deal_for(team, "li", ids["a"], title="ERP", amount=1000)
    variables = {"input": {"fromUserId": team.gid("li"), "pool": "east", "customerIds": [ids["a"]], "reason": "离职"}}
    payload = (await team.call["admin"](HAND_OVER, variables))["data"]["handOverCustomers"]
    assert payload["errors"] == [] and payload["result"]["plugins"]["sales"] == {"open_deals": 1}
    async with runtime.session(team.tenant_id) as s:
        assert (await s.scalars(select(SalesDeal.owner_id))).all() == [None]
        entry = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "sales.handover"))).one()
        assert entry.changes["plugins"]["sales"] == {"open_deals": 1}
