"""A message's lifecycle: the outbox's own transitions and the receipts providers send later.

Statuses (``MESSAGE_STATUSES``): ``queued → sending → sent`` (or back to ``queued`` for a retry,
or ``failed``) belong to the outbox worker; after ``sent`` only receipts move a message on. A
receipt moves it forward only, by rank, a total order::

    sent < delivered < failed < bounced < read < complained

so the status after a set of receipts is the highest of them whatever order they came in: a
late ``delivered`` after ``read`` changes nothing, a ``failed`` after ``sent`` or ``delivered``
fails the message (a failure reported after delivery), a ``read`` wins over a failure (reading
proves delivery), a spam complaint wins over everything. Every transition and every receipt is appended to ``OutboxMessage.status_history``
with its time, applied or not.

A receipt is an inbox row like any inbound event (``ingest`` stores it, the inbox worker calls
:func:`apply_receipt` in its transaction): it is retried, deduplicated and never lost, and its
effect and the row's ``done`` mark commit together.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import desc, select

from guanxi.core.base.context import Actor
from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.channels import FAILURE_STATUSES, RECEIPT_STATUSES, Receipt
from guanxi.core.domain.events import MessageStatusChanged
from guanxi.core.domain.models import Identity, OutboxMessage, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services import consent
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import ALL_OWNERS

RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 4, "bounced": 5, "read": 6, "complained": 7}
RECEIPT_ACTOR = Actor(kind="system", name="receipts")


class UnknownMessageError(NotFoundError):
    """A receipt names a provider message id no message of the tenant's channel has (yet): the
    receipt may have overtaken the outbox's record of the send, so it is retried with backoff."""

    code = "UNKNOWN_MESSAGE"
    permanent = False


def status_event(
    tenant_id: uuid.UUID,
    actor: Actor,
    row: OutboxMessage,
    *,
    previous: str | None,
    source: str = "outbox",
    occurred_at: dt.datetime | None = None,
) -> MessageStatusChanged:
    """The ``guanxi_message_status_changed`` payload for the row as it is now."""
    return MessageStatusChanged(
        tenant_id=tenant_id,
        actor=actor,
        message_id=row.id,
        customer_id=row.customer_id,
        channel=row.channel,
        status=row.status,
        attempts=row.attempts,
        provider_message_id=row.provider_message_id,
        error=row.last_error,
        previous_status=previous,
        source=source,
        occurred_at=occurred_at or utcnow(),
    )


def record(
    row: OutboxMessage,
    status: str,
    at: dt.datetime,
    *,
    source: str,
    applied: bool = True,
    error: str | None = None,
    provider_code: str | None = None,
) -> None:
    """Append one entry to the message's status history (the JSON list is replaced, so the ORM
    sees the change)."""
    entry: dict[str, Any] = {"status": status, "at": at.astimezone(dt.UTC).isoformat(), "source": source}
    if not applied:
        entry["applied"] = False
    if error:
        entry["error"] = error[:500]
    if provider_code:
        entry["provider_code"] = provider_code[:100]
    row.status_history = [*(row.status_history or []), entry]


def outbox_transition(row: OutboxMessage, status: str, *, error: str | None = None) -> None:
    """The outbox worker's own move (queued, sending, sent, failed): always applied."""
    row.status = status
    record(row, status, utcnow(), source="outbox", error=error)


def supersedes(current: str, reported: str) -> bool:
    """Whether a receipt reporting ``reported`` moves a message that is ``current`` on: only
    after ``sent``, and only to a higher rank."""
    return current in ("sent", *RECEIPT_STATUSES) and RANK[reported] > RANK[current]


def check_receipt(receipt: Receipt) -> None:
    """Refuse a receipt core cannot apply (the route answers 400, nothing stored)."""
    if receipt.status not in RECEIPT_STATUSES:
        raise ValidationError(f"receipt status must be one of {', '.join(RECEIPT_STATUSES)}, not {receipt.status!r}", field="status")
    if not receipt.provider_message_id or len(receipt.provider_message_id) > 200:
        raise ValidationError("provider_message_id must be 1 to 200 characters", field="provider_message_id")
    if (receipt.unreachable or receipt.withdraw_consent) and receipt.status not in FAILURE_STATUSES:
        raise ValidationError(
            f"unreachable and withdraw_consent go with a failure receipt ({', '.join(FAILURE_STATUSES)}), not {receipt.status!r}",
            field="status",
        )


async def find_message(tx: Tx, channel: str, provider_message_id: str) -> OutboxMessage | None:
    """The tenant's newest message on ``channel`` with this provider message id (indexed per
    tenant and channel)."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.channel == channel, OutboxMessage.provider_message_id == provider_message_id)
        .order_by(desc(OutboxMessage.created_at))
        .limit(1)
        .execution_options(**{ALL_OWNERS: True})
    )
    return (await tx.session.execute(stmt)).scalar_one_or_none()


async def apply_receipt(tx: Tx, receipt: Receipt) -> OutboxMessage:
    """Apply one receipt to its message inside the inbox's transaction; return the message.

    Raises :class:`UnknownMessageError` when no message has the provider id (the inbox retries
    the row with backoff: the outbox may not have recorded the id yet)."""
    row = await find_message(tx, receipt.channel, receipt.provider_message_id)
    if row is None:
        raise UnknownMessageError(f"no {receipt.channel} message with provider message id {receipt.provider_message_id!r} (yet)")
    previous = row.status
    moves = supersedes(previous, receipt.status)
    error = receipt.error or (f"{receipt.status} ({receipt.provider_code})" if receipt.status in FAILURE_STATUSES else None)
    record(row, receipt.status, receipt.occurred_at, source="receipt", applied=moves, error=error, provider_code=receipt.provider_code)
    if moves:
        row.status = receipt.status
        if receipt.status in FAILURE_STATUSES:
            row.last_error = error
        tx.emit(
            "guanxi_message_status_changed",
            status_event(tx.tenant_id, RECEIPT_ACTOR, row, previous=previous, source="receipt", occurred_at=receipt.occurred_at),
        )
    if receipt.unreachable:
        await _mark_unreachable(tx, row, receipt.occurred_at)
    if receipt.withdraw_consent and await consent.has_consent(tx, row.customer_id, row.channel):
        await consent.set_consent(tx, row.customer_id, row.channel, "opted_out", source=f"receipt:{receipt.status}")
    hooks = (await tx.hooks()).guanxi_receipt_applied
    await plugins.call_all(hooks, tx=tx, receipt=receipt, message=row, previous_status=previous)
    return row


async def _mark_unreachable(tx: Tx, row: OutboxMessage, at: dt.datetime) -> None:
    stmt = select(Identity).where(Identity.channel == row.channel, Identity.external_id == row.recipient)
    identity = (await tx.session.execute(stmt.execution_options(**{ALL_OWNERS: True}))).scalar_one_or_none()
    if identity is not None and identity.unreachable_at is None:
        identity.unreachable_at = at
        audit(tx, "identity.unreachable", "identity", identity.id, {"channel": row.channel, "message_id": row.id})
