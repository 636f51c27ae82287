"""Messaging in the API: ``sendMessage``, message status, queue depth."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any
from uuid import UUID

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core.domain.channels import Attachment
from guanxi.core.domain.models import InboxEvent, OutboxMessage
from guanxi.core.queues import inbox, outbox, scheduler, staff
from guanxi.core.services.profiles import refresh_profile
from guanxi.graphql.enums import AttachmentKind, StatusSource
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Identity, Node


@strawberry.enum(description="Where a message's delivery stands.")
class MessageStatus(enum.Enum):
    QUEUED = strawberry.enum_value("queued", description="accepted, waiting for the outbox worker (again, after a transient error)")
    SENDING = strawberry.enum_value("sending", description="a worker is handing it to the channel")
    SENT = strawberry.enum_value("sent", description="the channel's provider accepted it")
    DELIVERED = strawberry.enum_value("delivered", description="the provider reported it delivered")
    READ = strawberry.enum_value("read", description="the provider reported it read")
    FAILED = strawberry.enum_value("failed", description="refused for good, out of retries, or reported undeliverable")
    BOUNCED = strawberry.enum_value("bounced", description="the provider reported the address does not take it (email)")
    COMPLAINED = strawberry.enum_value("complained", description="the recipient marked it unwanted (spam complaint)")


@strawberry.enum(description="Where an inbox event's processing stands (InboxItem.status, inboxEvents(status:)).")
class InboxStatus(enum.Enum):
    PENDING = strawberry.enum_value("pending", description="stored, waiting for the inbox worker (again, after a transient error)")
    PROCESSING = strawberry.enum_value("processing", description="a worker has claimed it and is running the hooks")
    DONE = strawberry.enum_value("done", description="processed")
    FAILED = strawberry.enum_value("failed", description="out of retries or refused for good; replay it after a fix")


@strawberry.type(description="One change of a message's status, or a receipt that did not change it.")
class MessageStatusEntry:
    status: MessageStatus
    at: dt.datetime = strawberry.field(description="when it happened (for a receipt, the provider's time)")
    source: StatusSource
    applied: bool = strawberry.field(description="false for a receipt that did not move the status forward (a late delivered after read)")
    error: str | None = None
    provider_code: str | None = None

    @classmethod
    def from_entry(cls, e: dict[str, Any]) -> MessageStatusEntry:
        return cls(
            status=MessageStatus(e["status"]),
            at=dt.datetime.fromisoformat(e["at"]),
            source=StatusSource(e["source"]),
            applied=e.get("applied", True),
            error=e.get("error"),
            provider_code=e.get("provider_code"),
        )


@strawberry.type(description="A message to a customer through a channel, and where its delivery stands.")
class Message(Node):
    id: strawberry.ID
    uuid: strawberry.Private[UUID]
    history: strawberry.Private[list[dict[str, Any]]]
    channel: str
    text: str | None
    attachments: JSON
    status: MessageStatus
    attempts: int
    last_error: str | None
    provider_message_id: str | None = strawberry.field(description="the provider's id of the message, once sent; receipts name it")
    created_at: dt.datetime
    sent_at: dt.datetime | None

    @strawberry.field(description="Every status change and receipt, oldest first.")
    def status_history(self) -> list[MessageStatusEntry]:
        return [MessageStatusEntry.from_entry(e) for e in self.history]

    @classmethod
    def from_model(cls, m: Any) -> Message:
        return cls(
            id=strawberry.ID(to_global_id("Message", m.id)),
            uuid=m.id,
            history=list(m.status_history or []),
            channel=m.channel,
            text=m.text,
            attachments=m.attachments,
            status=MessageStatus(m.status),
            attempts=m.attempts,
            last_error=m.last_error,
            provider_message_id=m.provider_message_id,
            created_at=m.created_at,
            sent_at=m.sent_at,
        )


@strawberry.input
class AttachmentInput:
    kind: AttachmentKind
    url: str
    name: str | None = None
    mime_type: str | None = None


@strawberry.type
class SendMessagePayload:
    message: Message | None = None
    created: bool = strawberry.field(default=False, description="false when the idempotency key was used before")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Rows of a work queue by state.")
class QueueDepth:
    waiting: int = strawberry.field(description="inbox: pending; outbox: queued (including retries)")
    working: int = strawberry.field(description="inbox: processing; outbox: sending")
    finished: int = strawberry.field(description="inbox: done; outbox: sent, delivered, read or complained")
    failed: int = strawberry.field(description="inbox: failed; outbox: failed or bounced")
    oldest_waiting_age_s: float | None = strawberry.field(description="seconds since the oldest unfinished row arrived")


def _depth(d: dict[str, int | float | None]) -> QueueDepth:
    age = d["oldest_waiting_age_s"]
    return QueueDepth(
        waiting=int(d["waiting"] or 0),
        working=int(d["working"] or 0),
        finished=int(d["finished"] or 0),
        failed=int(d["failed"] or 0),
        oldest_waiting_age_s=float(age) if age is not None else None,
    )


@strawberry.type
class Queues:
    inbox: QueueDepth
    outbox: QueueDepth
    staff: QueueDepth = strawberry.field(description="staff notification deliveries: queued, sending, sent, failed")
    scheduler: QueueDepth = strawberry.field(description="scheduled jobs: scheduled (future ones too), running, done, failed")


@strawberry.type
class MessagingMutation:
    @strawberry.mutation(
        description="Send a message through a channel. Checks consent and the channel's capabilities; one idempotency key sends once."
    )
    async def send_message(
        self,
        info: Info,
        customer_id: strawberry.ID,
        channel: str,
        idempotency_key: str,
        text: str | None = None,
        attachments: list[AttachmentInput] | None = None,
    ) -> SendMessagePayload:
        async def run() -> SendMessagePayload:
            request = outbox.SendRequest(
                customer_id=from_global_id(customer_id, "Customer", field="customerId"),
                channel=channel,
                idempotency_key=idempotency_key,
                text=text,
                attachments=[Attachment(kind=a.kind.value, url=a.url, name=a.name, mime_type=a.mime_type) for a in attachments or []],
            )
            async with info.context.transaction() as tx:
                row, created = await outbox.send_message(tx, request)
            return SendMessagePayload(message=Message.from_model(row), created=created)

        return await as_payload(run, SendMessagePayload)

    @strawberry.mutation(description="Fetch an identity's current profile (nickname, avatar, followers …) from its channel.")
    async def refresh_identity_profile(self, info: Info, identity_id: strawberry.ID) -> IdentityRefreshPayload:
        async def run() -> IdentityRefreshPayload:
            info.context.reset_reads()
            identity = await refresh_profile(info.context.rt, info.context.ctx, from_global_id(identity_id, "Identity", field="identityId"))
            return IdentityRefreshPayload(identity=Identity.from_model(identity))

        return await as_payload(run, IdentityRefreshPayload)


@strawberry.type(description="An event received from a channel webhook, and where its processing stands.")
class InboxItem(Node):
    id: strawberry.ID
    channel: str
    provider_event_id: str
    status: InboxStatus
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    processed_at: dt.datetime | None
    event: JSON = strawberry.field(description="the event as the channel plugin parsed it")

    @classmethod
    def from_model(cls, m: Any) -> InboxItem:
        return cls(
            id=strawberry.ID(to_global_id("InboxEvent", m.id)),
            channel=m.channel,
            provider_event_id=m.provider_event_id,
            status=InboxStatus(m.status),
            attempts=m.attempts,
            last_error=m.last_error,
            received_at=m.received_at,
            processed_at=m.processed_at,
            event=m.event,
        )


@strawberry.type
class IdentityRefreshPayload:
    identity: Identity | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MessagingQuery:
    @strawberry.field(description="The newest inbox events of this tenant (operations), optionally of one status.")
    async def inbox_events(self, info: Info, status: InboxStatus | None = None, first: int = 20) -> list[InboxItem]:
        stmt = select(InboxEvent).order_by(InboxEvent.received_at.desc()).limit(_page(info, first))
        if status:
            stmt = stmt.where(InboxEvent.status == status.value)
        return [InboxItem.from_model(r) for r in (await info.context.loaders.execute(stmt)).scalars()]

    @strawberry.field(description="The newest outbox messages of this tenant (operations), optionally of one status.")
    async def outbox_messages(self, info: Info, status: MessageStatus | None = None, first: int = 20) -> list[Message]:
        stmt = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(_page(info, first))
        if status:
            stmt = stmt.where(OutboxMessage.status == status.value)
        return [Message.from_model(r) for r in (await info.context.loaders.execute(stmt)).scalars()]

    @strawberry.field(description="One message by id (null if none).")
    async def message(self, info: Info, id: strawberry.ID) -> Message | None:
        uuid_ = from_global_id(id, "Message")
        row = (await info.context.loaders.execute(select(OutboxMessage).where(OutboxMessage.id == uuid_))).scalar_one_or_none()
        return Message.from_model(row) if row is not None else None

    @strawberry.field(description="Depth of this tenant's inbox and outbox.")
    async def queues(self, info: Info) -> Queues:
        tenant = info.context.tenant_id
        rt = info.context.rt
        i, o = await inbox.depth(rt, tenant), await outbox.depth(rt, tenant)
        st, sc = await staff.depth(rt, tenant), await scheduler.depth(rt, tenant)
        return Queues(inbox=_depth(i), outbox=_depth(o), staff=_depth(st), scheduler=_depth(sc))


def _page(info: Info, first: int) -> int:
    settings = info.context.rt.settings.graphql
    return check_page_size(first, settings.default_page_size, settings.max_page_size)


@strawberry.type
class CustomerMessages:
    @strawberry.field(description="Messages sent to this customer, newest first.")
    async def messages(self, info: Info, first: int = 20) -> list[Message]:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.customer_id == self.uuid)  # type: ignore[attr-defined]
            .order_by(OutboxMessage.created_at.desc())
            .limit(min(max(first, 0), info.context.rt.settings.graphql.max_page_size))
        )
        return [Message.from_model(r) for r in (await info.context.loaders.execute(stmt)).scalars()]
