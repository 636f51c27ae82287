"""The durable inbox: webhooks store events here and answer the provider at once; a worker
turns them into customers, identities and interactions.

Exactly-once in effect: an event's whole effect (identity, interaction, profile update) and
the inbox row's ``done`` mark commit in one transaction, and the interaction carries the dedupe
key ``inbox:<channel>:<provider event id>``. A crash before the commit leaves the row to be
claimed again when its lease runs out; a crash after it leaves nothing to do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import traceback
import uuid

import msgspec
from sqlalchemy import select

from guanxi.core.base import metrics, tracing
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.base.logs import log_context, tenant_var
from guanxi.core.domain.channels import InboundEvent, Receipt
from guanxi.core.domain.contracts import Arrival
from guanxi.core.domain.events import InboundApplied
from guanxi.core.domain.models import InboxEvent, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.queues import lifecycle
from guanxi.core.queues.group_commit import insert_inbox_row
from guanxi.core.queues.queue import QueueWorker, backoff, claim
from guanxi.core.queues.queue import depth as queue_depth
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import identities, interactions
from guanxi.core.services.customers import ENTRY_STAGES
from guanxi.core.storage.db import is_busy, write_slot

log = logging.getLogger("guanxi.inbox")
CHANNEL_ACTOR = Actor(kind="system", name="inbox")
#: the largest claim of the inbox worker working through a backlog (see ``InboxWorker.size``): a
#: batch costs a fixed handful of statements however many events it holds, so a backlog drains
#: in big batches, while a trickle goes in batches of ``queues.batch`` (on SQLite an ack waits
#: for the batch being written)
MAX_BATCH = 200
#: on SQLite, how long the inbox worker's claim and batch may hold the write slot while webhook
#: acks wait for it (:func:`next_claim_size`): an ack waits for at most one batch (requests go
#: before the worker's next one, :class:`~guanxi.core.storage.db.WriteSlot`), so this bounds
#: what a batch adds to an ack's latency
ACK_BUDGET_S = 0.02


#: errors that fail again on every retry: the event (or what it refers to) is wrong, not the moment
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (ValidationError, NotFoundError, ConflictError, msgspec.ValidationError)


def is_permanent(error: BaseException) -> bool:
    """Whether an inbox event that failed with ``error`` must fail at once instead of being
    retried: invalid input (``ValidationError``, also a stored event that no longer decodes,
    e.g. one blanked by an erasure), something missing (``NotFoundError``) or clashing
    (``ConflictError``), or any exception with a true ``permanent`` attribute. Anything else
    (a timeout, a lock, a provider outage) is transient and retried with backoff. An error class
    may say ``permanent = False`` to be retried although it is one of those kinds (a receipt
    for a message the outbox has not recorded yet)."""
    marked = getattr(error, "permanent", None)
    if marked is not None:
        return bool(marked)
    return isinstance(error, PERMANENT_ERRORS)


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`ingest` did with one event or receipt."""

    #: The new inbox row's id; None for a duplicate.
    inbox_id: uuid.UUID | None
    #: True when this (tenant, channel, provider event id) was stored before: nothing was done.
    duplicate: bool


def _check(event: InboundEvent | Receipt) -> None:
    if not event.provider_event_id or len(event.provider_event_id) > 200:
        raise ValidationError("provider_event_id must be 1 to 200 characters", field="provider_event_id")
    if event.occurred_at.tzinfo is None:
        raise ValidationError("occurred_at must carry a time zone", field="occurred_at")
    if isinstance(event, Receipt):
        lifecycle.check_receipt(event)
    elif not event.identity.external_id:
        raise ValidationError("identity.external_id must not be empty", field="identity.external_id")


