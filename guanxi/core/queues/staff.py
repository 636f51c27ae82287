"""The staff delivery queue: sends notifications to staff members through their staff channels
(``guanxi_staff_channels``), apart from the customer outbox (no consent, no timeline).

Each ``notification_deliveries`` row is claimed with the queue machinery (lease, ``SKIP LOCKED``
on PostgreSQL), sent with a timeout, and recorded ``sent``, retried with backoff (transient
errors, or the provider's ``retry_after``), or ``failed`` with the error after
``queues.staff_max_attempts`` or a permanent error. The in-app notification is never touched by
any of it. A digest row takes the other due digest rows of the same user and channel along: one
message lists them all and they are recorded together. A worker dying mid-send leaves the row
``sending`` until its lease runs out; it is sent again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

from sqlalchemy import select

from guanxi.core.domain.channels import DeliveryError, DeliveryResult, PermanentDeliveryError, StaffNotice
from guanxi.core.domain.models import Notification, NotificationDelivery, User, utcnow
from guanxi.core.queues.queue import QueueWorker, backoff, claim
from guanxi.core.queues.queue import depth as queue_depth
from guanxi.core.runtime import Runtime
from guanxi.core.services import notifications
from guanxi.core.storage.tenancy import TenantSession

log = logging.getLogger("guanxi.staff")


def _text(notification: Notification) -> str:
    return notification.title if not notification.body else f"{notification.title}\n{notification.body}"


def _shorten(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: max(0, limit - 1)] + "…"


async def _outside_quiet_hours(session: TenantSession, user_id: uuid.UUID, at: dt.datetime) -> dt.datetime:
    """A retry that would land in the user's quiet hours waits for their end."""
    user = await session.get(User, (session.tenant_id, user_id))
    if user is None:
        return at
    settings = await notifications.get_settings(session, user_id)
    return notifications.after_quiet_hours(at, settings.quiet_start, settings.quiet_end, await notifications.user_zone(session, user))


