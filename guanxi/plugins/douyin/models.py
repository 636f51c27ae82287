"""The plugin's tables, all tenant-owned (``tenant_id`` first in every key, read through the
tenant chokepoint)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import PERSONAL, Base, TenantScoped, utcnow


class DouyinAuthorization(TenantScoped, Base):
    """A business account (its open_id) that authorized an app for this tenant, with its tokens
    (sealed, never readable through the API) and its state: ``connected`` or ``disconnected``
    (revoked, or a refresh token past its renewals; ``reason`` says which)."""

    __tablename__ = "douyin_authorizations"
    __table_args__ = (Index(None, "client_key", "open_id"),)

    open_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: the app it authorized; ``app_key`` is the channel account's key, "" for the deployment app
    client_key: Mapped[str] = mapped_column(String(64))
    app_key: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="connected")
    reason: Mapped[str | None] = mapped_column(String(300))
    nickname: Mapped[str | None] = mapped_column(String(200))
    avatar_url: Mapped[str | None] = mapped_column(String(1000))
    union_id: Mapped[str | None] = mapped_column(String(128))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    #: AES-GCM sealed JSON ``{"access_token", "refresh_token"}`` (core's sealer)
    tokens: Mapped[str] = mapped_column(Text, default="")
    access_expires_at: Mapped[dt.datetime | None]
    refresh_expires_at: Mapped[dt.datetime | None]
    renewals: Mapped[int] = mapped_column(default=0)
    #: fans figures the API gave for this account (§D.10), with the day they describe
    total_fans: Mapped[int | None]
    new_fans: Mapped[int | None]
    fans_date: Mapped[str | None] = mapped_column(String(10))
    fans_updated_at: Mapped[dt.datetime | None]
    connected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DouyinOAuthState(TenantScoped, Base):
    """An authorization URL handed out (its ``state``): the callback finds the tenant and app by it."""

    __tablename__ = "douyin_oauth_states"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_key: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DouyinConversation(TenantScoped, Base):
    """The last private message a customer sent a business account: what a reply needs
    (conversation and message ids, §D.9) and when the reply window it opens began."""

    __tablename__ = "douyin_conversations"
    __table_args__ = (Index(None, "tenant_id", "customer_id"),)

    account_open_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    open_id: Mapped[str] = mapped_column(String(128), primary_key=True, info=PERSONAL)
    #: the customer whose account ``open_id`` is (export, erasure, merges)
    customer_id: Mapped[uuid.UUID]
    conversation_id: Mapped[str] = mapped_column(String(200))
    server_message_id: Mapped[str] = mapped_column(String(200))
    last_in_at: Mapped[dt.datetime]


class DouyinEvent(TenantScoped, Base):
    """Webhook events that are not about one customer (authorize, unauthorize) and events of a
    type this plugin does not handle, kept once per Msg-Id with ``status`` ``applied`` or
    ``ignored``; customer events go through core's inbox instead.

    An ignored event's ``body`` may hold what a person wrote: ``user_open_id`` / ``user_union_id``
    name that person, so their export and erasure find it, and ignored events older than
    ``ignored_event_retention_days`` are purged by a daily job."""

    __tablename__ = "douyin_events"
    __table_args__ = (
        Index(None, "tenant_id", "user_open_id"),
        Index(None, "tenant_id", "user_union_id"),
        Index(None, "tenant_id", "status", "received_at"),
    )

    dedupe_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    account_open_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the other party of the event (not the business account): open_id, and union_id when given
    user_open_id: Mapped[str | None] = mapped_column(String(128), info=PERSONAL)
    user_union_id: Mapped[str | None] = mapped_column(String(128), info=PERSONAL)


#: every table of the plugin (tenant export and purge)
TABLES: tuple[type, ...] = (DouyinAuthorization, DouyinOAuthState, DouyinConversation, DouyinEvent)
