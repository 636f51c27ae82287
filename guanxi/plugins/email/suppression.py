"""Suppression, the email channel's policy: an address that hard-bounced, soft-bounced too often
or complained is not sent to again. It acts through core's own check (``screen_outbound``): the
address's identity is marked unreachable (a complaint or unsubscribe withdraws consent too), so
``sendMessage``, ``sendEmail`` and every other outbound path refuse it. The ``email_addresses``
row keeps the counts and the reason, shown in GraphQL."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from guanxi import Receipt, Tx
from guanxi.core.domain.models import Identity, OutboxMessage, utcnow
from guanxi.plugins.email.models import EmailAddress
from guanxi.plugins.email.settings import CHANNEL


async def _row(tx: Tx, customer_id: uuid.UUID, address: str) -> EmailAddress:
    row = await tx.session.get(EmailAddress, (tx.tenant_id, address))
    if row is None:
        row = EmailAddress(address=address, customer_id=customer_id, soft_bounces=0, hard_bounces=0, complaints=0)
        tx.session.add(row)
        await tx.session.flush()
    return row


async def suppress(tx: Tx, customer_id: uuid.UUID, address: str, reason: str, *, unreachable: bool = False) -> EmailAddress:
    """Suppress ``address`` for ``reason`` (the first reason is kept); ``unreachable`` also marks
    its identity so core refuses to send to it."""
    row = await _row(tx, customer_id, address)
    if row.suppressed is None:
        row.suppressed, row.suppressed_at = reason, utcnow()
    row.updated_at = utcnow()
    if unreachable:
        identity = (
            await tx.session.execute(select(Identity).where(Identity.channel == CHANNEL, Identity.external_id == address))
        ).scalar_one_or_none()
        if identity is not None and identity.unreachable_at is None:
            identity.unreachable_at = utcnow()
    return row


async def on_receipt(tx: Tx, receipt: Receipt, message: OutboxMessage, previous_status: str, *, threshold: int) -> None:
    """Count the bounces and complaints receipts report, per address, in the receipt's own
    transaction (a failure retries the receipt, so no count is lost or taken twice); suppress
    after a hard bounce, a complaint, or ``threshold`` soft bounces."""
    moved = message.status != previous_status
    if receipt.channel != CHANNEL or not moved or message.status not in ("bounced", "complained"):
        return
    row = await _row(tx, message.customer_id, message.recipient)
    row.last_error, row.updated_at = message.last_error, utcnow()
    if message.status == "complained":
        row.complaints += 1
        await suppress(tx, message.customer_id, message.recipient, "complaint")
    elif (message.last_error or "").startswith("4."):
        row.soft_bounces += 1
        if row.soft_bounces >= threshold:
            await suppress(tx, message.customer_id, message.recipient, "soft_bounces", unreachable=True)
    else:
        row.hard_bounces += 1
        await suppress(tx, message.customer_id, message.recipient, "hard_bounce", unreachable=True)
