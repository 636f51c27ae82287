"""The bulk sends' tables: a send and one durable row per recipient."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import PERSONAL, Base, CustomerOwned, TenantScoped, new_id, utcnow


class AutomationBulkSend(TenantScoped, Base):
    """One message to a segment's members over a channel.

    ``status``: ``pending_approval`` → ``approved`` (or ``rejected``) → ``sending`` → ``done``;
    ``cancelled`` at any point before ``done``. Starting a send freezes its recipients
    (:class:`AutomationBulkRecipient`); the send job then queues them through the outbox, at most
    ``rate_per_minute`` a minute."""

    __tablename__ = "automation_bulk_sends"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["automation_segments.tenant_id", "automation_segments.id"],
            name="fk_automation_bulk_sends_segment",
        ),
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[dt.datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class AutomationBulkRecipient(CustomerOwned, TenantScoped, Base):
    """One customer of a bulk send: ``pending`` (not yet queued), ``queued`` (an outbox message,
    ``outbox_id``, whose idempotency key is ``bulk:<send id>:<customer id>``) or ``skipped``
    (``code``/``reason`` from the outbound check: ``NO_CONSENT``, no account, closed window…)."""

    __tablename__ = "automation_bulk_recipients"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "send_id"],
            ["automation_bulk_sends.tenant_id", "automation_bulk_sends.id"],
            name="fk_automation_bulk_recipients_send",
        ),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index(None, "tenant_id", "send_id", "status"),
        Index(None, "tenant_id", "customer_id"),
    )

    send_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    outbox_id: Mapped[uuid.UUID | None]
    code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    processed_at: Mapped[dt.datetime | None]
