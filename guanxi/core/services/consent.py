"""Per-channel consent (opt-in / opt-out)."""

from __future__ import annotations

import uuid

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Consent, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer

STATUSES = frozenset({"opted_in", "opted_out"})


async def set_consent(tx: Tx, customer_id: uuid.UUID, channel: str, status: str, source: str | None = None) -> Consent:
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {sorted(STATUSES)}", field="status")
    customer = await get_customer(tx.session, customer_id)
    row = await tx.session.get(Consent, (tx.tenant_id, customer.id, channel))
    if row is None:
        row = Consent(customer_id=customer.id, channel=channel, status=status, source=source, changed_at=utcnow())
        tx.session.add(row)
    else:
        row.status, row.source, row.changed_at = status, source, utcnow()
    audit(tx, "consent.set", "customer", customer.id, {"channel": channel, "status": status, "source": source})
    return row


async def has_consent(tx: Tx, customer_id: uuid.UUID, channel: str) -> bool:
    """True unless the customer opted out of the channel (no record means not opted out)."""
    row = await tx.session.get(Consent, (tx.tenant_id, customer_id, channel))
    return row is None or row.status != "opted_out"
