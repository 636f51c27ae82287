"""Running journeys: each customer's run moves through its version's steps, durably.

A run is a row of ``automation_journey_runs``, a queue like the inbox: due runs are claimed in
batches with a lease (``SKIP LOCKED`` on PostgreSQL, :func:`guanxi.core.queues.queue.claim`), so
several worker processes never hold the same run. A claimed batch is advanced in ONE transaction:
each run takes steps until it reaches a wait or its end; every step taken writes a row of
``automation_journey_steps``, unique per (run, step number), together with the step's effects (the
outbox row of a send, the tag, the task …). So a worker killed mid-step has committed nothing and
the step runs again, once, after the lease runs out; and two workers can never both commit one
step (the unique key refuses the second). Webhooks and plugin actions that leave the database get
the step's ``Idempotency-Key``.

Steps of a kind are taken for all the batch's runs at that step at once: a branch is one SQL
statement for the group, a send is one consent and channel-policy screening
(:func:`guanxi.screen_outbound`) and one frequency-cap count, then one outbox row per customer.
Time decisions use the ``now`` given (the worker's clock), so tests move time by passing it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from typing import Any

import msgspec
from sqlalchemy import func, insert, select

from guanxi import ActionRun, GuanxiError, RequestContext, Runtime, Tx, screen_outbound
from guanxi.core.base.context import Actor
from guanxi.core.queues import outbox
from guanxi.core.queues.queue import claim
from guanxi.core.services.customers import get_customer
from guanxi.core.services.notifications import NotificationInput, after_quiet_hours, notify
from guanxi.core.services.pipelines import move_stage, stage_by_key
from guanxi.core.services.schedule import tenant_zone, zone
from guanxi.core.services.tags import change_tags
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.models import Customer, new_id, utcnow
from guanxi.plugins.automation.journeys import actions as plugin_actions
from guanxi.plugins.automation.journeys import egress
from guanxi.plugins.automation.journeys.conditions import matching
from guanxi.plugins.automation.journeys.definition import (
    Action,
    Branch,
    CreateTask,
    Journey,
    MoveStage,
    NotifyOwner,
    Send,
    Tag,
    Wait,
    WaitEvent,
    WaitUntil,
    Webhook,
    exits,
    successor,
)
from guanxi.plugins.automation.journeys.models import (
    AutomationJourney,
    AutomationJourneyRun,
    AutomationJourneyStep,
    AutomationJourneyVersion,
)
from guanxi.plugins.automation.journeys.settings import JourneySettings, journey_settings

log = logging.getLogger("guanxi.automation.journeys")
ACTOR = Actor(kind="plugin", name="automation")
_CACHE = "automation.journey_definitions"


def idempotency_key(run: AutomationJourneyRun) -> str:
    return f"journey:{run.id}:{run.seq}"


def _definitions(runtime: Runtime) -> dict[tuple[uuid.UUID, uuid.UUID, int], Journey]:
    found: dict[tuple[uuid.UUID, uuid.UUID, int], Journey] | None = runtime.state.get(_CACHE)
    if found is None or len(found) > 1000:
        found = runtime.state[_CACHE] = {}
    return found


async def load_definitions(tx: Tx, pairs: set[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Journey]:
    """The definitions of some (journey, version) pairs (versions never change: cached)."""
    cache = _definitions(tx.runtime)
    out: dict[tuple[uuid.UUID, int], Journey] = {}
    missing = []
    for jid, version in pairs:
        hit = cache.get((tx.tenant_id, jid, version))
        if hit is None:
            missing.append((jid, version))
        else:
            out[(jid, version)] = hit
    if missing:
        rows = await tx.session.execute(
            select(AutomationJourneyVersion).where(AutomationJourneyVersion.journey_id.in_({j for j, _ in missing}))
        )
        for row in rows.scalars():
            journey = msgspec.convert(row.definition, Journey)
            cache[(tx.tenant_id, row.journey_id, row.version)] = journey
            if (row.journey_id, row.version) in missing:
                out[(row.journey_id, row.version)] = journey
    return out


def next_time_of_day(after: dt.datetime, clock: str, tz: Any) -> dt.datetime:
    """The first moment strictly after ``after`` whose local time in ``tz`` is ``clock`` (HH:MM), in UTC."""
    hour, minute = (int(x) for x in clock.split(":"))
    local = after.astimezone(tz)
    candidate = dt.datetime.combine(local.date(), dt.time(hour, minute), tzinfo=tz)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(hour, minute), tzinfo=tz)
    return candidate.astimezone(dt.UTC)


class Batch:
    """One transaction's work on a batch of claimed runs (see the module docstring)."""

    def __init__(self, tx: Tx, now: dt.datetime, settings: JourneySettings, tz: Any) -> None:
        self.tx, self.now, self.settings, self.tz = tx, now, settings, tz
        self.ledger: list[dict[str, Any]] = []
        self.journeys: dict[uuid.UUID, AutomationJourney] = {}
        self.definitions: dict[tuple[uuid.UUID, int], Journey] = {}
        self.customers: dict[uuid.UUID, Customer] = {}
        self.sends_in_window: dict[uuid.UUID, int] = {}

    # --- bookkeeping -------------------------------------------------------------------------

    def record(self, run: AutomationJourneyRun, step: Any, outcome: str, *, reason: str | None = None, channel: str | None = None) -> None:
        self.ledger.append(
            {
                "tenant_id": self.tx.tenant_id,
                "id": new_id(),
                "run_id": run.id,
                "journey_id": run.journey_id,
                "version": run.version,
                "customer_id": run.customer_id,
                "seq": run.seq,
                "step": step.id,
                "step_type": type(step).__struct_config__.tag,
                "outcome": outcome,
                "channel": channel,
                "reason": reason,
                "at": self.now,
            }
        )
        run.seq += 1

    def go(self, run: AutomationJourneyRun, target: str | None) -> bool:
        """Move a run to ``target`` (None: it ends ``done``); True while it has steps to take now."""
        run.step, run.waiting_since, run.event_seen = target, None, False
        if target is None:
            self.finish(run, "done")
            return False
        return True

    def finish(self, run: AutomationJourneyRun, status: str, reason: str | None = None) -> None:
        run.status, run.step, run.finished_at, run.reason, run.locked_until = status, None, self.now, reason, None

    def park(self, run: AutomationJourneyRun, until: dt.datetime) -> None:
        run.status, run.next_attempt_at, run.locked_until, run.attempts = "waiting", until, None, 0

    # --- the loop ----------------------------------------------------------------------------

    async def advance(self, runs: list[AutomationJourneyRun]) -> None:
        session = self.tx.session
        self.journeys = {
            j.id: j
            for j in (
                await session.execute(select(AutomationJourney).where(AutomationJourney.id.in_({r.journey_id for r in runs})))
            ).scalars()
        }
        self.definitions = await load_definitions(self.tx, {(r.journey_id, r.version) for r in runs})
        active: list[AutomationJourneyRun] = []
        for run in runs:
            journey = self.journeys[run.journey_id]
            if journey.status == "paused":
                self.park(run, self.now + dt.timedelta(minutes=5))
            elif journey.status == "archived":
                self.finish(run, "exited", "the journey was archived")
            else:
                if run.step is None:
                    run.step = self.definitions[(run.journey_id, run.version)].steps[0].id
                active.append(run)
        for _round in range(1000):
            if not active:
                break
            groups: dict[tuple[uuid.UUID, int, str], list[AutomationJourneyRun]] = defaultdict(list)
            for run in active:
                groups[(run.journey_id, run.version, run.step or "")].append(run)
            active = []
            for (jid, version, step_id), members in groups.items():
                definition = self.definitions[(jid, version)]
                index = next((i for i, s in enumerate(definition.steps) if s.id == step_id), None)
                if index is None:
                    for run in members:
                        self.finish(run, "exited", f"version {version} has no step {step_id!r}")
                    continue
                active.extend(await self.take(definition, index, members))
        else:  # pragma: no cover - a cycle without a wait is refused when saved
            for run in active:
                self.finish(run, "failed", "too many steps at once")
        if self.ledger:
            await session.execute(insert(AutomationJourneyStep), self.ledger)
        for run in runs:
            if run.status == "running":  # took every step it could now and ended nowhere: cannot happen
                self.park(run, self.now)

    async def take(self, definition: Journey, index: int, runs: list[AutomationJourneyRun]) -> list[AutomationJourneyRun]:
        """Take step ``index`` for these runs; return those that go on to another step now."""
        step = definition.steps[index]
        after = successor(definition.steps, index)
        if isinstance(step, (Wait, WaitUntil, WaitEvent)):
            on_timeout = exits(definition.steps, index)[-1]
            return [run for run in runs if self.wait(step, after, on_timeout, run)]
        if isinstance(step, Branch):
            yes = await matching(self.tx.session, step.condition, [r.customer_id for r in runs], now=self.now)
            moving = []
            for run in runs:
                hit = run.customer_id in yes
                self.record(run, step, "yes" if hit else "no")
                if self.go(run, exits(definition.steps, index)[0 if hit else 1]):
                    moving.append(run)
            return moving
        if isinstance(step, Send):
            return await self.send(step, after, runs)
        moving = []
        for run in runs:
            try:
                async with self.tx.savepoint():
                    skipped = await self.act(definition, step, run)
            except GuanxiError as exc:
                self.record(run, step, "failed", reason=f"{exc.code}: {exc.message}")
                self.finish(run, "failed", exc.message)
                continue
            except (OSError, RuntimeError) as exc:  # a webhook that did not answer: retried later
                run.attempts = run.attempts or 1
                self.park(run, self.now + dt.timedelta(seconds=min(3600, 30 * 2 ** min(run.attempts, 7))))
                log.warning("journey step %s of run %s will be retried: %s", step.id, run.id, exc)
                continue
            self.record(run, step, "skipped" if skipped else "done", reason=skipped)
            if self.go(run, after):
                moving.append(run)
        return moving

    def wait(self, step: Wait | WaitUntil | WaitEvent, after: str | None, on_timeout: str | None, run: AutomationJourneyRun) -> bool:
        if run.waiting_since is None:  # arriving at the wait
            run.waiting_since = self.now
            self.park(run, self.due(step, run))
            return False
        if isinstance(step, WaitEvent):
            if run.event_seen:
                self.record(run, step, "event")
                return self.go(run, after)
            if self.now >= run.waiting_since + dt.timedelta(seconds=step.timeout_s):
                self.record(run, step, "timeout")
                return self.go(run, on_timeout)
            self.park(run, run.waiting_since + dt.timedelta(seconds=step.timeout_s))
            return False
        due = self.due(step, run)
        if self.now < due:
            self.park(run, due)
            return False
        self.record(run, step, "waited")
        return self.go(run, after)

    def due(self, step: Wait | WaitUntil | WaitEvent, run: AutomationJourneyRun) -> dt.datetime:
        since = run.waiting_since or self.now
        if isinstance(step, Wait):
            return since + dt.timedelta(seconds=step.seconds)
        if isinstance(step, WaitEvent):
            return since + dt.timedelta(seconds=step.timeout_s)
        customer = self.customers.get(run.customer_id)
        name = (customer.attributes or {}).get("time_zone") if customer is not None else None
        return next_time_of_day(since, step.time, zone(name if isinstance(name, str) else None, str(self.tz)))

    async def send(self, step: Send, after: str | None, runs: list[AutomationJourneyRun]) -> list[AutomationJourneyRun]:
        s = self.settings
        until = after_quiet_hours(self.now, s.quiet_start, s.quiet_end, self.tz)
        if until > self.now:  # quiet hours: the send waits for their end, at the same step
            for run in runs:
                self.park(run, until)
            return []
        refused: dict[uuid.UUID, str] = {}
        ids = [r.customer_id for r in runs]
        if s.frequency_cap:
            since = self.now - dt.timedelta(seconds=s.frequency_window_s)
            counts = dict(
                (
                    await self.tx.session.execute(
                        select(AutomationJourneyStep.customer_id, func.count())
                        .where(
                            AutomationJourneyStep.customer_id.in_(ids),
                            AutomationJourneyStep.outcome == "sent",
                            AutomationJourneyStep.at >= since,
                        )
                        .group_by(AutomationJourneyStep.customer_id)
                    )
                ).all()
            )
            for cid in ids:
                if counts.get(cid, 0) + self.sends_in_window.get(cid, 0) >= s.frequency_cap:
                    refused[cid] = f"FREQUENCY_CAP: the customer already got {s.frequency_cap} journey messages in {s.frequency_window_s} s"
        try:
            screening = await screen_outbound(
                self.tx.runtime, self.tx.session, step.channel, [c for c in ids if c not in refused], text=step.text
            )
            for refusal in screening.refused:
                refused.setdefault(refusal.customer_id, f"{refusal.code}: {refusal.reason}")
        except GuanxiError as exc:  # the channel or its plugin is off for the tenant now: nobody gets it
            for cid in ids:
                refused.setdefault(cid, f"{exc.code}: {exc.message}")
        moving = []
        for run in runs:
            reason = refused.get(run.customer_id)
            if reason is None:
                try:
                    async with self.tx.savepoint():
                        request = outbox.SendRequest(
                            customer_id=run.customer_id, channel=step.channel, idempotency_key=idempotency_key(run), text=step.text
                        )
                        await outbox.send_message(self.tx, request)
                except GuanxiError as exc:
                    reason = f"{exc.code}: {exc.message}"
            if reason is None:
                self.sends_in_window[run.customer_id] = self.sends_in_window.get(run.customer_id, 0) + 1
                self.record(run, step, "sent", channel=step.channel)
            else:
                self.record(run, step, "skipped", channel=step.channel, reason=reason)
            if self.go(run, after):
                moving.append(run)
        return moving

    async def act(self, definition: Journey, step: Any, run: AutomationJourneyRun) -> str | None:
        """Take a single-customer step; a reason when it is skipped."""
        tx, cid = self.tx, run.customer_id
        match step:
            case Tag():
                await change_tags(tx, cid, add=step.add, remove=step.remove)
            case MoveStage():
                await move_stage(
                    tx, await get_customer(tx.session, cid), await stage_by_key(tx.session, step.stage), rule=f"journey:{definition.key}"
                )
            case CreateTask():
                customer = await get_customer(tx.session, cid)
                due = self.now + dt.timedelta(seconds=step.due_in_s)
                await create_task(tx, TaskInput(customer_id=cid, title=step.title, assignee_id=customer.owner_id, due_at=due))
            case NotifyOwner():
                customer = await get_customer(tx.session, cid)
                if customer.owner_id is None:
                    return "the customer has no owner to notify"
                data = NotificationInput(
                    user_id=customer.owner_id,
                    kind="automation.journey",
                    title=step.text,
                    body=f"{definition.name}: {customer.display_name}",
                    dedupe_key=idempotency_key(run),
                    link_type="customer",
                    link_id=cid,
                )
                await notify(tx, data)
            case Webhook():
                from guanxi.plugins.automation.journeys.secrets import webhook_secret

                body = msgspec.json.encode(
                    {"journey": definition.key, "step": step.id, "customer_id": str(cid), "run_id": str(run.id), "at": self.now.isoformat()}
                )
                status = await egress.post(
                    step.url,
                    body,
                    secret=webhook_secret(tx.runtime, tx.tenant_id),
                    idempotency_key=idempotency_key(run),
                    allowed_hosts=self.settings.webhook_hosts,
                )
                if status >= 400:
                    return f"the webhook answered HTTP {status}"
            case Action():
                found = (await plugin_actions.available(tx.runtime, tx.tenant_id)).get(step.action)
                if found is None:
                    return f"no enabled plugin offers action {step.action!r}"
                return await found.run(
                    ActionRun(
                        tx=tx,
                        customer_id=cid,
                        params=dict(step.params),
                        journey=definition.key,
                        step=step.id,
                        idempotency_key=idempotency_key(run),
                    )
                )
        return None


