"""The plugin's tables. Every key starts with ``tenant_id``; customer-keyed rows use composite
foreign keys to ``customers`` like core's tables."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import PERSONAL, Base, CustomerOwned, TenantScoped, utcnow


class WecomFollow(CustomerOwned, TenantScoped, Base):
    """Who follows whom: one row per (corp, customer's ExternalUserID, staff UserID).

    ``status``: ``active`` (mutual), ``half`` (customer added the member, not yet mutual),
    ``removed_staff`` (the customer deleted the member), ``removed_by_staff`` (the member deleted
    the customer). ``state`` is the contact-way state the customer arrived with."""

    __tablename__ = "wecom_follows"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index(None, "tenant_id", "customer_id"),
        Index(None, "tenant_id", "corp_id", "userid"),
    )

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(128), primary_key=True, info=PERSONAL)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(24), default="active")
    state: Mapped[str | None] = mapped_column(String(64))
    add_way: Mapped[int | None]
    remark: Mapped[str | None] = mapped_column(String(200), info=PERSONAL)
    description: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    remark_mobiles: Mapped[list[str]] = mapped_column(default=list, info=PERSONAL)
    tag_ids: Mapped[list[str]] = mapped_column(default=list)
    followed_at: Mapped[dt.datetime | None]
    removed_at: Mapped[dt.datetime | None]
    #: When an add event for this relation was last applied (rows the API or the sync created
    #: have none until then): an add reports an arrival once per relation, not per API refresh.
    arrived_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WecomStaff(TenantScoped, Base):
    """A corp member (UserID) mapped to a Guanxi staff user."""

    __tablename__ = "wecom_staff"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]), Index(None, "tenant_id", "user_id"))

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID]


class WecomTag(TenantScoped, Base):
    """A corp tag (企业标签) as WeCom knows it, mirrored for two-way sync with core tags
    (core label ``group_name/name``)."""

    __tablename__ = "wecom_tags"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64))
    group_name: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    deleted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WecomContactWay(TenantScoped, Base):
    """A 「联系我」 contact way (channel QR code) this plugin created."""

    __tablename__ = "wecom_contact_ways"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    config_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64))
    qr_code: Mapped[str | None] = mapped_column(String(1000))
    remark: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WecomEvent(TenantScoped, Base):
    """Callbacks that are not about one customer (tag and customer-group changes), kept once
    per dedupe key; customer events go through core's inbox instead. ``applied_at`` is null while
    the event waits: its tenant was suspended when it arrived (applied once the tenant resumes)."""

    __tablename__ = "wecom_events"

    dedupe_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[dt.datetime | None]


class WecomChat(TenantScoped, Base):
    """A customer group (客户群) and its last known change."""

    __tablename__ = "wecom_chats"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | dismissed
    last_change: Mapped[str | None] = mapped_column(String(32))
    member_changes: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WecomMassSend(TenantScoped, Base):
    """A mass-send task (群发) created with add_msg_template; staff confirm it in the client."""

    __tablename__ = "wecom_mass_sends"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msgid: Mapped[str] = mapped_column(String(128), primary_key=True)
    sender: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(default=0)
    failed: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


#: every table of the plugin (tenant export and purge)
TABLES: tuple[type, ...] = (
    WecomFollow,
    WecomStaff,
    WecomTag,
    WecomContactWay,
    WecomEvent,
    WecomChat,
    WecomMassSend,
)
