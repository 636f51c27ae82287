"""Bulk sends (群发): one message to a segment's customers over a channel.

Life of a send: ``createBulkSend`` checks the channel's own policy (its adapter's capabilities:
it must be able to ``broadcast``, take the text, and be enabled for the tenant), then either waits
for approval (``pending_approval``, when the tenant's ``bulk_requires_approval`` is on) or starts.
Starting freezes the recipients: the segment's members now become durable
:class:`~.models.AutomationBulkRecipient` rows (``pending``). The scheduled job
``automation.bulk_send`` then queues them, at most ``rate_per_minute`` a minute, each through
the outbox's ``send_message`` (core's one consent and channel-policy check; the message lands
on the timeline) with the idempotency key ``bulk:<send>:<customer>``; a refused customer becomes
``skipped`` with the check's code and reason.

Crash safety: a batch is one transaction (recipient rows, outbox messages, the next run's
schedule); a worker killed mid-batch leaves nothing of it, and the job runs the batch again.
Should a row's update ever be lost, its outbox idempotency key still queues the message once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy import case, func, select

from guanxi import CapabilityError, ConflictError, GuanxiError, JobRun, NotFoundError, RequestContext, Runtime, Tx, ValidationError
from guanxi.core.domain.models import Consent, Customer, Interaction, OutboxMessage, utcnow
from guanxi.core.queues.outbox import SendRequest, send_message
from guanxi.core.services.audit import audit
from guanxi.core.services.schedule import cancel_key, schedule_job
from guanxi.core.storage.localtime import local_date
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.automation.bulk.models import AutomationBulkRecipient, AutomationBulkSend
from guanxi.plugins.automation.segments import service as segments
from guanxi.plugins.automation.settings import AutomationSettings

JOB = "automation.bulk_send"
STATUSES = ("pending_approval", "sending", "done", "cancelled", "rejected")
#: recipients frozen per statement when a send starts
FREEZE_BATCH = 1000
#: a send waits this long when the tenant's daily message quota is used up
QUOTA_PAUSE = dt.timedelta(hours=1)
MAX_TEXT = 10_000


class BulkInput(msgspec.Struct, kw_only=True):
    name: str
    segment_id: uuid.UUID
    channel: str
    text: str
    rate_per_minute: int | None = None


def _settings(runtime: Runtime, tenant_id: uuid.UUID) -> AutomationSettings:
    found = runtime.plugin_settings("automation", tenant_id)
    return found if isinstance(found, AutomationSettings) else AutomationSettings()


def job_key(send_id: uuid.UUID) -> str:
    return f"automation:bulk:{send_id}"


async def get_send(session: TenantSession, send_id: uuid.UUID) -> AutomationBulkSend:
    send = await session.get(AutomationBulkSend, (session.tenant_id, send_id))
    if send is None:
        raise NotFoundError(f"bulk send {send_id} not found", field="id")
    return send


async def check_channel(runtime: Runtime, tenant_id: uuid.UUID, channel: str, text: str) -> None:
    """The channel's own bulk policy, from its adapter: enabled for the tenant
    (``PLUGIN_DISABLED`` otherwise), able to broadcast and to send text this long
    (``CHANNEL_CAPABILITY``/``VALIDATION``). Per-customer rules (consent, an account on the
    channel, the channel's messaging window) are checked per recipient by the outbox."""
    adapter = await runtime.tenant_channel(tenant_id, channel)
    if adapter is None:
        known = ", ".join(sorted(runtime.channels)) or "none"
        raise CapabilityError(f"no channel {channel!r} is enabled (channels: {known})", field="channel")
    caps = adapter.capabilities
    if not caps.broadcast:
        raise CapabilityError(f"channel {channel!r} does not take bulk sends (its adapter does not broadcast)", field="channel")
    if not caps.send_text:
        raise CapabilityError(f"channel {channel!r} cannot send text", field="channel")
    if caps.max_text_length is not None and len(text) > caps.max_text_length:
        raise ValidationError(f"text is {len(text)} characters; channel {channel!r} takes at most {caps.max_text_length}", field="text")


async def create_send(tx: Tx, data: BulkInput) -> AutomationBulkSend:
    """Create a send; it starts at once unless the tenant requires approval."""
    if not 0 < len(data.name.strip()) <= 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    if not data.text.strip() or len(data.text) > MAX_TEXT:
        raise ValidationError(f"text must be 1 to {MAX_TEXT} characters", field="text")
    settings = _settings(tx.runtime, tx.tenant_id)
    rate = data.rate_per_minute if data.rate_per_minute is not None else settings.bulk_rate_per_minute
    if not 1 <= rate <= settings.bulk_rate_per_minute:
        raise ValidationError(f"ratePerMinute must be 1 to {settings.bulk_rate_per_minute} (the tenant's limit)", field="ratePerMinute")
    await segments.get_segment(tx.session, data.segment_id)
    await check_channel(tx.runtime, tx.tenant_id, data.channel, data.text)
    send = AutomationBulkSend(
        name=data.name.strip(),
        segment_id=data.segment_id,
        channel=data.channel,
        text=data.text,
        status="pending_approval",
        rate_per_minute=rate,
        created_by=tx.ctx.actor.user_id,
        created_at=utcnow(),
    )
    tx.session.add(send)
    await tx.session.flush()
    audit(tx, "bulk.create", "bulkSend", send.id, {"channel": send.channel, "segment_id": send.segment_id})
    if not settings.bulk_requires_approval:
        await start(tx, send)
    return send


async def start(tx: Tx, send: AutomationBulkSend) -> None:
    """Freeze the recipients (the segment's members now) and schedule the first batch."""
    s = tx.session
    members = (await segments.members_query(tx.runtime, s, send.segment_id)).order_by(Customer.id)
    last: uuid.UUID | None = None
    while True:
        page = members if last is None else members.where(Customer.id > last)
        ids = list((await s.execute(page.limit(FREEZE_BATCH))).scalars())
        if not ids:
            break
        s.add_all([AutomationBulkRecipient(send_id=send.id, customer_id=c, status="pending") for c in ids])
        await s.flush()
        last = ids[-1]
    send.status, send.started_at = "sending", utcnow()
    await schedule_job(tx, JOB, job_key(send.id), run_at=utcnow(), payload={"send_id": str(send.id)})


def _pending(send: AutomationBulkSend, action: str) -> None:
    if send.status != "pending_approval":
        raise ConflictError(f"cannot {action} a bulk send that is {send.status}", field="id")


async def approve(tx: Tx, send: AutomationBulkSend, note: str | None) -> None:
    _pending(send, "approve")
    send.decided_by, send.decided_at, send.decision_note = tx.ctx.actor.user_id, utcnow(), note
    audit(tx, "bulk.approve", "bulkSend", send.id, {})
    await start(tx, send)


async def reject(tx: Tx, send: AutomationBulkSend, note: str | None) -> None:
    _pending(send, "reject")
    send.status = "rejected"
    send.decided_by, send.decided_at, send.decision_note = tx.ctx.actor.user_id, utcnow(), note
    audit(tx, "bulk.reject", "bulkSend", send.id, {})


async def cancel(tx: Tx, send: AutomationBulkSend) -> None:
    """Stop a send: recipients not yet queued are never queued (those queued stay queued)."""
    if send.status not in ("pending_approval", "sending"):
        raise ConflictError(f"cannot cancel a bulk send that is {send.status}", field="id")
    send.status, send.finished_at = "cancelled", utcnow()
    await cancel_key(tx, job_key(send.id))
    audit(tx, "bulk.cancel", "bulkSend", send.id, {})


ACTOR_NAME = "automation.bulk"


async def run_batch(runtime: Runtime, tenant_id: uuid.UUID, send_id: uuid.UUID) -> int:
    """Queue the next batch of a sending send's recipients (at most a minute's worth at its rate,
    and the plugin's ``bulk_batch_size``), and schedule the next batch (or finish the send).
    Returns how many recipients were handled."""
    from guanxi.core.base.context import Actor

    await runtime.tenant_plugins(tenant_id)
    settings = _settings(runtime, tenant_id)
    async with runtime.session(tenant_id) as session:
        owner = await session.get(AutomationBulkSend, (tenant_id, send_id))
        created_by = owner.created_by if owner is not None else None
    actor = Actor(kind="plugin", name=ACTOR_NAME, user_id=created_by)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=actor)) as tx:
        s = tx.session
        send = await s.get(AutomationBulkSend, (tenant_id, send_id))
        if send is None or send.status != "sending":
            return 0
        size = min(settings.bulk_batch_size, send.rate_per_minute)
        rows = list(
            (
                await s.execute(
                    select(AutomationBulkRecipient)
                    .where(AutomationBulkRecipient.send_id == send.id, AutomationBulkRecipient.status == "pending")
                    .order_by(AutomationBulkRecipient.customer_id)
                    .limit(size)
                )
            ).scalars()
        )
        handled = 0
        paused = False
        for row in rows:
            request = SendRequest(
                customer_id=row.customer_id, channel=send.channel, text=send.text, idempotency_key=f"bulk:{send.id}:{row.customer_id}"
            )
            try:
                async with tx.savepoint():
                    message, _ = await send_message(tx, request)
            except GuanxiError as exc:
                if exc.code == "QUOTA_EXCEEDED":
                    paused = True  # the tenant's daily quota: try again later, skip nobody
                    break
                if exc.code in ("PLUGIN_DISABLED", "BUSY"):
                    raise  # not about this customer: the job retries the batch
                row.status, row.code, row.reason = "skipped", exc.code, str(exc)[:500]
            else:
                row.status, row.outbox_id = "queued", message.id
            row.processed_at = utcnow()
            handled += 1
        await s.flush()
        left = (
            await s.execute(
                select(func.count())
                .select_from(AutomationBulkRecipient)
                .where(AutomationBulkRecipient.send_id == send.id, AutomationBulkRecipient.status == "pending")
            )
        ).scalar_one()
        if left:
            delay = QUOTA_PAUSE if paused else dt.timedelta(seconds=60 * max(handled, 1) / send.rate_per_minute)
            await schedule_job(tx, JOB, job_key(send.id), run_at=utcnow() + delay, payload={"send_id": str(send.id)})
        else:
            send.status, send.finished_at = "done", utcnow()
        return handled


