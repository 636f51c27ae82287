"""The plugin's tables: what an email adds to an outbox message, and each address's deliverability."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import PERSONAL, Base, CustomerOwned, TenantScoped, utcnow


class EmailDraft(CustomerOwned, TenantScoped, Base):
    """The parts of an email the outbox row does not hold: the mailbox it goes out of, the
    subject, the HTML part (rendered and escaped when queued) and whether it is marketing mail
    (List-Unsubscribe, tracking). The outbox row (same id) holds the text part and attachments."""

    __tablename__ = "email_drafts"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),)

    outbox_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID]
    mailbox: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(998), info=PERSONAL)
    html: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EmailAddress(CustomerOwned, TenantScoped, Base):
    """Deliverability of one address: soft bounces counted, and why it is suppressed (a hard
    bounce, too many soft bounces, a complaint, an unsubscribe), if it is."""

    __tablename__ = "email_addresses"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index(None, "tenant_id", "customer_id"),
    )

    address: Mapped[str] = mapped_column(String(254), primary_key=True, info=PERSONAL)
    customer_id: Mapped[uuid.UUID]
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    suppressed: Mapped[str | None] = mapped_column(String(16))
    suppressed_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EmailImapState(TenantScoped, Base):
    """How far a mailbox's IMAP folder was read: the folder's UIDVALIDITY and the highest UID
    stored in the inbox. A poll resumes after it; a new UIDVALIDITY starts over (the inbox's
    dedupe by Message-ID keeps that from doubling anything)."""

    __tablename__ = "email_imap_state"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    polled_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class EmailMailboxState(TenantScoped, Base):
    """How a mailbox receives and what last went wrong with it: ``receiving`` is ``idle`` while
    a worker process holds an IMAP IDLE connection to its folder (``idle_holder`` until
    ``idle_until``, a lease renewed while the connection lives, so one process at a time holds
    it), ``polling`` when the server offers no IDLE (or the connection keeps failing); the last
    SMTP error that is the mailbox's fault (a refused login) is kept until a login succeeds."""

    __tablename__ = "email_mailbox_state"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    receiving: Mapped[str] = mapped_column(String(16), default="polling")
    idle_holder: Mapped[str | None] = mapped_column(String(64))
    idle_until: Mapped[dt.datetime | None]
    idle_error: Mapped[str | None] = mapped_column(Text)
    smtp_error: Mapped[str | None] = mapped_column(Text)
    smtp_error_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
