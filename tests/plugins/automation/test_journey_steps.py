"""Each journey step against real core services: tags, stages, tasks, owner notifications, plugin
actions, webhooks refused before any connection, quiet hours and the frequency cap; and the
triggers that are not events: segments, schedules, date fields, and the run worker's job."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import ActionRun, JourneyAction, hookimpl
from guanxi.core.domain.models import Notification, OutboxMessage, ScheduledJob, Task
from guanxi.core.queues import scheduler
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, fields, schedule
from guanxi.models import utcnow
from guanxi.plugins.automation.journeys import hooks, service
from guanxi.plugins.automation.journeys.engine import next_time_of_day
from tests.access.conftest import make_user
from tests.plugins.automation.journey_kit import JChatPlugin, activate, ctx, definition, drain, enter, ledger, make_customers, runs


class Loyalty:
    """A plugin offering a journey action that writes through the step's transaction."""

    def __init__(self) -> None:
        self.granted: list[tuple[uuid.UUID, int, str]] = []

    async def grant(self, action: ActionRun) -> str | None:
        if action.params.get("points", 0) <= 0:
            return "nothing to grant"
        await customers.update_customer(
            action.tx, action.customer_id, customers.CustomerPatch(attributes={"points": action.params["points"]})
        )
        self.granted.append((action.customer_id, action.params["points"], action.idempotency_key))
        return None

    @hookimpl
    def guanxi_journey_actions(self) -> list[JourneyAction]:
        return [JourneyAction(name="loyal.grant", run=self.grant, description="grant points")]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"jchat": JChatPlugin(), "loyal": Loyalty()}


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    return {"automation": {"journeys": {"frequency_cap": 1, "frequency_window_s": 86400, "webhook_hosts": ["localhost"]}}}


pytestmark = pytest.mark.plugins("automation", "jchat", "loyal")


