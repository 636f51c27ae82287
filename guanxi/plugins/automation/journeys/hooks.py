"""What the automation plugin's hooks do for journeys: events let customers in (a tag added, a
stage reached, an interaction), wake runs waiting for an event, and end runs whose goal was
reached (converted); scheduled and date-field triggers and the run worker are job kinds.

These are plain functions; ``plugin.py`` calls them from its hook implementations."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from sqlalchemy import Integer, and_, func, or_, select

from guanxi import CustomersMerged, InteractionRecorded, JobKind, JobRun, RequestContext, Runtime, StageChanged, TagsChanged, Tx
from guanxi.core.domain.models import CustomerFieldValue as FieldValue
from guanxi.core.domain.models import FieldDefinition
from guanxi.models import Customer, new_id, utcnow
from guanxi.plugins.automation.journeys import engine, service
from guanxi.plugins.automation.journeys.conditions import audience
from guanxi.plugins.automation.journeys.definition import DateField, Goal, InteractionTrigger, Schedule, StageChangedTrigger, WaitEvent
from guanxi.plugins.automation.journeys.models import AutomationJourney, AutomationJourneyRun, AutomationJourneyStep

#: how long one run of the worker job keeps advancing runs before it hands over
TICK_BUDGET_S = 40.0
#: the longest the worker job sleeps while runs are waiting (so a wait's end is seen within it)
TICK_MAX_SLEEP_S = 60.0


def _ctx(tenant_id: uuid.UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id, actor=engine.ACTOR)


async def _journeys_of_customer_runs(tx: Tx, customer_id: uuid.UUID) -> list[tuple[AutomationJourneyRun, Any]]:
    """The customer's runs in flight, with their definitions. On PostgreSQL the rows are locked
    (in id order, as the run worker locks its batch): a goal reached while a worker advances the
    run waits for the worker's commit and then sees the run as it left it, so neither overwrites
    the other (SQLite serialises the writes anyway)."""
    runs = list(
        (
            await tx.session.execute(
                select(AutomationJourneyRun)
                .where(AutomationJourneyRun.customer_id == customer_id, AutomationJourneyRun.status.in_(service.IN_FLIGHT))
                .order_by(AutomationJourneyRun.id)
                .with_for_update()
            )
        ).scalars()
    )
    if not runs:
        return []
    defs = await engine.load_definitions(tx, {(r.journey_id, r.version) for r in runs})
    return [(r, defs[(r.journey_id, r.version)]) for r in runs]


def _goal_met(goal: Goal | None, *, stage: str | None = None, kind: str | None = None) -> bool:
    if goal is None:
        return False
    return (stage is not None and goal.stage == stage) or (kind is not None and goal.interaction_kind == kind)


async def _progress(
    tx: Tx, customer_id: uuid.UUID, *, stage: str | None = None, kind: str | None = None, channel: str | None = None
) -> None:
    """Goals reached end runs as conversions; an awaited event wakes its run."""
    now = utcnow()
    woke = False
    for run, definition in await _journeys_of_customer_runs(tx, customer_id):
        if _goal_met(definition.goal, stage=stage, kind=kind):
            step = run.step or definition.steps[0].id
            tx.session.add(
                AutomationJourneyStep(
                    id=new_id(),
                    run_id=run.id,
                    journey_id=run.journey_id,
                    version=run.version,
                    customer_id=run.customer_id,
                    seq=run.seq,
                    step=step,
                    step_type="goal",
                    outcome="converted",
                    at=now,
                    reason=f"reached stage {stage}" if stage else f"interaction {kind}",
                )
            )
            run.seq += 1
            run.status, run.step, run.finished_at, run.reason, run.locked_until = "converted", None, now, "goal reached", None
            continue
        if kind is None or run.step is None or run.waiting_since is None:
            continue
        step = next((s for s in definition.steps if s.id == run.step), None)
        if isinstance(step, WaitEvent) and step.kind == kind and (step.channel is None or step.channel == channel) and not run.event_seen:
            run.event_seen = True
            if run.status == "waiting":
                run.next_attempt_at = now
            woke = True
    if woke:
        await service.wake(tx)


async def on_tags_changed(runtime: Runtime, event: TagsChanged) -> None:
    if not event.added:
        return
    async with runtime.transaction(_ctx(event.tenant_id)) as tx:
        for journey in await service.active_journeys(tx.session, "tag_added", event.added):
            await service.enter(tx, journey, [event.customer_id])


async def on_stage_changed(runtime: Runtime, event: StageChanged) -> None:
    async with runtime.transaction(_ctx(event.tenant_id)) as tx:
        await _progress(tx, event.customer_id, stage=event.to_stage)
        for journey in await service.active_journeys(tx.session, "stage_changed", [event.to_stage]):
            trigger = (await engine.load_definitions(tx, {(journey.id, journey.version)}))[(journey.id, journey.version)].trigger
            if isinstance(trigger, StageChangedTrigger) and trigger.from_stage not in (None, event.from_stage):
                continue
            await service.enter(tx, journey, [event.customer_id])


async def on_interaction_recorded(runtime: Runtime, event: InteractionRecorded) -> None:
    if event.direction == "out":  # our own messages (and staff's) neither start, wake nor convert a run
        return
    async with runtime.transaction(_ctx(event.tenant_id)) as tx:
        await _progress(tx, event.customer_id, kind=event.kind, channel=event.channel)
        for journey in await service.active_journeys(tx.session, "interaction", [event.kind]):
            trigger = (await engine.load_definitions(tx, {(journey.id, journey.version)}))[(journey.id, journey.version)].trigger
            if isinstance(trigger, InteractionTrigger) and trigger.channel not in (None, event.channel):
                continue
            await service.enter(tx, journey, [event.customer_id])


async def on_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    async with runtime.transaction(_ctx(event.tenant_id)) as tx:
        await service.customers_merged(tx, event.merged_id, event.survivor_id)


async def on_segment_entered(runtime: Runtime, tenant_id: uuid.UUID, segment: str, customer_ids: list[uuid.UUID]) -> None:
    """Customers entered a segment (called by the segments part of the plugin)."""
    async with runtime.transaction(_ctx(tenant_id)) as tx:
        for journey in await service.active_journeys(tx.session, "segment_entered", [segment]):
            await service.enter(tx, journey, customer_ids)


async def run_worker(job: JobRun) -> None:
    """The run worker's job: advance due runs of the tenant for a while, then sleep until the
    next run is due (at most :data:`TICK_MAX_SLEEP_S`)."""
    runtime: Runtime = job.runtime
    deadline = time.monotonic() + TICK_BUDGET_S
    await runtime.tenant_plugins(job.tenant_id)
    limit = 500
    while time.monotonic() < deadline:
        if not await engine.advance(runtime, tenant_id=job.tenant_id, limit=limit):
            break
    async with runtime.transaction(_ctx(job.tenant_id)) as tx:
        due = (
            await tx.session.execute(
                select(func.min(AutomationJourneyRun.next_attempt_at)).where(AutomationJourneyRun.status.in_(service.IN_FLIGHT))
            )
        ).scalar_one_or_none()
        if due is not None:
            now = utcnow()
            await service.wake(tx, max(now, min(due, now + dt.timedelta(seconds=TICK_MAX_SLEEP_S))))


async def run_entries(job: JobRun) -> None:
    """A scheduled or date-field journey's slot: let its audience in, a batch at a time."""
    runtime: Runtime = job.runtime
    async with runtime.transaction(_ctx(job.tenant_id)) as tx:
        journey = await tx.session.get(AutomationJourney, (job.tenant_id, uuid.UUID(job.payload["journey_id"])))
        if journey is None or journey.status != "active":
            return
        definition = (await engine.load_definitions(tx, {(journey.id, journey.version)}))[(journey.id, journey.version)]
        trigger = definition.trigger
        if isinstance(trigger, Schedule):
            async for ids in audience(tx.session, trigger.audience):
                await service.enter(tx, journey, ids)
        elif isinstance(trigger, DateField):
            today = job.slot_at.astimezone(await service_zone(tx)).date() + dt.timedelta(days=trigger.offset_days)
            async for ids in audience(
                tx.session, None, extra=Customer.id.in_(await date_matches(tx, trigger.field, today, trigger.annual))
            ):
                await service.enter(tx, journey, ids)