async def run_job(job: JobRun) -> None:
    await run_batch(job.runtime, job.tenant_id, uuid.UUID(str(job.payload["send_id"])))


class Figures(msgspec.Struct, kw_only=True):
    """A send's figures. ``targeted``: recipients frozen at start; ``pending``/``queued``/
    ``skipped``: where they are; ``sent``/``delivered``/``read``/``failed``: their outbox
    messages' lifecycle (receipts included: a read message was delivered and sent); ``opened``:
    read, or an ``email_open`` since the send started; ``clicked``: a ``click`` interaction since
    the send started; ``replied``: an inbound interaction on the send's channel since it started;
    ``opted_out``: opted out of the send's channel since it started. Each counts customers."""

    targeted: int = 0
    pending: int = 0
    queued: int = 0
    skipped: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    opted_out: int = 0
    skipped_by_code: dict[str, int] = msgspec.field(default_factory=dict)


SENT = ("sent", "delivered", "read", "complained")
DELIVERED = ("delivered", "read", "complained")
FAILED = ("failed", "bounced")


async def figures(session: TenantSession, send: AutomationBulkSend) -> Figures:
    """A send's figures in four statements, whatever its size."""
    r = AutomationBulkRecipient
    o = OutboxMessage
    joined = (o.tenant_id == r.tenant_id) & (o.id == r.outbox_id)

    def n(condition: Any) -> Any:
        return func.count(case((condition, 1)))

    row = (
        await session.execute(
            select(
                func.count(),
                n(r.status == "pending"),
                n(r.status == "queued"),
                n(r.status == "skipped"),
                n(o.status.in_(SENT)),
                n(o.status.in_(DELIVERED)),
                n(o.status == "read"),
                n(o.status.in_(FAILED)),
            )
            .select_from(r)
            .outerjoin(o, joined)
            .where(r.send_id == send.id)
        )
    ).one()
    out = Figures(targeted=row[0], pending=row[1], queued=row[2], skipped=row[3], sent=row[4], delivered=row[5], read=row[6], failed=row[7])
    codes = await session.execute(
        select(r.code, func.count()).where(r.send_id == send.id, r.status == "skipped").group_by(r.code).order_by(r.code)
    )
    out.skipped_by_code = {str(code): int(count) for code, count in codes.all()}
    if send.started_at is None:
        return out
    since = send.started_at
    reached = select(r.customer_id).where(r.send_id == send.id, r.status == "queued")
    i = Interaction
    after = (i.customer_id.in_(reached)) & (i.occurred_at >= since)
    read_ids = select(r.customer_id).select_from(r).join(o, joined).where(r.send_id == send.id, o.status == "read")
    row = (
        await session.execute(
            select(
                func.count(func.distinct(case((i.kind == "click", i.customer_id)))),
                func.count(
                    func.distinct(
                        case(((i.direction == "in") & (i.channel == send.channel) & i.kind.not_in(("click", "email_open")), i.customer_id))
                    )
                ),
                func.count(func.distinct(case(((i.kind == "email_open") & ~i.customer_id.in_(read_ids), i.customer_id)))),
            ).where(after)
        )
    ).one()
    out.clicked, out.replied, out.opened = int(row[0]), int(row[1]), out.read + int(row[2])
    out.opted_out = int(
        (
            await session.execute(
                select(func.count())
                .select_from(Consent)
                .where(
                    Consent.customer_id.in_(reached),
                    Consent.channel == send.channel,
                    Consent.status == "opted_out",
                    Consent.changed_at >= since,
                )
            )
        ).scalar_one()
    )
    return out


