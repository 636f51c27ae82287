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


UPDATE = """mutation($key: String!, $input: UpdateFollowUpPlanInput!) { updateFollowUpPlan(key: $key, input: $input) {
  plan { key name everyDays dueDays taskTitle filter { stages tagsAny fields } startsOn active } errors { code field message } } }"""
PAUSE = """mutation($key: String!, $reason: String) { pauseFollowUpPlan(key: $key, reason: $reason) {
  plan { key active } errors { code field message } } }"""
RESUME = """mutation($key: String!) { resumeFollowUpPlan(key: $key) { plan { key active } errors { code field message } } }"""


async def _audit(runtime: Runtime, team: Team, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    from guanxi.core.domain.models import AuditEvent

    async with runtime.session(team.tenant_id) as s:
        rows = (
            await s.scalars(select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%")).order_by(AuditEvent.occurred_at, AuditEvent.id))
        ).all()
    return [(r.action, r.changes) for r in rows]


async def test_a_plan_is_changed_its_interval_counting_from_the_current_periods_first_day(runtime: Runtime, team: Team) -> None:
    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    now = dt.datetime.now(dt.UTC)
    assert await followups.run_plans(runtime, team.tenant_id, now) == 2  # period 0 of the 30-day plan
    change = {
        "everyDays": 7,
        "dueDays": 1,
        "taskTitle": "每周回访",
        "name": "A 类周访",
        "filter": {"fields": [{"field": "grade", "in": ["A", "B"]}]},
    }
    payload = (await team.call["mia"](UPDATE, {"key": "a-monthly", "input": change}))["data"]["updateFollowUpPlan"]
    assert payload["errors"] == []
    plan = payload["plan"]
    assert (plan["everyDays"], plan["dueDays"], plan["taskTitle"], plan["name"]) == (7, 1, "每周回访", "A 类周访")
    assert plan["filter"]["fields"] == [{"field": "grade", "in": ["A", "B"]}]
    # the current period (started today) now lasts 7 days: B joins it at once, A1 and A2 have theirs
    assert await followups.run_plans(runtime, team.tenant_id, now + dt.timedelta(days=3)) == 1
    assert await followups.run_plans(runtime, team.tenant_id, now + dt.timedelta(days=7)) == 3  # the next week's period
    wu = (await team.call["wu"](MY_TASKS))["data"]["myTasks"]
    assert [t["title"] for t in wu] == ["每周回访", "每周回访"] and {t["customer"]["displayName"] for t in wu} == {"B"}
    ((_, data),) = await _audit(runtime, team, "sales.followup_plan.update")
    assert data["key"] == "a-monthly" and data["changed"]["every_days"] == [30, 7] and "filter" in data["changed"]
    same = (await team.call["mia"](UPDATE, {"key": "a-monthly", "input": {"everyDays": 7}}))["data"]["updateFollowUpPlan"]
    assert same["errors"] == [] and len(await _audit(runtime, team, "sales.followup_plan.update")) == 1  # no change, no entry
    cleared = (await team.call["mia"](UPDATE, {"key": "a-monthly", "input": {"filter": None}}))["data"]["updateFollowUpPlan"]
    assert cleared["plan"]["filter"] == {"stages": None, "tagsAny": None, "fields": None}  # every owned customer


def test_a_new_interval_keeps_the_current_periods_first_day_and_number() -> None:
    from guanxi.plugins.sales.followup_changes import restarted_on

    start = dt.date(2026, 1, 1)
    today = dt.date(2026, 2, 15)  # day 45 of a 30-day plan: period 1, which began on 31 January
    shorter = restarted_on(start, 30, 7, today)
    assert shorter == dt.date(2026, 1, 24)  # period 1 under 7 days also begins on 31 January…
    assert (dt.date(2026, 1, 31) - shorter).days // 7 == 1
    assert (today - shorter).days // 7 == 3  # …and 15 days later a new period has begun: the owners are due again
    longer = restarted_on(start, 30, 60, today)
    assert (dt.date(2026, 1, 31) - longer).days // 60 == 1 and (today - longer).days // 60 == 1  # still period 1
    assert (dt.date(2026, 3, 31) - longer).days // 60 == 1 and (dt.date(2026, 4, 1) - longer).days // 60 == 2
    assert restarted_on(start, 30, 7, dt.date(2026, 1, 10)) == start  # in period 0 nothing moves


async def test_a_paused_plan_creates_no_task_and_resuming_does_not_make_up_missed_periods(runtime: Runtime, team: Team) -> None:
    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": {**A_GRADE, "everyDays": 7, "dueDays": 1}}))["data"]["createFollowUpPlan"][
        "errors"
    ] == []
    now = dt.datetime.now(dt.UTC)
    assert await followups.run_plans(runtime, team.tenant_id, now) == 2
    paused = (await team.call["mia"](PAUSE, {"key": "a-monthly", "reason": "春节"}))["data"]["pauseFollowUpPlan"]
    assert paused == {"plan": {"key": "a-monthly", "active": False}, "errors": []}
    assert (await team.call["mia"](PAUSE, {"key": "a-monthly"}))["data"]["pauseFollowUpPlan"]["errors"] == []  # again: no change
    for week in (1, 2, 3):  # three periods pass while paused
        assert await followups.run_plans(runtime, team.tenant_id, now + dt.timedelta(days=7 * week)) == 0
    resumed = (await team.call["admin"](RESUME, {"key": "a-monthly"}))["data"]["resumeFollowUpPlan"]
    assert resumed == {"plan": {"key": "a-monthly", "active": True}, "errors": []}
    later = now + dt.timedelta(days=7 * 3 + 1)
    assert await followups.run_plans(runtime, team.tenant_id, later) == 2  # one task each for the current period, not three
    assert await followups.run_plans(runtime, team.tenant_id, later + dt.timedelta(hours=3)) == 0
    assert len((await team.call["li"](MY_TASKS))["data"]["myTasks"]) == 4  # period 0's two, the current period's two
    assert [(a, d.get("reason")) for a, d in await _audit(runtime, team, "sales.followup_plan.")] == [
        ("sales.followup_plan.create", None),
        ("sales.followup_plan.pause", "春节"),
        ("sales.followup_plan.resume", None),
    ]


@pytest.mark.parametrize(
    ("operation", "variables", "code", "field"),
    [
        (UPDATE, {"key": "nope", "input": {"name": "x"}}, "NOT_FOUND", "key"),
        (UPDATE, {"key": "a-monthly", "input": {"everyDays": 0}}, "VALIDATION", "everyDays"),
        (UPDATE, {"key": "a-monthly", "input": {"everyDays": 1}}, "VALIDATION", "dueDays"),  # the plan's due days (2) > 1
        (UPDATE, {"key": "a-monthly", "input": {"name": None}}, "VALIDATION", "name"),
        (UPDATE, {"key": "a-monthly", "input": {"taskTitle": " "}}, "VALIDATION", "taskTitle"),
        (
            UPDATE,
            {"key": "a-monthly", "input": {"filter": {"fields": [{"field": "nope", "eq": "A"}]}}},
            "VALIDATION",
            "filter.fields[0].field",
        ),
        (
            UPDATE,
            {"key": "a-monthly", "input": {"filter": {"fields": [{"field": "grade", "eq": "Z"}]}}},
            "VALIDATION",
            "filter.fields[0].eq",
        ),
        (PAUSE, {"key": "nope"}, "NOT_FOUND", "key"),
        (PAUSE, {"key": "a-monthly", "reason": "x" * 501}, "VALIDATION", "reason"),
        (RESUME, {"key": "nope"}, "NOT_FOUND", "key"),
    ],
)
async def test_bad_changes_are_refused_with_a_code_naming_the_field_and_change_nothing(
    runtime: Runtime, team: Team, operation: str, variables: dict[str, Any], code: str, field: str
) -> None:
    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    before = (await team.call["mia"]("{ followUpPlans { key name everyDays dueDays taskTitle active } }"))["data"]
    body = await team.call["mia"](operation, variables)
    (errors,) = [p["errors"] for p in body["data"].values()]
    assert errors and errors[0]["code"] == code and errors[0]["field"] == field, errors
    assert (await team.call["mia"]("{ followUpPlans { key name everyDays dueDays taskTitle active } }"))["data"] == before


@pytest.mark.parametrize("operation", [UPDATE, PAUSE, RESUME])
async def test_a_salesperson_may_not_change_pause_or_resume_a_plan(runtime: Runtime, team: Team, operation: str) -> None:
    await _graded(runtime, team)
    assert (await team.call["mia"](CREATE, {"input": A_GRADE}))["data"]["createFollowUpPlan"]["errors"] == []
    body = await team.call["li"](
        operation, {"key": "a-monthly", "input": {"everyDays": 7}} if operation == UPDATE else {"key": "a-monthly"}
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await team.call["li"]("{ followUpPlans { everyDays active } }"))["data"]["followUpPlans"] == [{"everyDays": 30, "active": True}]
