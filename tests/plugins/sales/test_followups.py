"""Recurring follow-up plans (issue 20 item 5): a manager's plan ("every 30 days, the A-grade
customers") creates one task per matching owned customer and period for its owner, reminded by
core's task reminders; running the plan again in the same period creates nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import ScheduledJob, Task
from guanxi.core.runtime import Runtime
from guanxi.core.services import fields, reminders
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import followups
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")

CREATE = """mutation($input: CreateFollowUpPlanInput!) { createFollowUpPlan(input: $input) {
  plan { key name everyDays dueDays taskTitle filter { stages tagsAny fields } active } errors { code field message } } }"""
MY_TASKS = "{ myTasks { title dueAt customer { displayName } } }"
A_GRADE = {"key": "a-monthly", "name": "A 类客户月度回访", "everyDays": 30, "dueDays": 2, "taskTitle": "月度回访",
           "filter": {"fields": [{"field": "grade", "eq": "A"}]}}  # fmt: skip


async def _graded(runtime: Runtime, team: Team) -> dict[str, str]:
    """li owns two A-grade customers, wu a B-grade one; one A-grade customer has no owner."""
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B", "C"]))
    made = {
        "a1": await new_customer(runtime, team.tenant_id, "A1", owner=team.users["li"]),
        "a2": await new_customer(runtime, team.tenant_id, "A2", owner=team.users["li"]),
        "b": await new_customer(runtime, team.tenant_id, "B", owner=team.users["wu"]),
        "free": await new_customer(runtime, team.tenant_id, "Free"),
    }
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        for name, grade in (("a1", "A"), ("a2", "A"), ("b", "B"), ("free", "A")):
            await fields.set_customer_fields(tx, from_global_id(made[name], "Customer"), {"grade": grade})
    return made


async def test_a_plan_gives_each_owner_one_task_per_matching_customer_and_period(runtime: Runtime, team: Team) -> None:
    await _graded(runtime, team)
    body = await team.call["mia"](CREATE, {"input": A_GRADE})
    payload = body["data"]["createFollowUpPlan"]
    assert payload["errors"] == []
    assert payload["plan"]["filter"]["fields"] == [{"field": "grade", "eq": "A"}] and payload["plan"]["active"] is True
    now = dt.datetime.now(dt.UTC)
    assert await followups.run_plans(runtime, team.tenant_id, now) == 2
    assert await followups.run_plans(runtime, team.tenant_id, now + dt.timedelta(hours=5)) == 0  # same period: nothing new
    mine = (await team.call["li"](MY_TASKS))["data"]["myTasks"]
    assert sorted((t["title"], t["customer"]["displayName"]) for t in mine) == [("月度回访", "A1"), ("月度回访", "A2")]
    assert (await team.call["wu"](MY_TASKS))["data"]["myTasks"] == []  # B grade
    async with runtime.session(team.tenant_id) as s:
        tasks = (await s.scalars(select(Task))).all()
        assert {t.assignee_id for t in tasks} == {team.users["li"]}
        due = {t.due_at.replace(tzinfo=dt.UTC) if t.due_at and t.due_at.tzinfo is None else t.due_at for t in tasks}
        assert due == {now + dt.timedelta(days=2)}
        keys = set((await s.scalars(select(ScheduledJob.key))).all())
        for t in tasks:  # core's reminders remind the owner before the task is due
            assert reminders.job_key(reminders.DUE_SOON, t.id) in keys and reminders.job_key(reminders.OVERDUE, t.id) in keys
        assert followups.PLAN_JOB in keys  # the plans run daily on the core scheduler
    assert await followups.run_plans(runtime, team.tenant_id, now + dt.timedelta(days=30)) == 2  # the next period


async def test_the_plan_job_runs_on_the_core_scheduler(runtime: Runtime, team: Team) -> None:
    from guanxi.core.queues.scheduler import run_once

    await _graded(runtime, team)
    assert (await team.call["admin"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        job = (await tx.session.scalars(select(ScheduledJob).where(ScheduledJob.key == followups.PLAN_JOB))).one()
        job.slot_at = job.next_attempt_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # its slot has come
    assert await run_once(runtime, tenant_id=team.tenant_id) >= 1
    assert len((await team.call["li"](MY_TASKS))["data"]["myTasks"]) == 2


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"filter": {"fields": [{"field": "nope", "eq": "A"}]}}, "VALIDATION", "filter.fields[0].field"),
        ({"filter": {"fields": [{"field": "grade", "eq": "Z"}]}}, "VALIDATION", "filter.fields[0].eq"),
        ({"everyDays": 0}, "VALIDATION", "everyDays"),
        ({"dueDays": 31}, "VALIDATION", "dueDays"),
        ({"key": "Bad Key"}, "VALIDATION", "key"),
        ({"taskTitle": " "}, "VALIDATION", "taskTitle"),
    ],
)
async def test_bad_plans_are_refused_naming_the_field(runtime: Runtime, team: Team, change: dict[str, Any], code: str, field: str) -> None:
    await _graded(runtime, team)
    errors = (await team.call["mia"](CREATE, {"input": {**A_GRADE, **change}}))["data"]["createFollowUpPlan"]["errors"]
    assert errors and errors[0]["field"] == field and errors[0]["code"] == code, errors


async def test_a_key_is_taken_once_and_salespeople_may_read_but_not_create(runtime: Runtime, team: Team) -> None:
    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    again = (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"]
    assert again[0]["code"] == "CONFLICT"
    refused = await team.call["li"](CREATE, {"input": {**A_GRADE, "key": "mine"}})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    plans = (await team.call["li"]("{ followUpPlans { key everyDays } }"))["data"]["followUpPlans"]
    assert plans == [{"key": "a-monthly", "everyDays": 30}]


async def test_another_tenant_sees_no_plan_and_its_run_creates_nothing_here(runtime: Runtime, team: Team, http: Any) -> None:
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.testing.plugin import api_key

    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = await api_key(runtime, beta, "admin")
    response = await http.post("/graphql", json={"query": "{ followUpPlans { key } }"}, headers={"Authorization": f"Bearer {key}"})
    assert response.json()["data"]["followUpPlans"] == []
    mutation = {"query": CREATE, "variables": {"input": {**A_GRADE, "name": "Beta's", "filter": None}}}
    created = (await http.post("/graphql", json=mutation, headers={"Authorization": f"Bearer {key}"})).json()
    assert created["data"]["createFollowUpPlan"]["errors"] == []  # keys are per tenant: no CONFLICT, nothing of A shown
    plans = (await team.call["mia"]("{ followUpPlans { key name } }"))["data"]["followUpPlans"]
    assert plans == [{"key": "a-monthly", "name": "A 类客户月度回访"}]
    assert await followups.run_plans(runtime, beta, dt.datetime.now(dt.UTC)) == 0