class StaffDeliverer:
    """Delivers claimed staff delivery rows."""

    def __init__(self, runtime: Runtime, *, send_timeout_s: float = 15.0, max_attempts: int = 6, lease_s: float = 120.0) -> None:
        self.runtime, self.send_timeout_s, self.max_attempts, self.lease_s = runtime, send_timeout_s, max_attempts, lease_s

    async def _prepare(self, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> tuple[StaffNotice, list[uuid.UUID]] | None:
        """The notice to send and the rows it carries (the claimed one, plus due digest rows)."""
        async with self.runtime.write_session(tenant_id) as session:
            row = await session.get(NotificationDelivery, (tenant_id, delivery_id))
            if row is None or row.status != "sending":
                return None
            rows = [row]
            if row.digest:
                now = utcnow()
                rows += list(
                    (
                        await session.scalars(
                            select(NotificationDelivery)
                            .where(
                                NotificationDelivery.user_id == row.user_id,
                                NotificationDelivery.channel == row.channel,
                                NotificationDelivery.digest.is_(True),
                                NotificationDelivery.status == "queued",
                                NotificationDelivery.next_attempt_at <= now,
                                NotificationDelivery.id != row.id,
                            )
                            .order_by(NotificationDelivery.created_at)
                            .limit(50)
                        )
                    ).all()
                )
                for extra in rows[1:]:  # taken along: out of other workers' reach until recorded
                    extra.status, extra.locked_until = "sending", now + dt.timedelta(seconds=self.lease_s)
            ids = [r.notification_id for r in rows]
            found = {n.id: n for n in (await session.scalars(select(Notification).where(Notification.id.in_(ids)))).all()}
            items = [found[i] for i in ids if i in found]
            first = found.get(row.notification_id)
            if first is None:
                return None
            adapter = self.runtime.staff_channels.get(row.channel)
            limit = adapter.max_text_length if adapter is not None else None
            if len(items) > 1:
                title = f"{len(items)} notifications"
                text = "\n".join([title, *(f"- {_text(n)}" for n in items)])
            else:
                title, text = first.title, _text(first)
            notice = StaffNotice(
                id=row.id,
                tenant_id=tenant_id,
                user_id=row.user_id,
                channel=row.channel,
                recipient=row.recipient,
                kind=first.kind if len(items) == 1 else "digest",
                title=title,
                text=_shorten(text, limit),
                link_type=first.link_type if len(items) == 1 else None,
                link_id=first.link_id if len(items) == 1 else None,
                items=tuple(
                    {"id": str(n.id), "kind": n.kind, "title": n.title, "body": n.body, "link_type": n.link_type, "link_id": str(n.link_id)}
                    for n in items
                ),
                idempotency_key=f"notification-delivery:{row.id}",
                attempt=row.attempts,
            )
            return notice, [r.id for r in rows]

    async def deliver(self, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
        prepared = await self._prepare(tenant_id, delivery_id)
        if prepared is None:
            return
        notice, row_ids = prepared
        adapter = self.runtime.staff_channels.get(notice.channel)
        error: BaseException | None = None
        result: DeliveryResult | None = None
        if adapter is None:
            error = PermanentDeliveryError(f"staff channel {notice.channel!r} is no longer enabled")
        else:
            try:
                result = await asyncio.wait_for(adapter.send(notice), timeout=self.send_timeout_s)
            except TimeoutError:
                error = DeliveryError(f"staff channel {notice.channel!r} did not answer within {self.send_timeout_s} s")
            except Exception as exc:  # DeliveryError subclasses, or a bug in the adapter (transient)
                error = exc
        async with self.runtime.write_session(tenant_id) as session:
            rows = (await session.scalars(select(NotificationDelivery).where(NotificationDelivery.id.in_(row_ids)))).all()
            carrier = next((r for r in rows if r.id == delivery_id), None)
            if carrier is None:
                return
            now = utcnow()
            retry_at: dt.datetime | None = None
            if error is not None:
                carrier.last_error = f"{type(error).__name__}: {error}"[:2000]
                permanent = isinstance(error, DeliveryError) and not error.transient
                if not permanent and carrier.attempts < self.max_attempts:
                    retry_at = now + dt.timedelta(seconds=getattr(error, "retry_after_s", None) or backoff(carrier.attempts))
                    retry_at = await _outside_quiet_hours(session, carrier.user_id, retry_at)
            for r in rows:
                r.locked_until = None
                if error is None:
                    r.status, r.sent_at, r.last_error = "sent", now, None
                    r.provider_message_id = result.provider_message_id if result else None
                elif retry_at is not None:
                    r.status, r.next_attempt_at, r.last_error = "queued", retry_at, carrier.last_error
                else:
                    r.status, r.last_error = "failed", carrier.last_error
            if error is not None:
                log.warning(
                    "staff notification %s on %s %s (attempt %d): %s",
                    carrier.id,
                    carrier.channel,
                    "will be retried" if retry_at else "failed for good",
                    carrier.attempts,
                    carrier.last_error,
                )


async def run_once(
    runtime: Runtime,
    deliverer: StaffDeliverer | None = None,
    *,
    limit: int = 20,
    lease_s: float = 120.0,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """Claim and deliver one batch of due staff deliveries; return how many were claimed."""
    deliverer = deliverer or StaffDeliverer(runtime)
    lease_s = max(lease_s, limit * deliverer.send_timeout_s * 1.5)
    deliverer.lease_s = lease_s
    claimed = await claim(
        runtime.engine,
        NotificationDelivery,
        due_status="queued",
        busy_status="sending",
        limit=limit,
        lease_s=lease_s,
        tenant_id=tenant_id,
    )
    for row_tenant, delivery_id in claimed:
        try:
            await deliverer.deliver(row_tenant, delivery_id)
        except Exception:
            log.exception("staff delivery %s failed unexpectedly; it will be retried after its lease", delivery_id)
    return len(claimed)


async def retry(runtime: Runtime, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> bool:
    """Queue a failed staff delivery again (operator action); a sent one is never re-sent."""
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(NotificationDelivery, (tenant_id, delivery_id))
        if row is None or row.status == "sent":
            return False
        row.status, row.attempts, row.next_attempt_at, row.locked_until = "queued", 0, utcnow(), None
    return True


async def depth(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> dict[str, int | float | None]:
    """Staff delivery metrics: ``waiting`` (queued, digests and quiet hours included),
    ``working`` (sending), ``finished`` (sent), ``failed``, and the oldest unfinished age."""
    return await queue_depth(
        runtime.engine,
        NotificationDelivery,
        waiting="queued",
        working="sending",
        finished="sent",
        since_column="created_at",
        tenant_id=tenant_id,
    )


class StaffDeliveryWorker(QueueWorker):
    """Delivers staff notifications in the background of a process."""

    name = "staff"

    def __init__(
        self, runtime: Runtime, deliverer: StaffDeliverer | None = None, *, poll_s: float = 1.0, batch: int = 20, lease_s: float = 120.0
    ) -> None:
        super().__init__(poll_s=poll_s, batch=batch, lease_s=lease_s)
        self.runtime, self.deliverer = runtime, deliverer or StaffDeliverer(runtime, lease_s=lease_s)

    async def run_batch(self) -> int:
        return await run_once(self.runtime, self.deliverer, limit=self.batch, lease_s=self.lease_s)
