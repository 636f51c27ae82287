"""GraphQL subscriptions (over WebSocket, graphql-transport-ws) for real-time front ends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncGenerator

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from guanxi.core.domain.models import Customer
from guanxi.core.realtime.broker import Envelope
from guanxi.core.realtime.publisher import broker_of
from guanxi.graphql.context import GraphQLContext
from guanxi.graphql.enums import Direction, StatusSource
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.messaging import MessageStatus
from guanxi.graphql.types import Interaction


@strawberry.type(description="A change of an outbound message's delivery status.")
class MessageStatusUpdate:
    message_id: strawberry.ID
    customer_id: strawberry.ID
    channel: str
    status: MessageStatus
    previous_status: MessageStatus | None
    source: StatusSource
    occurred_at: dt.datetime | None
    attempts: int
    provider_message_id: str | None
    error: str | None


async def subscribed_events(info: Info, topic: str, customer_id: strawberry.ID | None) -> AsyncGenerator[Envelope, None]:
    """This tenant's events of a topic (and of one customer, if given), as they commit; a caller
    limited to some owners' customers (sales, managers) gets only those customers' events.
    Plugins' subscriptions use it too (the insights plugin's ``alertRaised``)."""
    ctx = info.context
    tenant = ctx.tenant_id
    wanted = str(from_global_id(customer_id, "Customer", field="customerId")) if customer_id else None
    async with broker_of(ctx.rt).subscribe(topic) as queue:
        while True:
            envelope = await queue.get()
            if envelope.tenant_id != tenant:
                continue
            if wanted is not None and envelope.data.get("customer_id") != wanted:
                continue
            if ctx.ctx.owners is not None and not await _visible(ctx, envelope.data.get("customer_id")):
                continue
            yield envelope


async def _visible(ctx: GraphQLContext, customer_id: str | None) -> bool:
    """Whether the caller may see this customer: asked through a session with the caller's
    ownership limits (the same rule as every query), now, since owners change."""
    if customer_id is None:
        return False
    async with ctx.rt.session(ctx.tenant_id, ctx.ctx.owners) as session:
        found = await session.scalar(select(Customer.id).where(Customer.id == uuid.UUID(customer_id)))
    return found is not None


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Interactions as they are recorded (all customers, or one).")
    async def interaction_recorded(self, info: Info, customer_id: strawberry.ID | None = None) -> AsyncGenerator[Interaction, None]:
        async for envelope in subscribed_events(info, "interaction_recorded", customer_id):
            d = envelope.data
            yield Interaction(
                id=strawberry.ID(to_global_id("Interaction", uuid.UUID(d["id"]))),
                uuid=uuid.UUID(d["id"]),
                customer_uuid=uuid.UUID(d["customer_id"]),
                ctx=info.context,
                channel=d["channel"],
                kind=d["kind"],
                direction=Direction(d["direction"]),
                occurred_at=dt.datetime.fromisoformat(d["occurred_at"]),
                text=d["text"],
                payload=d.get("payload", {}),
            )

    @strawberry.subscription(description="Delivery status changes of outbound messages (all customers, or one).")
    async def message_status_changed(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> AsyncGenerator[MessageStatusUpdate, None]:
        async for envelope in subscribed_events(info, "message_status_changed", customer_id):
            d = envelope.data
            yield MessageStatusUpdate(
                message_id=strawberry.ID(to_global_id("Message", uuid.UUID(d["message_id"]))),
                customer_id=strawberry.ID(to_global_id("Customer", uuid.UUID(d["customer_id"]))),
                channel=d["channel"],
                status=MessageStatus(d["status"]),
                previous_status=MessageStatus(d["previous_status"]) if d.get("previous_status") else None,
                source=StatusSource(d.get("source", "outbox")),
                occurred_at=dt.datetime.fromisoformat(d["occurred_at"]) if d.get("occurred_at") else None,
                attempts=d["attempts"],
                provider_message_id=d["provider_message_id"],
                error=d["error"],
            )
