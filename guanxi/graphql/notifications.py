"""Staff notifications in GraphQL: the caller's own (``myNotifications``, mark read, preferences,
the ``notificationReceived`` subscription), and for admins the scheduler's jobs.

"My" fields act for the user behind the credentials (an API key created for a user, or a JWT
whose subject is a user); a credential without a user gets a ``VALIDATION`` error saying so.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncGenerator
from typing import Any, cast

import msgspec
import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Notification as NotificationRow
from guanxi.core.domain.models import NotificationSettings as SettingsRow
from guanxi.core.domain.models import ScheduledJob as JobRow
from guanxi.core.realtime.publisher import broker_of
from guanxi.core.services import notifications, schedule
from guanxi.graphql.context import GraphQLContext
from guanxi.graphql.enums import JobStatus
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.pagination import check_page_size

LINK_TYPES = {"customer": "Customer", "task": "Task", "message": "Message", "deal": "Deal", "user": "User"}


def _me(ctx: GraphQLContext) -> uuid.UUID:
    user_id = ctx.ctx.actor.user_id
    if user_id is None:
        raise ValidationError("these credentials act for no staff user; use an API key or token of a user to read notifications")
    return user_id


def _link(link_type: str | None, link_id: uuid.UUID | None) -> strawberry.ID | None:
    if link_type is None or link_id is None:
        return None
    return strawberry.ID(to_global_id(LINK_TYPES.get(link_type, link_type[:1].upper() + link_type[1:]), link_id))


@strawberry.type(description="A notification to the caller (a reminder, an alert), in-app.")
class Notification:
    id: strawberry.ID
    kind: str = strawberry.field(description="e.g. task.due_soon, task.overdue")
    title: str
    body: str | None
    link_type: str | None = strawberry.field(description="what it is about: customer, task, message, deal")
    link_id: strawberry.ID | None = strawberry.field(description="global id of that object (Task:…)")
    created_at: dt.datetime
    read_at: dt.datetime | None

    @classmethod
    def from_row(cls, r: NotificationRow) -> Notification:
        return cls(
            id=strawberry.ID(to_global_id("Notification", r.id)),
            kind=r.kind,
            title=r.title,
            body=r.body,
            link_type=r.link_type,
            link_id=_link(r.link_type, r.link_id),
            created_at=r.created_at,
            read_at=r.read_at,
        )


@strawberry.type
class MyNotifications:
    unread_count: int
    items: list[Notification] = strawberry.field(description="unread first, then newest first")


@strawberry.type(description="The caller's notification preferences; times are in the caller's time zone.")
class NotificationPreferences:
    channels: list[str] | None = strawberry.field(description="staff channels to deliver on; null: every channel that reaches you")
    kinds: JSON = strawberry.field(description='per kind: {"channels": [...], "digest": bool, "muted": bool}')
    quiet_start: str | None = strawberry.field(description="HH:MM: deliveries wait from here …")
    quiet_end: str | None = strawberry.field(description="… to here (in-app notifications still arrive)")
    digest_at: str = strawberry.field(description="HH:MM: when digest kinds are sent, as one message")
    available_channels: list[str] = strawberry.field(description="the staff channels of the enabled plugins")

    @classmethod
    def from_row(cls, r: SettingsRow, available: list[str]) -> NotificationPreferences:
        return cls(
            channels=r.channels,
            kinds=cast(Any, dict(r.kinds or {})),
            quiet_start=r.quiet_start,
            quiet_end=r.quiet_end,
            digest_at=r.digest_at,
            available_channels=available,
        )


@strawberry.input
class NotificationPreferencesInput:
    channels: list[str] | None = strawberry.UNSET
    kinds: JSON | None = strawberry.UNSET
    quiet_start: str | None = strawberry.UNSET
    quiet_end: str | None = strawberry.UNSET
    digest_at: str | None = strawberry.UNSET


@strawberry.type
class MarkNotificationsReadPayload:
    count: int = strawberry.field(default=0, description="how many became read")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class NotificationPreferencesPayload:
    preferences: NotificationPreferences | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A durable job of the scheduler (admins).")
class ScheduledJob:
    id: strawberry.ID
    kind: str
    key: str
    status: JobStatus
    cron: str | None = strawberry.field(description="cron schedule in the tenant's time zone; null: a one-off job")
    next_run_at: dt.datetime = strawberry.field(description="when the job (or its retry) is due")
    slot_at: dt.datetime = strawberry.field(description="the time the next run is for")
    attempts: int
    max_attempts: int
    runs: int
    last_run_at: dt.datetime | None
    last_error: str | None
    payload: JSON
    created_at: dt.datetime

    @classmethod
    def from_row(cls, r: JobRow) -> ScheduledJob:
        return cls(
            id=strawberry.ID(to_global_id("ScheduledJob", r.id)),
            kind=r.kind,
            key=r.key,
            status=JobStatus(r.status),
            cron=r.cron,
            next_run_at=r.next_attempt_at,
            slot_at=r.slot_at,
            attempts=r.attempts,
            max_attempts=r.max_attempts,
            runs=r.runs,
            last_run_at=r.last_run_at,
            last_error=r.last_error,
            payload=cast(Any, dict(r.payload)),
            created_at=r.created_at,
        )


@strawberry.type
class ScheduledJobPayload:
    job: ScheduledJob | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _page(info: Info, first: int | None) -> int:
    settings = info.context.rt.settings.graphql
    return check_page_size(first, settings.default_page_size, settings.max_page_size)


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="The caller's notifications, unread first, with the unread count.")
    async def my_notifications(self, info: Info, first: int | None = None, unread_only: bool = False) -> MyNotifications:
        ctx = info.context
        me = _me(ctx)
        rows = await notifications.list_notifications(ctx.session, me, first=_page(info, first), unread_only=unread_only)
        return MyNotifications(
            unread_count=await notifications.unread_count(ctx.session, me), items=[Notification.from_row(r) for r in rows]
        )

    @strawberry.field(description="The caller's notification preferences.")
    async def my_notification_preferences(self, info: Info) -> NotificationPreferences:
        ctx = info.context
        row = await notifications.get_settings(ctx.session, _me(ctx))
        return NotificationPreferences.from_row(row, sorted(ctx.rt.staff_channels))

    @strawberry.field(description="The scheduler's jobs of this tenant, soonest due first, optionally of one status or kind (admins).")
    async def scheduled_jobs(
        self, info: Info, status: JobStatus | None = None, kind: str | None = None, first: int | None = None
    ) -> list[ScheduledJob]:
        stmt = select(JobRow).order_by(JobRow.next_attempt_at, JobRow.id).limit(_page(info, first))
        if status:
            stmt = stmt.where(JobRow.status == status.value)
        if kind:
            stmt = stmt.where(JobRow.kind == kind)
        return [ScheduledJob.from_row(r) for r in (await info.context.session.scalars(stmt)).all()]


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(description="Mark the caller's notifications read: these ids, or all of them with all: true.")
    async def mark_notifications_read(
        self, info: Info, ids: list[strawberry.ID] | None = None, all: bool = False
    ) -> MarkNotificationsReadPayload:
        async def run() -> MarkNotificationsReadPayload:
            me = _me(info.context)
            if all == (ids is not None):
                raise ValidationError("give either ids or all: true", field="ids")
            wanted = None if all else [from_global_id(i, "Notification", field="ids") for i in ids or []]
            async with info.context.transaction() as tx:
                count = await notifications.mark_read(tx, me, wanted)
            return MarkNotificationsReadPayload(count=count)

        return await as_payload(run, MarkNotificationsReadPayload)

    @strawberry.mutation(description="Change the caller's notification preferences; fields left out keep their value.")
    async def update_my_notification_preferences(self, info: Info, input: NotificationPreferencesInput) -> NotificationPreferencesPayload:
        async def run() -> NotificationPreferencesPayload:
            me = _me(info.context)
            given = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
            if "digest_at" in given and given["digest_at"] is None:
                raise ValidationError("digestAt cannot be null", field="digestAt")
            if "kinds" in given and not isinstance(given["kinds"], dict):
                raise ValidationError("kinds must be an object of kind → preferences", field="kinds")
            data = msgspec.convert(given, notifications.SettingsInput) if given else notifications.SettingsInput()
            async with info.context.transaction() as tx:
                row = await notifications.update_settings(tx, me, data)
                answer = NotificationPreferences.from_row(row, sorted(tx.runtime.staff_channels))
            return NotificationPreferencesPayload(preferences=answer)

        return await as_payload(run, NotificationPreferencesPayload)

    @strawberry.mutation(description="Cancel a scheduled job that has not finished (admins).")
    async def cancel_scheduled_job(self, info: Info, id: strawberry.ID) -> ScheduledJobPayload:
        async def run() -> ScheduledJobPayload:
            async with info.context.transaction() as tx:
                job = await schedule.cancel_job(tx, from_global_id(id, "ScheduledJob"))
                answer = ScheduledJob.from_row(job)
            return ScheduledJobPayload(job=answer)

        return await as_payload(run, ScheduledJobPayload)


@strawberry.type
class NotificationSubscription:
    @strawberry.subscription(description="The caller's notifications as they are recorded.")
    async def notification_received(self, info: Info) -> AsyncGenerator[Notification, None]:
        ctx = info.context
        me, tenant = str(_me(ctx)), ctx.tenant_id
        async with broker_of(ctx.rt).subscribe("notification_created") as queue:
            while True:
                envelope = await queue.get()
                d = envelope.data
                if envelope.tenant_id != tenant or d.get("user_id") != me:
                    continue
                link_id = uuid.UUID(d["link_id"]) if d.get("link_id") else None
                yield Notification(
                    id=strawberry.ID(to_global_id("Notification", uuid.UUID(d["id"]))),
                    kind=d["kind"],
                    title=d["title"],
                    body=d["body"],
                    link_type=d["link_type"],
                    link_id=_link(d["link_type"], link_id),
                    created_at=dt.datetime.fromisoformat(d["created_at"]),
                    read_at=None,
                )