async def test_tag_stage_task_notify_and_plugin_action_steps(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    owner = await make_user(runtime, tenant_id, "owner@corp.cn", "sales")
    async with runtime.transaction(ctx(tenant_id)) as tx:
        a = (await customers.create_customer(tx, customers.CustomerInput(display_name="A", owner_id=owner))).id
        b = (await customers.create_customer(tx, customers.CustomerInput(display_name="B"))).id
    steps = [
        {"id": "mark", "type": "tag", "add": ["nurtured"]},
        {"id": "promote", "type": "move_stage", "stage": "mql"},
        {"id": "call", "type": "create_task", "title": "Call them", "due_in_s": 3600},
        {"id": "tell", "type": "notify_owner", "text": "Your lead is warm"},
        {"id": "points", "type": "action", "action": "loyal.grant", "params": {"points": 50}},
    ]
    await activate(runtime, tenant_id, definition(steps))
    await enter(runtime, tenant_id, "welcome", [a, b])
    await drain(runtime, tenant_id)
    outcomes = {(s.customer_id, s.step): (s.outcome, s.reason) for s in await ledger(runtime, tenant_id)}
    assert outcomes[(a, "tell")] == ("done", None)
    assert outcomes[(b, "tell")] == ("skipped", "the customer has no owner to notify")
    assert all(outcomes[(c, s)][0] == "done" for c in (a, b) for s in ("mark", "promote", "call", "points"))
    async with runtime.session(tenant_id) as s:
        got = await customers.get_customer(s, a)
        assert got.attributes.get("points") == 50
        tasks = list((await s.execute(select(Task).where(Task.customer_id == a))).scalars())
        assert [(t.title, t.assignee_id) for t in tasks] == [("Call them", owner)]
        assert (await s.execute(select(func.count()).select_from(Notification).where(Notification.user_id == owner))).scalar_one() == 1
    loyal: Loyalty = runtime.pm.get_plugin("loyal")  # type: ignore[assignment]
    assert {g[0] for g in loyal.granted} == {a, b}
    assert all(g[2].startswith("journey:") for g in loyal.granted)


async def test_a_webhook_to_an_allowed_host_on_loopback_fails_without_a_call(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """``localhost`` is among the tenant's hosts (plugin_config), but it resolves to loopback:
    the step is recorded failed with the reason, and the run ends."""
    await activate(runtime, tenant_id, definition([{"id": "hook", "type": "webhook", "url": "https://localhost:9/hook"}]))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    await drain(runtime, tenant_id)
    (step,) = await ledger(runtime, tenant_id)
    assert step.outcome == "failed" and step.reason is not None and "non-public" in step.reason
    assert [r.status for r in await runs(runtime, tenant_id)] == ["failed"]


async def test_the_frequency_cap_skips_a_second_journey_message_with_the_reason(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    hello = {"id": "hello", "type": "send", "channel": "jchat", "text": "Hello"}
    await activate(runtime, tenant_id, definition([hello], key="first"))
    await activate(runtime, tenant_id, definition([hello], key="second"))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "first", [a])
    await enter(runtime, tenant_id, "second", [a])
    await drain(runtime, tenant_id)
    outcomes = sorted((s.outcome, (s.reason or "").split(":")[0]) for s in await ledger(runtime, tenant_id))
    assert outcomes == [("sent", ""), ("skipped", "FREQUENCY_CAP")]
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 1


@pytest.mark.parametrize("plugin_config", [{"automation": {"journeys": {"quiet_start": "00:00", "quiet_end": "23:59"}}}])
async def test_a_send_in_quiet_hours_waits_for_their_end_at_the_same_step(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await activate(runtime, tenant_id, definition([{"id": "hello", "type": "send", "channel": "jchat", "text": "Hello"}]))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    await drain(runtime, tenant_id)
    (run,) = await runs(runtime, tenant_id)
    assert run.status == "waiting" and run.step == "hello" and run.next_attempt_at > utcnow()
    assert await ledger(runtime, tenant_id) == []


def test_wait_until_a_time_of_day_in_a_zone() -> None:
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    at = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    assert next_time_of_day(at, "10:30", shanghai) == dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.UTC)
    assert next_time_of_day(at, "09:00", shanghai) == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # strictly after
    berlin = ZoneInfo("Europe/Berlin")  # DST starts 2026-03-29: 09:00 is 08:00 UTC before, 07:00 after
    assert next_time_of_day(dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC), "09:00", berlin) == dt.datetime(2026, 3, 29, 7, tzinfo=dt.UTC)


async def test_a_customer_entering_a_segment_enters_its_journey(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.plugins.automation.segments import service as segments

    await activate(
        runtime,
        tenant_id,
        definition([{"id": "mark", "type": "tag", "add": ["welcomed"]}], trigger={"type": "segment_entered", "segment": "vips"}),
    )
    a, _b = await make_customers(runtime, tenant_id, 2)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await segments.create_segment(tx, segments.SegmentInput(key="vips", name="VIPs", kind="static", customer_ids=[a]))
    assert {r.customer_id for r in await runs(runtime, tenant_id)} == {a}


async def test_a_scheduled_journey_lets_its_audience_in_by_batches(
    runtime: Runtime, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await make_customers(runtime, tenant_id, 7)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        from guanxi.core.services import tags

        for cid in ids[:5]:
            await tags.change_tags(tx, cid, add=["newsletter"])
    trigger = {"type": "schedule", "cron": "0 9 * * 1", "audience": {"tags_any": ["newsletter"]}}
    row = await activate(runtime, tenant_id, definition([{"id": "mark", "type": "tag", "add": ["weekly"]}], trigger=trigger))
    async with runtime.session(tenant_id) as s:
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.key == f"{service.ENTRY_KIND}:{row.id}"))).scalar_one()
    assert job.cron == "0 9 * * 1"
    from guanxi.plugins.automation.journeys import conditions

    real = conditions.audience
    monkeypatch.setattr(hooks, "audience", lambda session, cond, **kw: real(session, cond, batch=2, **kw))
    async with runtime.transaction(ctx(tenant_id)) as tx:  # the job is due: run it now through the scheduler
        await schedule.schedule_job(tx, service.ENTRY_KIND, job.key, run_at=utcnow(), payload=job.payload)
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) >= 1
    assert {r.customer_id for r in await runs(runtime, tenant_id)} == set(ids[:5])


