"""Journeys as data: saving versions, activating, and letting customers in (runs).

Saving a definition checks it (:mod:`.validate`) against what the tenant has: its enabled
channels, the actions of its enabled plugins, its webhook hosts; a bad one is refused with the
path of the bad step and nothing is written. Each save of a changed definition is a new version;
runs keep the version they started on unless the save asks to move them (``migrate_runs``: runs
in flight continue at the step of the same id in the new version, or exit when it has none).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from guanxi import ConflictError, NotFoundError, Runtime, Tx, ValidationError
from guanxi.core.services import fields
from guanxi.core.services.schedule import cancel_key, check_cron, schedule_job
from guanxi.models import new_id, utcnow
from guanxi.plugins.automation.journeys import actions as plugin_actions
from guanxi.plugins.automation.journeys.definition import (
    DateField,
    InteractionTrigger,
    Journey,
    Schedule,
    SegmentEntered,
    StageChangedTrigger,
    TagAdded,
)
from guanxi.plugins.automation.journeys.models import AutomationJourney, AutomationJourneyRun, AutomationJourneyVersion
from guanxi.plugins.automation.journeys.settings import journey_settings
from guanxi.plugins.automation.journeys.validate import JourneyError, check, decode

STATUSES = ("draft", "active", "paused", "archived")
IN_FLIGHT = ("waiting", "running")
TICK_KIND = "automation.journey_runs"
TICK_KEY = "automation.journey_runs"
ENTRY_KIND = "automation.journey_entry"


def trigger_of(journey: Journey) -> tuple[str, str | None]:
    """(type, value) of a journey's trigger, as stored for finding the journeys an event starts."""
    t = journey.trigger
    match t:
        case TagAdded():
            return "tag_added", t.tag
        case StageChangedTrigger():
            return "stage_changed", t.to
        case InteractionTrigger():
            return "interaction", t.kind
        case SegmentEntered():
            return "segment_entered", t.segment
        case DateField():
            return "date_field", t.field
        case Schedule():
            return "schedule", None
    raise AssertionError(t)  # pragma: no cover


async def _tenant_channels(runtime: Runtime, tenant_id: uuid.UUID) -> set[str]:
    return {name for name in runtime.channels if await runtime.tenant_channel(tenant_id, name) is not None}


async def check_for_tenant(tx: Tx, journey: Journey) -> Journey:
    """:func:`.validate.check` against the tenant's channels, actions and webhook hosts."""
    runtime = tx.runtime
    settings = journey_settings(runtime, tx.tenant_id)
    actions = set(await plugin_actions.available(runtime, tx.tenant_id))
    check(journey, channels=await _tenant_channels(runtime, tx.tenant_id), actions=actions, allowed_hosts=settings.webhook_hosts)
    if isinstance(journey.trigger, Schedule):
        check_cron(journey.trigger.cron)
    if isinstance(journey.trigger, DateField):
        try:
            defn = await fields.get_field(tx.session, journey.trigger.field)
        except NotFoundError:
            raise JourneyError(
                f"the trigger's field {journey.trigger.field!r} is no custom field of the tenant", field="trigger.field"
            ) from None
        if defn.kind != "date":
            raise JourneyError(f"the trigger's field {journey.trigger.field!r} is a {defn.kind} field, not a date", field="trigger.field")
    return journey


async def get_journey(session: Any, key: str) -> AutomationJourney:
    found = (await session.execute(select(AutomationJourney).where(AutomationJourney.key == key))).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"journey {key!r} not found", field="key")
    return found


async def definition_of(session: Any, journey_id: uuid.UUID, version: int) -> Journey:
    row = await session.get(AutomationJourneyVersion, (session.tenant_id, journey_id, version))
    if row is None:
        raise NotFoundError(f"journey version {version} not found", field="version")
    return msgspec.convert(row.definition, Journey)