async def service_zone(tx: Tx) -> Any:
    from guanxi.core.services.schedule import tenant_zone

    return await tenant_zone(tx.session)


async def date_matches(tx: Tx, field: str, day: dt.date, annual: bool) -> Any:
    """A subquery of customers whose date custom field ``field`` is ``day`` (``annual``: its
    month and day, any year; 29 February counts on 28 February in other years)."""
    defn = (await tx.session.execute(select(FieldDefinition.id).where(FieldDefinition.key == field))).scalar_one_or_none()
    values = select(FieldValue.customer_id).where(FieldValue.field_id == defn)
    if not annual:
        return values.where(FieldValue.date_value == day)
    month: Any
    dom: Any
    if tx.session.get_bind().dialect.name == "postgresql":
        month, dom = func.extract("month", FieldValue.date_value), func.extract("day", FieldValue.date_value)
    else:
        month, dom = (
            func.cast(func.strftime("%m", FieldValue.date_value), Integer),
            func.cast(func.strftime("%d", FieldValue.date_value), Integer),
        )
    match = and_(month == day.month, dom == day.day)
    leap = day.month == 2 and day.day == 28 and not _is_leap(day.year)
    return values.where(or_(match, and_(month == 2, dom == 29)) if leap else match)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def job_kinds() -> list[JobKind]:
    return [
        JobKind(name=service.TICK_KIND, run=run_worker, description="Advance customers' journey runs that are due", max_attempts=100),
        JobKind(name=service.ENTRY_KIND, run=run_entries, description="Let a scheduled or date-field journey's customers in"),
    ]