async def run_batch(runtime: Runtime, tenant_id: uuid.UUID, run_ids: list[uuid.UUID], now: dt.datetime) -> None:
    """Advance claimed runs of one tenant in one transaction. The rows are locked (PostgreSQL, in
    id order): a goal reached meanwhile (journeys/hooks.py) waits for this commit, and a run a
    goal converted before it is no longer ``running`` here, so neither overwrites the other."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        runs = list(
            (
                await tx.session.execute(
                    select(AutomationJourneyRun)
                    .where(AutomationJourneyRun.id.in_(run_ids), AutomationJourneyRun.status == "running")
                    .order_by(AutomationJourneyRun.id)
                    .with_for_update()
                )
            ).scalars()
        )
        if not runs:
            return
        batch = Batch(tx, now, journey_settings(runtime, tenant_id), await tenant_zone(tx.session))
        batch.customers = {
            c.id: c for c in (await tx.session.execute(select(Customer).where(Customer.id.in_({r.customer_id for r in runs})))).scalars()
        }
        await batch.advance(runs)


async def advance(
    runtime: Runtime, *, tenant_id: uuid.UUID | None = None, limit: int = 500, lease_s: float = 300.0, now: dt.datetime | None = None
) -> int:
    """Claim up to ``limit`` due runs and advance them; returns how many were claimed."""
    now = now or utcnow()
    claimed = await claim(
        runtime.engine,
        AutomationJourneyRun,
        due_status="waiting",
        busy_status="running",
        limit=limit,
        lease_s=lease_s,
        now=now,
        tenant_id=tenant_id,
    )
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for tid, rid in claimed:
        by_tenant[tid].append(rid)
    for tid, ids in by_tenant.items():
        await run_batch(runtime, tid, ids, now)
    return len(claimed)