async def save_journey(tx: Tx, data: bytes | str | dict[str, Any], *, fmt: str = "json", migrate_runs: bool = False) -> AutomationJourney:
    """Save a definition: a new journey (version 1, ``draft``) or a new version of the journey
    with its key (unchanged definitions write nothing). See the module docstring."""
    journey = await check_for_tenant(tx, decode(data, fmt=fmt))
    session = tx.session
    stored = msgspec.to_builtins(journey)
    kind, value = trigger_of(journey)
    now = utcnow()
    row = (await session.execute(select(AutomationJourney).where(AutomationJourney.key == journey.key))).scalar_one_or_none()
    if row is None:
        row = AutomationJourney(id=new_id(), key=journey.key, name=journey.name, status="draft", version=1, created_at=now)
        row.trigger_type, row.trigger_value, row.updated_at = kind, value, now
        session.add(row)
        await session.flush()
        session.add(AutomationJourneyVersion(journey_id=row.id, version=1, definition=stored, created_at=now, created_by=tx.ctx.actor.name))
        await session.flush()
        return row
    if row.status == "archived":
        raise ConflictError(f"journey {journey.key!r} is archived", field="key")
    current = await session.get(AutomationJourneyVersion, (tx.tenant_id, row.id, row.version))
    if current is not None and current.definition == stored:
        return row
    row.version += 1
    row.name, row.trigger_type, row.trigger_value, row.updated_at = journey.name, kind, value, now
    session.add(
        AutomationJourneyVersion(journey_id=row.id, version=row.version, definition=stored, created_at=now, created_by=tx.ctx.actor.name)
    )
    await session.flush()
    if migrate_runs:
        ids = {step.id for step in journey.steps}
        in_flight = (AutomationJourneyRun.journey_id == row.id, AutomationJourneyRun.status.in_(IN_FLIGHT))
        await session.execute(
            update(AutomationJourneyRun)
            .where(*in_flight, or_(AutomationJourneyRun.step.in_(ids), AutomationJourneyRun.step.is_(None)))  # None: not started yet
            .values(version=row.version)
        )
        await session.execute(
            update(AutomationJourneyRun)
            .where(*in_flight, AutomationJourneyRun.version != row.version)
            .values(status="exited", step=None, finished_at=now, reason=f"version {row.version} has no such step")
        )
    if row.status == "active":
        await _schedule_entries(tx, row, journey)
    return row


async def set_status(tx: Tx, key: str, status: str) -> AutomationJourney:
    """Activate, pause or archive a journey. Paused: nobody enters, runs wait where they are.
    Archived: nobody enters and the runs in flight exit."""
    if status not in STATUSES or status == "draft":
        raise ValidationError(f"status must be one of active, paused, archived; not {status!r}", field="status")
    row = await get_journey(tx.session, key)
    if row.status == "archived":
        raise ConflictError(f"journey {key!r} is archived", field="key")
    row.status, row.updated_at = status, utcnow()
    journey = await definition_of(tx.session, row.id, row.version)
    if status == "active":
        await check_for_tenant(tx, journey)  # a channel disabled since the save refuses it now
        await _schedule_entries(tx, row, journey)
        await wake(tx)
    else:
        await cancel_key(tx, f"{ENTRY_KIND}:{row.id}")
    if status == "archived":
        await tx.session.execute(
            update(AutomationJourneyRun)
            .where(AutomationJourneyRun.journey_id == row.id, AutomationJourneyRun.status.in_(IN_FLIGHT))
            .values(status="exited", step=None, finished_at=utcnow(), reason="the journey was archived")
        )
    return row


async def _schedule_entries(tx: Tx, row: AutomationJourney, journey: Journey) -> None:
    """Scheduled and date-field triggers let customers in from a cron job of their own."""
    trigger = journey.trigger
    key = f"{ENTRY_KIND}:{row.id}"
    if isinstance(trigger, Schedule):
        await schedule_job(tx, ENTRY_KIND, key, cron=trigger.cron, payload={"journey_id": str(row.id)})
    elif isinstance(trigger, DateField):
        hour, minute = trigger.at.split(":")
        await schedule_job(tx, ENTRY_KIND, key, cron=f"{int(minute)} {int(hour)} * * *", payload={"journey_id": str(row.id)})