async def test_a_date_field_journey_lets_in_birthdays_and_contract_ends(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    a, b, c = await make_customers(runtime, tenant_id, 3)
    today = utcnow().astimezone(dt.UTC).date()
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="birthday", label="Birthday", kind="date"))
        await fields.define_field(tx, fields.FieldInput(key="contract_end", label="Contract end", kind="date"))
        await fields.set_customer_fields(tx, a, {"birthday": today.replace(year=1990).isoformat()})
        await fields.set_customer_fields(tx, b, {"birthday": (today - dt.timedelta(days=3)).replace(year=1991).isoformat()})
        await fields.set_customer_fields(tx, c, {"contract_end": (today + dt.timedelta(days=30)).isoformat()})
        await fields.set_customer_fields(tx, a, {"contract_end": (today + dt.timedelta(days=31)).isoformat()})
    birthday = await activate(
        runtime,
        tenant_id,
        definition(
            [{"id": "wish", "type": "tag", "add": ["wished"]}],
            key="birthday",
            trigger={"type": "date_field", "field": "birthday", "annual": True, "at": "00:00"},
        ),
    )
    renewal = await activate(
        runtime,
        tenant_id,
        definition(
            [{"id": "renew", "type": "tag", "add": ["renew"]}],
            key="renewal",
            trigger={"type": "date_field", "field": "contract_end", "offset_days": 30, "at": "00:00"},
        ),
    )
    from guanxi import JobRun

    for journey in (birthday, renewal):
        job = JobRun(
            runtime=runtime,
            tenant_id=tenant_id,
            job_id=uuid.uuid4(),
            kind=service.ENTRY_KIND,
            key="k",
            payload={"journey_id": str(journey.id)},
            slot_at=dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC),
            attempt=1,
            idempotency_key="k",
        )
        await hooks.run_entries(job)
    entered = {(r.journey_id, r.customer_id) for r in await runs(runtime, tenant_id)}
    assert entered == {(birthday.id, a), (renewal.id, c)}


async def test_the_run_worker_job_advances_runs_and_sleeps_until_the_next_is_due(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await activate(
        runtime, tenant_id, definition([{"id": "mark", "type": "tag", "add": ["x"]}, {"id": "pause", "type": "wait", "seconds": 30}])
    )
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])  # schedules the worker job now
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    (run,) = await runs(runtime, tenant_id)
    assert (run.step, run.status) == ("pause", "waiting")
    async with runtime.session(tenant_id) as s:
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.key == service.TICK_KEY))).scalar_one()
    assert job.status == "scheduled" and abs((job.next_attempt_at - run.next_attempt_at).total_seconds()) < 1


async def test_a_date_field_trigger_must_name_a_date_custom_field(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.plugins.automation.journeys.validate import JourneyError

    async with runtime.transaction(ctx(tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="nickname", label="Nickname", kind="text"))
    for field, words in (("birthday", "no custom field"), ("nickname", "not a date")):
        text = definition([{"id": "wish", "type": "tag", "add": ["x"]}], trigger={"type": "date_field", "field": field})
        with pytest.raises(JourneyError, match=words) as info:
            await activate(runtime, tenant_id, text)
        assert info.value.field == "trigger.field"


async def test_a_merged_customers_run_moves_to_the_survivor(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.services import merge

    await activate(
        runtime, tenant_id, definition([{"id": "pause", "type": "wait", "seconds": 60}, {"id": "mark", "type": "tag", "add": ["x"]}])
    )
    survivor, merged = await make_customers(runtime, tenant_id, 2)
    await enter(runtime, tenant_id, "welcome", [merged])
    await drain(runtime, tenant_id)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await merge.merge_customers(tx, survivor, merged)
    (run,) = await runs(runtime, tenant_id)
    assert run.customer_id == survivor and run.status == "waiting"


async def test_a_customers_export_lists_their_journey_runs(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.services import privacy

    await activate(runtime, tenant_id, definition([{"id": "pause", "type": "wait", "seconds": 60}]))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    async with runtime.session(tenant_id) as s:
        exported = await privacy.export_customer_data(runtime, s, a)
    assert exported["plugins"]["automation"]["journeys"][0]["journey"] == "welcome"