async def ingest(runtime: Runtime, tenant_id: uuid.UUID, event: InboundEvent | Receipt) -> IngestResult:
    """Store an inbound event or a receipt durably and return at once; a duplicate delivery (same
    tenant, channel and provider event id) is acknowledged and ignored. Wakes the inbox worker.

    Raises :class:`~guanxi.core.base.errors.ValidationError` (nothing stored) for an event core
    cannot take: an empty or longer than 200 characters event id, a naive ``occurred_at``, an
    empty external id, a receipt with an unknown status."""
    _check(event)
    tenant_var.set(str(tenant_id))  # the rest of the request logs under this tenant
    values = {
        "tenant_id": tenant_id,
        "id": new_id(),
        "channel": event.channel,
        "provider_event_id": event.provider_event_id,
        "received_at": utcnow(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "event": msgspec.to_builtins(event),
        "trace_context": tracing.current_traceparent(),
    }
    inserted = await insert_inbox_row(runtime.engine, values)  # acks arriving together share one commit
    worker = runtime.state.get("inbox_worker")
    if inserted is not None and worker is not None:
        worker.wake()
    return IngestResult(inbox_id=inserted, duplicate=inserted is None)


#: an applied row, and the customer and interaction it came to
Applied = tuple[InboxEvent, uuid.UUID | None, uuid.UUID | None]


class BatchLookups(msgspec.Struct, kw_only=True):
    """What a batch of the inbox looked up for all its rows at once."""

    #: the accounts the rows name (:func:`guanxi.core.services.identities.prefetch_identities`)
    known: identities.KnownIdentities
    #: the rows' interaction dedupe keys no interaction carries yet (inserted without a check)
    unrecorded: set[str] = msgspec.field(default_factory=set)
    #: the rows' inbound events, decoded once (by inbox row id)
    events: dict[uuid.UUID, InboundEvent] = msgspec.field(default_factory=dict)
    #: the batch's inbox rows (by id), read in one statement
    rows: dict[uuid.UUID, InboxEvent] = msgspec.field(default_factory=dict)


def dedupe_key(event: InboundEvent) -> str:
    """The interaction dedupe key of an inbound event: its effect happens once."""
    return f"inbox:{event.channel}:{event.provider_event_id}"


def _identity_input(event: InboundEvent) -> identities.IdentityInput:
    ident = event.identity
    return identities.IdentityInput(
        channel=event.channel,
        external_id=ident.external_id,
        union_id=ident.union_id,
        nickname=ident.nickname,
        avatar_url=ident.avatar_url,
        follower_count=ident.follower_count,
        profile=dict(ident.profile),
        phone=ident.phone,
        email=ident.email,
    )


def _arrival(event: InboundEvent) -> Arrival:
    return Arrival(channel=event.channel, external_id=event.identity.external_id, payload=dict(event.payload))


def _decoded(rows: list[InboxEvent]) -> dict[uuid.UUID, InboundEvent]:
    """The inbound events of the rows still to apply (receipts and rows that no longer decode
    left out: they are applied, or fail, one by one)."""
    found: dict[uuid.UUID, InboundEvent] = {}
    for row in rows:
        if row.status == "done" or row.event.get("type") == "receipt":
            continue
        try:
            found[row.id] = msgspec.convert(row.event, InboundEvent)
        except msgspec.ValidationError:
            continue
    return found


async def _lookups(tx: Tx, rows: list[InboxEvent], *, defer_inserts: bool) -> BatchLookups:
    """The batch's set-based work before its events are applied one after the other: the
    accounts the events name, their dedupe keys and, without savepoints (``defer_inserts``),
    the plugins' ``guanxi_inbound_prefetch`` and the batch's new customers, created together
    (:func:`guanxi.core.services.identities.create_new_people`)."""
    events = _decoded(rows)
    keys = {(event.channel, event.identity.external_id) for event in events.values()}
    known = await identities.prefetch_identities(tx, keys)
    lookups = BatchLookups(known=known, events=events, rows={row.id: row for row in rows})
    if not defer_inserts:
        return lookups
    lookups.unrecorded = await interactions.unrecorded_keys(tx, [dedupe_key(event) for event in events.values()])
    ordered = [events[row.id] for row in rows if row.id in events]
    await plugins.call_all((await tx.hooks()).guanxi_inbound_prefetch, tx=tx, events=ordered)
    await identities.create_new_people(tx, [(_identity_input(event), _arrival(event)) for event in ordered], known)
    return lookups


async def _apply(tx: Tx, inbox_id: uuid.UUID, lookups: BatchLookups | None = None) -> Applied | None:
    """The whole effect of one inbox row, inside the caller's transaction; the caller marks the
    row done (:func:`_done`) in the same transaction. ``lookups``: what its batch looked up at once."""
    row = lookups.rows.get(inbox_id) if lookups is not None else None
    if row is None:
        row = await tx.session.get(InboxEvent, (tx.tenant_id, inbox_id))
    if row is None or row.status == "done":
        return None
    # the trace of the webhook that stored the row goes on here (tracing on)
    with tracing.continued(row.trace_context, "guanxi.inbox.apply", channel=row.channel, inbox_id=str(row.id)):
        customer_id, interaction_id = await _apply_row(tx, row, lookups)
    return row, customer_id, interaction_id


async def _apply_row(tx: Tx, row: InboxEvent, lookups: BatchLookups | None) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    if row.event.get("type") == "receipt":
        message = await lifecycle.apply_receipt(tx, msgspec.convert(row.event, Receipt))
        return message.customer_id, message.interaction_id
    event = lookups.events.get(row.id) if lookups is not None else None
    if event is None:
        event = msgspec.convert(row.event, InboundEvent)
    customer, identity, created = await identities.resolve_identity(
        tx, _identity_input(event), arrival=_arrival(event), known=lookups.known if lookups is not None else None
    )
    key = dedupe_key(event)
    interaction, new = await interactions.record_interaction(
        tx,
        interactions.InteractionInput(
            customer_id=customer.id,
            identity_id=identity.id,
            channel=event.channel,
            kind=event.kind,
            direction=event.direction,
            occurred_at=event.occurred_at,
            text=event.text,
            payload=dict(event.payload),
            dedupe_key=key,
        ),
        unrecorded=lookups is not None and key in lookups.unrecorded,
    )
    if identity.unreachable_at is not None and event.direction == "in":  # it wrote in: reachable again
        identity.unreachable_at = None
    applied = InboundApplied(
        customer_id=customer.id,
        identity_id=identity.id,
        external_id=identity.external_id,
        interaction_id=interaction.id,
        new_customer=created,
        new_interaction=new,
    )
    # the channel plugin's own bookkeeping, in this transaction: a failure undoes the event and
    # the inbox retries it, so nothing is half-applied
    await plugins.call_all((await tx.hooks()).guanxi_inbound_applied, tx=tx, event=event, applied=applied)
    return customer.id, interaction.id


def _done(row: InboxEvent, customer_id: uuid.UUID | None, interaction_id: uuid.UUID | None) -> None:
    row.status = "done"
    row.processed_at = utcnow()
    row.locked_until = None
    row.last_error = None
    row.customer_id = customer_id
    row.interaction_id = interaction_id


async def process_one(runtime: Runtime, tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> None:
    """Apply one claimed inbox row in one transaction (see the module docstring)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=CHANNEL_ACTOR)) as tx:
        if (applied := await _apply(tx, inbox_id)) is not None:
            _done(*applied)


class _BatchEventError(Exception):
    """An event of a batch applied without savepoints failed: the batch's transaction is rolled
    back and the batch applied again, each event in a savepoint."""

    def __init__(self, inbox_id: uuid.UUID, error: Exception) -> None:
        super().__init__(f"inbox event {inbox_id} failed: {error!r}")
        self.inbox_id, self.error = inbox_id, error


async def process_batch(runtime: Runtime, tenant_id: uuid.UUID, inbox_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, Exception]]:
    """Apply several claimed rows of one tenant in one transaction (group commit); return the
    rows that failed, with their errors (the others commit together).

    The rows are read in one statement, the accounts they name looked up together (identities
    and their customers: two statements), and the rows marked done together after the last one
    (one ``UPDATE`` executemany at the commit): the marks commit with the effects, so each event
    still takes effect exactly once. The events are applied one after the other without
    savepoints; when one fails, the whole transaction is rolled back and the batch applied again
    with each event in a savepoint of its own, so a failing row is rolled back alone (with the
    events it queued) and the others commit."""
    try:
        return await _apply_batch(runtime, tenant_id, inbox_ids, savepoints=False)
    except _BatchEventError as retry:
        log.info("inbox batch of %d events: %s; applying them again one savepoint each", len(inbox_ids), retry)
        return await _apply_batch(runtime, tenant_id, inbox_ids, savepoints=True)


async def _apply_batch(
    runtime: Runtime, tenant_id: uuid.UUID, inbox_ids: list[uuid.UUID], *, savepoints: bool
) -> list[tuple[uuid.UUID, Exception]]:
    failures: list[tuple[uuid.UUID, Exception]] = []
    applied: list[Applied] = []
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=CHANNEL_ACTOR)) as tx:
        # each _apply finds its row in the session (kept referenced here)
        rows = list((await tx.session.execute(select(InboxEvent).where(InboxEvent.id.in_(inbox_ids)))).scalars().all())
        # without savepoints, the interactions of new dedupe keys are inserted together at the
        # commit; with them, each event's is inserted in its savepoint (ON CONFLICT DO NOTHING)
        tx.session.info[ENTRY_STAGES] = {}  # new customers of the batch enter by the same stages
        try:
            lookups = await _lookups(tx, rows, defer_inserts=not savepoints)
        except Exception as exc:
            if savepoints or is_busy(exc):
                raise
            # an event's new customer (or a plugin's look-up) failed: each event on its own
            raise _BatchEventError(inbox_ids[0], exc) from exc
        for inbox_id in inbox_ids:
            # let the event loop serve what waits (webhook acks in this process) between events:
            # a known person's event awaits nothing, so a batch of 200 ran ~0.2 s of CPU at once
            # and acks queued in the socket for that long (bench/ingest.py's paced p99)
            await asyncio.sleep(0)
            if not savepoints:
                try:
                    one = await _apply(tx, inbox_id, lookups)
                except Exception as exc:
                    if is_busy(exc):
                        raise  # another process holds SQLite's write lock: the worker backs off
                    raise _BatchEventError(inbox_id, exc) from exc
                if one is not None:
                    applied.append(one)
                continue
            try:
                async with tx.savepoint():
                    if (one := await _apply(tx, inbox_id, lookups)) is not None:
                        applied.append(one)
            except Exception as exc:
                failures.append((inbox_id, exc))
                # what the savepoint undid may be in the map (an identity attached by the event)
                tx.session.info[ENTRY_STAGES] = {}
                lookups = await _lookups(tx, rows, defer_inserts=False)
        for one in applied:
            _done(*one)
        del rows
    return failures


async def _record_failure(runtime: Runtime, tenant_id: uuid.UUID, inbox_id: uuid.UUID, error: BaseException, max_attempts: int) -> None:
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(InboxEvent, (tenant_id, inbox_id))
        if row is None:
            return
        row.last_error = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
        row.locked_until = None
        if is_permanent(error):
            row.status = "failed"
            log.warning(
                "inbox event %s (%s %s) failed for good (not retried, the error is permanent): %s",
                row.id,
                row.channel,
                row.provider_event_id,
                row.last_error,
            )
        elif row.attempts >= max_attempts:
            row.status = "failed"
            metrics.inbox_events.labels("failed").inc()
            log.error(
                "inbox event %s (%s %s) failed for good after %d attempts: %s",
                row.id,
                row.channel,
                row.provider_event_id,
                row.attempts,
                row.last_error,
            )
        else:
            row.status = "pending"
            row.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff(row.attempts))
            metrics.inbox_events.labels("retry").inc()
            log.warning("inbox event %s failed (attempt %d), retrying: %s", row.id, row.attempts, row.last_error)


async def run_once(
    runtime: Runtime, *, limit: int = 50, lease_s: float = 60.0, max_attempts: int = 5, tenant_id: uuid.UUID | None = None
) -> int:
    """Claim and process one batch of due inbox rows (of one tenant, if given); return how many
    were claimed."""
    claimed = await claim(
        runtime.engine, InboxEvent, due_status="pending", busy_status="processing", limit=limit, lease_s=lease_s, tenant_id=tenant_id
    )
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row_tenant, inbox_id in sorted(claimed, key=lambda pair: pair[1]):  # UUIDv7: arrival order
        by_tenant.setdefault(row_tenant, []).append(inbox_id)
    for row_tenant, ids in by_tenant.items():
        with log_context(tenant=row_tenant, request_id=f"inbox:{ids[0]}"):
            await _run_tenant_batch(runtime, row_tenant, ids, max_attempts)
    return len(claimed)


async def _run_tenant_batch(runtime: Runtime, row_tenant: uuid.UUID, ids: list[uuid.UUID], max_attempts: int) -> None:
    """Apply one tenant's claimed rows (one transaction); record the failures for a retry."""
    try:
        failures = await process_batch(runtime, row_tenant, ids)
    except Exception as exc:  # the batch's commit itself failed: try the rows one by one
        if is_busy(exc):
            raise  # the worker backs off; the rows are claimed again after their lease
        log.exception("inbox batch of %d events failed to commit; processing them one at a time", len(ids))
        failures = []
        for inbox_id in ids:
            try:
                await process_one(runtime, row_tenant, inbox_id)
            except Exception as one_error:
                failures.append((inbox_id, one_error))
    metrics.inbox_events.labels("done").inc(len(ids) - len(failures))
    for inbox_id, error in failures:  # the row stays for a retry; the error is kept on it
        await _record_failure(runtime, row_tenant, inbox_id, error, max_attempts)


async def replay(runtime: Runtime, tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> bool:
    """Put a failed (or done) row back in the queue; its effect stays exactly-once."""
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(InboxEvent, (tenant_id, inbox_id))
        if row is None:
            return False
        row.status, row.attempts, row.next_attempt_at, row.locked_until = "pending", 0, utcnow(), None
    return True


async def depth(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> dict[str, int | float | None]:
    """Inbox metrics (all tenants, or one): ``waiting`` (pending), ``working`` (processing),
    ``finished`` (done), ``failed``, and ``oldest_waiting_age_s``."""
    return await queue_depth(
        runtime.engine,
        InboxEvent,
        waiting="pending",
        working="processing",
        finished="done",
        since_column="received_at",
        tenant_id=tenant_id,
    )


def next_claim_size(size: int, batch: int, claimed: int, *, held_s: float | None = None, acks_waited: bool = False) -> int:
    """The inbox worker's next claim after one of ``size`` that claimed ``claimed`` rows:
    doubled after a full batch, up to ``max(batch, MAX_BATCH)``, back to ``batch`` after one that
    was not full. When requests (webhook acks) waited for SQLite's write slot while the batch
    held it for ``held_s`` seconds, the next claim is also cut to the rows that fit in
    :data:`ACK_BUDGET_S` at that batch's pace (at least 1): a backlog then drains in batches an
    ack can wait behind, and grows back to big batches once no ack waits."""
    grown = min(max(batch, MAX_BATCH), size * 2) if claimed >= size else batch
    if acks_waited and claimed and held_s:
        return max(1, min(grown, int(ACK_BUDGET_S * claimed / held_s)))
    return grown


class InboxWorker(QueueWorker):
    """Processes the inbox in the background of the app process."""

    name = "inbox"

    def __init__(self, runtime: Runtime, *, poll_s: float = 1.0, batch: int = 50, lease_s: float = 60.0, max_attempts: int = 5) -> None:
        super().__init__(poll_s=poll_s, batch=batch, lease_s=lease_s)
        self.runtime, self.max_attempts = runtime, max_attempts
        #: the size of the next claim (:func:`next_claim_size`)
        self.size = batch

    async def run_batch(self) -> int:
        slot = write_slot(self.runtime.engine)  # SQLite: whether acks waited behind this batch, and for how long
        waits, held = (slot.request_waits, slot.background_held_s) if slot is not None else (0, 0.0)
        n = await run_once(self.runtime, limit=self.size, lease_s=self.lease_s, max_attempts=self.max_attempts)
        if slot is None:
            self.size = next_claim_size(self.size, self.batch, n)
        else:
            waited = slot.request_waits > waits
            self.size = next_claim_size(self.size, self.batch, n, held_s=slot.background_held_s - held, acks_waited=waited)
        return n
