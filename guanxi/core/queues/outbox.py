"""The durable outbox: ``send_message`` records the outbound interaction and a queued message
in one transaction; a worker delivers it through the channel adapter.

Delivery: per-channel rate limit, a send timeout, retries with exponential backoff and jitter
on transient errors (or the provider's ``retry_after``), none on permanent ones, ``failed``
after ``max_attempts`` with the error kept. One idempotency key gives one message, however
often ``send_message`` is called with it.

Crash safety: a message is claimed (``sending``, with a lease) before the adapter is called and
marked ``sent`` after. A crash in between leaves it ``sending``; when the lease runs out it is
sent again with the same idempotency key and outbox id, which adapters pass to providers that
deduplicate. Across such a crash delivery is at least once; nothing is ever lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid

import msgspec
from sqlalchemy import select

from guanxi.core.base import metrics, tracing
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, PluginDisabledError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.base.logs import log_context
from guanxi.core.domain.channels import (
    Attachment,
    Channel,
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
)
from guanxi.core.domain.models import OutboxMessage, utcnow
from guanxi.core.queues import lifecycle
from guanxi.core.queues.queue import QueueWorker, backoff, claim
from guanxi.core.queues.queue import depth as queue_depth
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import files, outbound, quotas
from guanxi.core.services.audit import audit
from guanxi.core.services.outbound import ConsentError
from guanxi.core.storage.db import is_busy

log = logging.getLogger("guanxi.outbox")
WORKER = Actor(kind="system", name="outbox")


class SendRequest(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    channel: str
    idempotency_key: str
    text: str | None = None
    attachments: list[Attachment] = msgspec.field(default_factory=list)


async def send_message(tx: Tx, req: SendRequest) -> tuple[OutboxMessage, bool]:
    """Queue a message; returns ``(message, created)``. Refuses, writing nothing, when the
    channel is unknown or lacks the capability, the text is too long, the customer has no
    account on the channel or opted out, or the channel's messaging window has closed."""
    key = req.idempotency_key.strip()
    if not 0 < len(key) <= 200:
        raise ValidationError("idempotency key must be 1 to 200 characters", field="idempotencyKey")
    session = tx.session
    existing = (await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))).scalar_one_or_none()
    if existing is not None:
        same = existing.customer_id == req.customer_id and existing.channel == req.channel and existing.text == req.text
        if not same:
            raise ConflictError(f"idempotency key {key!r} was already used for a different message", field="idempotencyKey")
        return existing, False
    text = req.text if req.text and req.text.strip() else None
    if text is None and not req.attachments:
        raise ValidationError("a message needs text or attachments", field="text")
    # the one consent and channel-policy check of every outbound path (services/outbound.py)
    screening = await outbound.screen_outbound(
        tx.runtime, session, req.channel, [req.customer_id], text=text, attachments=bool(req.attachments)
    )
    if screening.refused:
        raise screening.refused[0].error()
    (recipient,) = screening.allowed
    await quotas.count_message(tx, req.channel)  # QUOTA_EXCEEDED: the tenant's messages_per_day
    message_id = new_id()
    attachments = [msgspec.to_builtins(a) for a in req.attachments]
    interaction = await outbound.record_outbound(
        tx,
        recipient,
        req.channel,
        text=text,
        payload={"outbox_id": str(message_id), "attachments": attachments},
        dedupe_key=f"outbox:{key}",
    )
    row = OutboxMessage(
        id=message_id,
        customer_id=recipient.customer_id,
        channel=req.channel,
        recipient=recipient.external_id,
        interaction_id=interaction.id,
        text=text,
        attachments=attachments,
        idempotency_key=key,
        status="queued",
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
        actor_id=tx.ctx.actor.user_id,
        trace_context=tracing.current_traceparent(),
    )
    lifecycle.record(row, "queued", row.created_at, source="outbox")
    session.add(row)
    await session.flush()
    await files.ref_attachments(tx, "message", row.id, row.customer_id, attachments)
    audit(tx, "message.queue", "customer", recipient.customer_id, {"channel": req.channel, "message_id": message_id})
    tx.emit("guanxi_message_status_changed", lifecycle.status_event(tx.tenant_id, tx.ctx.actor, row, previous=None))
    worker = tx.runtime.state.get("outbox_worker")
    if worker is not None:
        worker.wake_after_commit(tx)
    return row, True


