"""Core's own plugin: publishes committed events to the broker for GraphQL subscriptions.

It is registered by the plugin manager like any plugin but cannot be disabled (it is part of
core, as pytest's essential plugins are part of pytest)."""

from __future__ import annotations

from typing import Any

import msgspec

from guanxi.core.domain.events import InteractionRecorded, MessageStatusChanged, NotificationCreated
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.realtime.broker import MAX_TEXT, Broker, Envelope, asyncpg_dsn

NAME = "guanxi.realtime"


def broker_of(runtime: Any) -> Broker:
    broker = runtime.state.get("broker")
    if broker is None:
        broker = runtime.state["broker"] = Broker()
    return broker


@hookimpl(tryfirst=True)
async def guanxi_startup(runtime: Any) -> None:
    broker = broker_of(runtime)
    url = runtime.settings.database.url
    if url.startswith("postgresql"):
        await broker.listen(asyncpg_dsn(url))


@hookimpl(trylast=True)
async def guanxi_shutdown(runtime: Any) -> None:
    await broker_of(runtime).close()


@hookimpl
async def guanxi_interaction_recorded(runtime: Any, event: InteractionRecorded) -> None:
    data = {
        "id": str(event.interaction_id),
        "customer_id": str(event.customer_id),
        "channel": event.channel,
        "kind": event.kind,
        "direction": event.direction,
        "occurred_at": event.occurred_at.isoformat(),
        "text": event.text[:MAX_TEXT] if event.text else event.text,
        "payload": event.payload if len(msgspec.json.encode(event.payload)) <= MAX_TEXT else {"truncated": True},
    }
    await broker_of(runtime).publish(Envelope("interaction_recorded", event.tenant_id, data))


@hookimpl
async def guanxi_message_status_changed(runtime: Any, event: MessageStatusChanged) -> None:
    data = {
        "message_id": str(event.message_id),
        "customer_id": str(event.customer_id),
        "channel": event.channel,
        "status": event.status,
        "previous_status": event.previous_status,
        "source": event.source,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "attempts": event.attempts,
        "provider_message_id": event.provider_message_id,
        "error": event.error[:MAX_TEXT] if event.error else None,
    }
    await broker_of(runtime).publish(Envelope("message_status_changed", event.tenant_id, data))


@hookimpl
async def guanxi_notification_created(runtime: Any, event: NotificationCreated) -> None:
    data = {
        "id": str(event.notification_id),
        "user_id": str(event.user_id),
        "kind": event.kind,
        "title": event.title,
        "body": event.body[:MAX_TEXT] if event.body else event.body,
        "link_type": event.link_type,
        "link_id": str(event.link_id) if event.link_id else None,
        "created_at": event.created_at.isoformat(),
    }
    await broker_of(runtime).publish(Envelope("notification_created", event.tenant_id, data))