def _insert(tx: Tx) -> Any:
    return postgresql.insert if tx.session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def enter(tx: Tx, journey: AutomationJourney, customer_ids: Iterable[uuid.UUID], *, now: dt.datetime | None = None) -> int:
    """Let customers into the current version of an active journey (one run per customer and
    version: a customer already in is not entered again); returns how many entered. Several
    statements per 1,000 customers, whatever their number."""
    if journey.status != "active":
        return 0
    now = now or utcnow()
    entered = 0
    batch: list[uuid.UUID] = []

    async def flush() -> int:
        if not batch:
            return 0
        values = [
            {
                "tenant_id": tx.tenant_id,
                "id": new_id(),
                "journey_id": journey.id,
                "version": journey.version,
                "customer_id": cid,
                "step": None,
                "seq": 0,
                "status": "waiting",
                "next_attempt_at": now,
                "attempts": 0,
                "event_seen": False,
                "entered_at": now,
            }
            for cid in batch
        ]
        stmt = _insert(tx)(AutomationJourneyRun).values(values).on_conflict_do_nothing()
        result = await tx.session.execute(stmt)
        batch.clear()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    for cid in customer_ids:
        batch.append(cid)
        if len(batch) >= 500:
            entered += await flush()
    entered += await flush()
    if entered:
        await wake(tx)
    return entered


async def wake(tx: Tx, at: dt.datetime | None = None) -> None:
    """Make the journey worker's job due at ``at`` (now) unless it is due sooner already."""
    from guanxi.core.domain.models import ScheduledJob

    at = at or utcnow()
    job = (await tx.session.execute(select(ScheduledJob.status, ScheduledJob.next_attempt_at).where(ScheduledJob.key == TICK_KEY))).first()
    if job is not None and job.status == "scheduled" and job.next_attempt_at <= at:
        return
    await schedule_job(tx, TICK_KIND, TICK_KEY, run_at=at, max_attempts=100)


async def active_journeys(session: Any, trigger_type: str, values: Sequence[str] | None = None) -> list[AutomationJourney]:
    stmt = select(AutomationJourney).where(AutomationJourney.status == "active", AutomationJourney.trigger_type == trigger_type)
    if values is not None:
        stmt = stmt.where(AutomationJourney.trigger_value.in_(list(values)))
    return list((await session.execute(stmt)).scalars())


async def customers_merged(tx: Tx, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """The survivor takes over the merged customer's runs, except of journey versions it has a
    run of itself: those runs, if in flight, exit."""
    mine = select(AutomationJourneyRun.journey_id, AutomationJourneyRun.version).where(AutomationJourneyRun.customer_id == survivor_id)
    taken = {(j, v) for j, v in (await tx.session.execute(mine)).all()}
    for run in (await tx.session.execute(select(AutomationJourneyRun).where(AutomationJourneyRun.customer_id == merged_id))).scalars():
        if (run.journey_id, run.version) not in taken:
            run.customer_id = survivor_id
        elif run.status in IN_FLIGHT:
            run.status, run.step, run.finished_at, run.reason = (
                "exited",
                None,
                utcnow(),
                "the customer was merged into one already in this journey",
            )


async def runs_of(session: Any, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """A customer's journey runs, for the export of their personal data."""
    rows = await session.execute(
        select(AutomationJourney.key, AutomationJourneyRun)
        .join(AutomationJourney, AutomationJourney.id == AutomationJourneyRun.journey_id)
        .where(AutomationJourneyRun.customer_id == customer_id)
        .order_by(AutomationJourneyRun.entered_at)
    )
    return [
        {"journey": key, "version": r.version, "status": r.status, "step": r.step, "entered_at": r.entered_at.isoformat()}
        for key, r in rows.all()
    ]


async def count_runs(session: Any, journey_id: uuid.UUID) -> int:
    return int(
        (
            await session.execute(
                select(func.count()).select_from(AutomationJourneyRun).where(AutomationJourneyRun.journey_id == journey_id)
            )
        ).scalar_one()
    )