class DayFigures(msgspec.Struct, kw_only=True):
    """A send's figures of one day (the tenant's time zone): recipients queued and skipped that day, messages the
    channel accepted that day, and customers who replied or clicked that day (after the start)."""

    day: dt.date
    queued: int = 0
    skipped: int = 0
    sent: int = 0
    replied: int = 0
    clicked: int = 0


def _day(value: Any) -> dt.date:
    """``date(...)`` is a string on SQLite and a date on PostgreSQL."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


async def figures_by_day(session: TenantSession, send: AutomationBulkSend, zone: str = "UTC") -> list[DayFigures]:
    """The send over time, by day in ``zone`` (the tenant's), oldest first: three statements
    whatever its size."""
    dialect = (await session.connection()).dialect.name
    r, o, i = AutomationBulkRecipient, OutboxMessage, Interaction
    days: dict[dt.date, DayFigures] = {}

    def of(value: Any) -> DayFigures:
        day = _day(value)
        return days.setdefault(day, DayFigures(day=day))

    processed = local_date(r.processed_at, zone, dialect)
    for day, queued, skipped in await session.execute(
        select(processed, func.count(case((r.status == "queued", 1))), func.count(case((r.status == "skipped", 1))))
        .where(r.send_id == send.id, r.processed_at.is_not(None))
        .group_by(processed)
    ):
        row = of(day)
        row.queued, row.skipped = int(queued), int(skipped)
    sent_day = local_date(o.sent_at, zone, dialect)
    for day, sent in await session.execute(
        select(sent_day, func.count())
        .select_from(r)
        .join(o, (o.tenant_id == r.tenant_id) & (o.id == r.outbox_id))
        .where(r.send_id == send.id, o.sent_at.is_not(None))
        .group_by(sent_day)
    ):
        of(day).sent = int(sent)
    if send.started_at is not None:
        reached = select(r.customer_id).where(r.send_id == send.id, r.status == "queued")
        touched = local_date(i.occurred_at, zone, dialect)
        reply = (i.direction == "in") & (i.channel == send.channel) & i.kind.not_in(("click", "email_open"))
        for day, replied, clicked in await session.execute(
            select(
                touched,
                func.count(func.distinct(case((reply, i.customer_id)))),
                func.count(func.distinct(case((i.kind == "click", i.customer_id)))),
            )
            .where(i.customer_id.in_(reached), i.occurred_at >= send.started_at)
            .group_by(touched)
        ):
            if replied or clicked:
                row = of(day)
                row.replied, row.clicked = int(replied), int(clicked)
    return [days[d] for d in sorted(days)]


async def received(session: TenantSession, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """The bulk sends a customer was a recipient of, for their data export."""
    r = AutomationBulkRecipient
    rows = await session.execute(
        select(AutomationBulkSend.name, AutomationBulkSend.channel, AutomationBulkSend.text, r.status, r.code, r.reason, r.processed_at)
        .join(AutomationBulkSend, (AutomationBulkSend.tenant_id == r.tenant_id) & (AutomationBulkSend.id == r.send_id))
        .where(r.customer_id == customer_id)
        .order_by(AutomationBulkSend.created_at)
    )
    return [
        {
            "send": row.name,
            "channel": row.channel,
            "text": row.text,
            "status": row.status,
            "code": row.code,
            "reason": row.reason,
            "processed_at": row.processed_at.isoformat() if row.processed_at else None,
        }
        for row in rows
    ]


async def erase(session: TenantSession, customer_id: uuid.UUID) -> int:
    """Forget what the recipient rows say about a customer (the refusal's text)."""
    from sqlalchemy import update

    r = AutomationBulkRecipient
    result = await session.execute(update(r).where(r.customer_id == customer_id, r.reason.is_not(None)).values(reason=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
