"""Bulk sends in GraphQL: create one for a segment, approve, reject or cancel it, and read its
figures."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from guanxi import NotFoundError
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.automation.bulk import service as svc
from guanxi.plugins.automation.bulk.models import AutomationBulkSend
from guanxi.plugins.automation.segments.graphql import full_view, segment_id


@strawberry.enum(description="Where a bulk send is.")
class BulkSendStatus(enum.Enum):
    PENDING_APPROVAL = strawberry.enum_value("pending_approval", description="waits for an admin's approval")
    SENDING = strawberry.enum_value("sending", description="recipients are being queued through the outbox")
    DONE = strawberry.enum_value("done", description="every recipient was queued or skipped")
    CANCELLED = strawberry.enum_value("cancelled", description="stopped; recipients not yet queued never will be")
    REJECTED = strawberry.enum_value("rejected", description="an admin refused it")


@strawberry.type(description="How many recipients were skipped for one reason (the outbound check's code).")
class SkipReason:
    code: str
    count: int


@strawberry.type(description="A bulk send's figures; each counts customers (see docs/plugins/automation.md).")
class BulkSendFigures:
    targeted: int = strawberry.field(description="recipients frozen when the send started")
    pending: int = strawberry.field(description="not yet queued")
    queued: int = strawberry.field(description="queued in the outbox")
    skipped: int = strawberry.field(description="refused by the outbound check (consent, no account, window …)")
    sent: int
    delivered: int
    read: int
    failed: int
    opened: int = strawberry.field(description="read, or an email_open since the send started")
    clicked: int = strawberry.field(description="a click interaction since the send started")
    replied: int = strawberry.field(description="wrote in on the send's channel since it started")
    opted_out: int = strawberry.field(description="opted out of the send's channel since it started")
    skipped_by_reason: list[SkipReason]


@strawberry.type(description="A bulk send's figures of one day (in the tenant's time zone).")
class BulkSendDay:
    day: dt.date
    queued: int = strawberry.field(description="recipients queued in the outbox that day")
    skipped: int = strawberry.field(description="recipients refused by the outbound check that day")
    sent: int = strawberry.field(description="messages the channel accepted that day")
    replied: int = strawberry.field(description="recipients who wrote in on the send's channel that day")
    clicked: int = strawberry.field(description="recipients with a click interaction that day")


@strawberry.type(description="One message to a segment's customers over a channel (群发).")
class BulkSend:
    id: strawberry.ID
    name: str
    segment_id: strawberry.ID
    channel: str
    text: str
    status: BulkSendStatus
    rate_per_minute: int
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decision_note: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    uuid: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, b: AutomationBulkSend) -> BulkSend:
        return cls(
            id=strawberry.ID(to_global_id("BulkSend", b.id)),
            name=b.name,
            segment_id=strawberry.ID(to_global_id("Segment", b.segment_id)),
            channel=b.channel,
            text=b.text,
            status=BulkSendStatus(b.status),
            rate_per_minute=b.rate_per_minute,
            created_at=b.created_at,
            decided_at=b.decided_at,
            decision_note=b.decision_note,
            started_at=b.started_at,
            finished_at=b.finished_at,
            uuid=b.id,
        )

    @strawberry.field(description="Targeted, queued, skipped, sent, delivered, read, opened, clicked, replied, opted out.")
    async def figures(self, info: Info) -> BulkSendFigures:
        async with info.context.loaders.lock:
            send = await svc.get_send(info.context.session, self.uuid)
            f = await svc.figures(info.context.session, send)
        return BulkSendFigures(
            targeted=f.targeted,
            pending=f.pending,
            queued=f.queued,
            skipped=f.skipped,
            sent=f.sent,
            delivered=f.delivered,
            read=f.read,
            failed=f.failed,
            opened=f.opened,
            clicked=f.clicked,
            replied=f.replied,
            opted_out=f.opted_out,
            skipped_by_reason=[SkipReason(code=c, count=n) for c, n in f.skipped_by_code.items()],
        )

    @strawberry.field(
        description="The send over time, by day in the tenant's time zone, oldest first (days without any of it are left out)."
    )
    async def figures_by_day(self, info: Info) -> list[BulkSendDay]:
        async with info.context.loaders.lock:
            send = await svc.get_send(info.context.session, self.uuid)
            zone = (await info.context.rt.tenant_plugins(info.context.tenant_id)).time_zone
            days = await svc.figures_by_day(info.context.session, send, zone)
        return [BulkSendDay(day=d.day, queued=d.queued, skipped=d.skipped, sent=d.sent, replied=d.replied, clicked=d.clicked) for d in days]


@strawberry.input
class CreateBulkSendInput:
    name: str
    segment_id: strawberry.ID
    channel: str
    text: str
    rate_per_minute: int | None = strawberry.field(default=None, description="recipients queued per minute; default and most: the tenant's")


@strawberry.type
class BulkSendPayload:
    bulk_send: BulkSend | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def send_id(value: strawberry.ID) -> uuid.UUID:
    return from_global_id(value, "BulkSend", field="id")


@strawberry.type
class BulkQuery:
    @strawberry.field(description="The tenant's bulk sends, newest first.")
    async def bulk_sends(self, info: Info, first: int = 20) -> list[BulkSend]:
        from guanxi.graphql.pagination import check_page_size

        settings = info.context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        stmt = select(AutomationBulkSend).order_by(AutomationBulkSend.created_at.desc(), AutomationBulkSend.id.desc()).limit(size)
        async with info.context.loaders.lock:
            return [BulkSend.from_model(b) for b in (await info.context.session.execute(stmt)).scalars()]

    @strawberry.field(description="One bulk send by id (null when not found).")
    async def bulk_send(self, info: Info, id: strawberry.ID) -> BulkSend | None:
        try:
            async with info.context.loaders.lock:
                return BulkSend.from_model(await svc.get_send(info.context.session, send_id(id)))
        except NotFoundError:
            return None


@strawberry.type
class BulkMutation:
    @strawberry.mutation(
        description="Send one message to a segment over a channel. Starts at once, or waits for approval when the tenant "
        "requires it. CHANNEL_CAPABILITY when the channel's adapter does not take bulk sends."
    )
    async def create_bulk_send(self, info: Info, input: CreateBulkSendInput) -> BulkSendPayload:
        async def run() -> BulkSendPayload:
            data = svc.BulkInput(
                name=input.name,
                segment_id=segment_id(input.segment_id, "segmentId"),
                channel=input.channel,
                text=input.text,
                rate_per_minute=input.rate_per_minute,
            )
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                created = await svc.create_send(tx, data)
            return BulkSendPayload(bulk_send=BulkSend.from_model(created))

        return await as_payload(run, BulkSendPayload)

    @strawberry.mutation(description="Approve a send waiting for approval: it starts.")
    async def approve_bulk_send(self, info: Info, id: strawberry.ID, note: str | None = None) -> BulkSendPayload:
        async def run() -> BulkSendPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                send = await svc.get_send(tx.session, send_id(id))
                await svc.approve(tx, send, note)
            return BulkSendPayload(bulk_send=BulkSend.from_model(send))

        return await as_payload(run, BulkSendPayload)

    @strawberry.mutation(description="Refuse a send waiting for approval.")
    async def reject_bulk_send(self, info: Info, id: strawberry.ID, note: str | None = None) -> BulkSendPayload:
        async def run() -> BulkSendPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                send = await svc.get_send(tx.session, send_id(id))
                await svc.reject(tx, send, note)
            return BulkSendPayload(bulk_send=BulkSend.from_model(send))

        return await as_payload(run, BulkSendPayload)

    @strawberry.mutation(description="Stop a send; recipients already queued stay queued.")
    async def cancel_bulk_send(self, info: Info, id: strawberry.ID) -> BulkSendPayload:
        async def run() -> BulkSendPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                send = await svc.get_send(tx.session, send_id(id))
                await svc.cancel(tx, send)
            return BulkSendPayload(bulk_send=BulkSend.from_model(send))

        return await as_payload(run, BulkSendPayload)
