"""`myTasks` and `teamTasks`: a salesperson's own tasks by due date and status, a manager's team's
tasks (not another team's), an admin's everyone's; a key without a user is told so."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import tasks
from guanxi.core.services.tasks import due_window
from guanxi.graphql.ids import to_global_id
from guanxi.testing.sql import count_statements
from tests.access.conftest import Caller, World, key_for, seed_world

MINE = """query($due: TaskDue, $status: TaskStatus) { myTasks(due: $due, status: $status) {
  title dueAt done assignee { name } customer { displayName } } }"""
TEAM = """query($due: TaskDue, $ids: [ID!]) { teamTasks(due: $due, assigneeIds: $ids) { title assignee { name } } }"""


@pytest.fixture
async def world(runtime: Runtime, tenant_id: uuid.UUID) -> World:
    w = await seed_world(runtime, tenant_id)
    now = utcnow()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for title, due in (("overdue", now - dt.timedelta(days=2)), ("next month", now + dt.timedelta(days=40))):
            await tasks.create_task(tx, tasks.TaskInput(customer_id=w.customers["ann"], title=title, due_at=due))
        done = await tasks.create_task(tx, tasks.TaskInput(customer_id=w.customers["ann"], title="done one", due_at=now))
        await tasks.complete_task(tx, done.id)
    return w


async def test_my_tasks_filter_by_due_and_status(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    ann = as_key(await key_for(runtime, world.tenant_id, "sales", world.users["ann"]))

    async def titles(**variables: str) -> list[str]:
        body = await ann(MINE, variables)
        assert not body.get("errors"), body
        return [t["title"] for t in body["data"]["myTasks"]]

    # open tasks, soonest due first, no due date last
    assert await titles() == ["overdue", "next month", "call ann's client"]
    assert await titles(due="OVERDUE") == ["overdue"]
    assert await titles(due="LATER") == ["next month"]
    assert await titles(due="NONE") == ["call ann's client"]
    assert await titles(status="DONE") == ["done one"]
    assert sorted(await titles(status="ALL")) == sorted(["overdue", "next month", "call ann's client", "done one"])
    body = await ann(MINE)
    assert {t["assignee"]["name"] for t in body["data"]["myTasks"]} == {"ann"}


async def test_team_tasks_show_a_managers_team_and_an_admins_everyone(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    max_ = as_key(await key_for(runtime, world.tenant_id, "manager", world.users["max"]))
    body = await max_(TEAM, {"due": "NONE"})
    assert sorted(t["assignee"]["name"] for t in body["data"]["teamTasks"]) == ["ann", "bo"]  # not cy (south)
    asked_cy = await max_(TEAM, {"due": "NONE", "ids": [to_global_id("User", world.users["cy"])]})
    assert asked_cy["data"]["teamTasks"] == []
    admin = as_key(await key_for(runtime, world.tenant_id, "admin"))
    everyone = await admin(TEAM, {"due": "NONE"})
    names = [t["assignee"]["name"] if t["assignee"] else "-" for t in everyone["data"]["teamTasks"]]
    assert sorted(names) == ["-", "ann", "bo", "cy"]  # the unassigned customer's task too
    ann = as_key(await key_for(runtime, world.tenant_id, "sales", world.users["ann"]))
    assert (await ann(TEAM))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    keyless = await admin(MINE)
    assert keyless["errors"][0]["extensions"]["code"] == "NOT_A_USER"


async def test_task_lists_cost_a_constant_number_of_statements(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    async with runtime.transaction(RequestContext(tenant_id=world.tenant_id)) as tx:
        for i in range(30):
            await tasks.create_task(tx, tasks.TaskInput(customer_id=world.customers["bo"], title=f"t{i}", assignee_id=world.users["ann"]))
    max_ = as_key(await key_for(runtime, world.tenant_id, "manager", world.users["max"]))
    await max_("{ pipelines { key } }")
    counts = []
    for n in (3, 30):
        with count_statements(runtime.engine) as seen:
            body = await max_("query($n: Int!) { teamTasks(first: $n) { title assignee { name } customer { displayName } } }", {"n": n})
        assert len(body["data"]["teamTasks"]) == n
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


def test_due_windows_follow_the_local_day_and_week() -> None:
    """Today and this week are the person's local day and week (Shanghai: UTC+8)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    now = dt.datetime(2026, 12, 2, 20, 0, tzinfo=dt.UTC)  # Thursday 04:00 in Shanghai
    start, end = due_window("today", now, tz)
    assert (start, end) == (dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC))
    _, week_end = due_window("this_week", now, tz)
    assert week_end == dt.datetime(2026, 12, 6, 16, 0, tzinfo=dt.UTC)  # Monday 00:00 local
    assert due_window("overdue", now, tz) == (None, now)