class TokenBucket:
    """``rate`` sends per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate, self.capacity = rate, burst or max(1.0, rate)
        self.tokens, self.updated = self.capacity, time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Deliverer:
    """Delivers claimed outbox rows; keeps the per-channel rate limiters."""

    def __init__(
        self, runtime: Runtime, *, send_timeout_s: float = 15.0, max_attempts: int = 6, rates: dict[str, float] | None = None
    ) -> None:
        self.runtime = runtime
        self.send_timeout_s, self.max_attempts = send_timeout_s, max_attempts
        self.rates = dict(rates or {})
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, channel: str) -> TokenBucket | None:
        rate = self.rates.get(channel)
        if rate is None:
            return None
        if channel not in self._buckets:
            self._buckets[channel] = TokenBucket(rate)
        return self._buckets[channel]

    async def deliver(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> None:
        with log_context(tenant=tenant_id, request_id=f"outbox:{message_id}"):
            await self._deliver(tenant_id, message_id)

    async def _deliver(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> None:
        ctx = RequestContext(tenant_id=tenant_id, actor=WORKER)
        async with self.runtime.transaction(ctx) as tx:
            row = await tx.session.get(OutboxMessage, (tenant_id, message_id))
            if row is None or row.status not in ("queued", "sending"):
                return
            lifecycle.record(row, "sending", utcnow(), source="outbox")
            tx.emit("guanxi_message_status_changed", lifecycle.status_event(tenant_id, WORKER, row, previous="queued"))
            message = OutboundMessage(
                id=row.id,
                tenant_id=tenant_id,
                customer_id=row.customer_id,
                channel=row.channel,
                recipient=row.recipient,
                text=row.text,
                attachments=tuple(msgspec.convert(a, Attachment) for a in row.attachments),
                idempotency_key=row.idempotency_key,
                attempt=row.attempts,
            )
            trace_context = row.trace_context
        # the trace of the request (or hook) that queued the message goes on here (tracing on)
        with tracing.continued(trace_context, "guanxi.outbox.deliver", channel=message.channel, message_id=str(message_id)):
            await self._send(ctx, message)

    async def _send(self, ctx: RequestContext, message: OutboundMessage) -> None:
        tenant_id, message_id = ctx.tenant_id, message.id
        adapter, error = await _deliverable_channel(self.runtime, tenant_id, message.channel)
        result = None
        if adapter is not None:
            bucket = self._bucket(message.channel)
            if bucket is not None:
                await bucket.take()
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(adapter.send(message), timeout=self.send_timeout_s)
            except TimeoutError:
                error = DeliveryError(f"channel {message.channel!r} did not answer within {self.send_timeout_s} s")
            except Exception as exc:  # DeliveryError subclasses, or a bug in the adapter (transient)
                error = exc
            metrics.outbox_send_seconds.labels(message.channel).observe(time.perf_counter() - started)
        async with self.runtime.transaction(ctx) as tx:
            row = await tx.session.get(OutboxMessage, (tenant_id, message_id))
            if row is None:
                return
            row.locked_until = None
            previous = row.status
            if previous not in ("queued", "sending"):  # another worker finished it after a lease ran out
                return
            if error is None:
                row.sent_at, row.last_error = utcnow(), None
                row.provider_message_id = result.provider_message_id if result else None
                lifecycle.outbox_transition(row, "sent")
                metrics.outbox_attempts.labels(row.channel, "sent").inc()
            else:
                row.last_error = f"{type(error).__name__}: {error}"[:2000]
                permanent = isinstance(error, DeliveryError) and not error.transient
                if permanent or row.attempts >= self.max_attempts:
                    lifecycle.outbox_transition(row, "failed", error=row.last_error)
                    metrics.outbox_attempts.labels(row.channel, "failed").inc()
                    log.error("message %s to %s failed for good after %d attempts: %s", row.id, row.channel, row.attempts, row.last_error)
                else:
                    delay = getattr(error, "retry_after_s", None) or backoff(row.attempts)
                    row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
                    lifecycle.outbox_transition(row, "queued", error=row.last_error)
                    metrics.outbox_attempts.labels(row.channel, "retry").inc()
                    log.warning(
                        "message %s to %s failed (attempt %d), retry in %.1f s: %s",
                        row.id,
                        row.channel,
                        row.attempts,
                        delay,
                        row.last_error,
                    )
            tx.emit("guanxi_message_status_changed", lifecycle.status_event(tenant_id, WORKER, row, previous=previous))


async def _deliverable_channel(runtime: Runtime, tenant_id: uuid.UUID, channel: str) -> tuple[Channel | None, BaseException | None]:
    """The adapter to deliver with, or the permanent error why there is none: no loaded plugin
    offers the channel any more, or the tenant disabled the plugin that does."""
    try:
        adapter = await runtime.tenant_channel(tenant_id, channel)
    except PluginDisabledError as exc:
        return None, PermanentDeliveryError(f"channel {channel!r}: {exc}")
    if adapter is None:
        return None, PermanentDeliveryError(f"channel {channel!r} is no longer enabled")
    return adapter, None


async def run_once(
    runtime: Runtime, deliverer: Deliverer | None = None, *, limit: int = 20, lease_s: float = 120.0, tenant_id: uuid.UUID | None = None
) -> int:
    """Claim and deliver one batch of due messages; return how many were claimed."""
    deliverer = deliverer or Deliverer(runtime)
    # The batch is sent one message after another under one lease: the lease must outlast the
    # slowest possible batch, or another worker could claim (and send) the same messages.
    lease_s = max(lease_s, limit * deliverer.send_timeout_s * 1.5)
    claimed = await claim(
        runtime.engine, OutboxMessage, due_status="queued", busy_status="sending", limit=limit, lease_s=lease_s, tenant_id=tenant_id
    )
    for row_tenant, message_id in claimed:
        try:
            await deliverer.deliver(row_tenant, message_id)
        except Exception as exc:
            if is_busy(exc):
                raise  # the worker backs off; the message is retried after its lease
            log.exception("delivering message %s failed unexpectedly; it will be retried after its lease", message_id)
    return len(claimed)


async def retry(runtime: Runtime, tenant_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    """Queue a failed message again (operator action); a message the provider accepted once
    (sent, whatever its receipts said later) is never re-sent."""
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(OutboxMessage, (tenant_id, message_id))
        if row is None or row.sent_at is not None:
            return False
        row.attempts, row.next_attempt_at, row.locked_until = 0, utcnow(), None
        lifecycle.outbox_transition(row, "queued")
    return True


async def depth(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> dict[str, int | float | None]:
    """Outbox metrics (all tenants, or one): ``waiting`` (queued), ``working`` (sending),
    ``finished`` (sent, delivered, read or complained), ``failed`` (failed or bounced), and
    ``oldest_waiting_age_s``."""
    return await queue_depth(
        runtime.engine,
        OutboxMessage,
        waiting="queued",
        working="sending",
        finished=("sent", "delivered", "read", "complained"),
        failed=("failed", "bounced"),
        since_column="created_at",
        tenant_id=tenant_id,
    )


class OutboxWorker(QueueWorker):
    """Delivers the outbox in the background of the app process."""

    name = "outbox"

    def __init__(
        self, runtime: Runtime, deliverer: Deliverer | None = None, *, poll_s: float = 1.0, batch: int = 20, lease_s: float = 120.0
    ) -> None:
        super().__init__(poll_s=poll_s, batch=batch, lease_s=lease_s)
        self.runtime, self.deliverer = runtime, deliverer or Deliverer(runtime)

    def wake_after_commit(self, tx: Tx) -> None:
        tx.after_commit(self.wake)

    async def run_batch(self) -> int:
        return await run_once(self.runtime, self.deliverer, limit=self.batch, lease_s=self.lease_s)


# ConsentError moved to guanxi.core.services.outbound (the one outbound check); still importable here
__all__ = ["ConsentError", "Deliverer", "OutboxWorker", "SendRequest", "TokenBucket", "depth", "retry", "run_once", "send_message"]
