"""Staff notifications: record one for a user (in-app, never lost), queue its deliveries on the
user's staff channels, list and mark them read, and keep each user's preferences.

Rules, in the order :func:`notify` applies them:

* **De-duplication**: ``dedupe_key`` is unique per tenant; notifying with a key already used
  returns the existing notification and queues nothing (the same reminder is sent once).
* **In-app first**: the notification row is written whatever the channels do; a user no channel
  can reach, or whose preference for the kind is ``muted``, has it in-app only.
* **Channels**: the user's choice for the kind, else the user's default, else every staff
  channel (``guanxi_staff_channels``) that has an address for the user.
* **Quiet hours** (the user's time zone, the tenant's if the user has none): a delivery due in
  them waits for their end. **Digest**: a kind set to digest waits for the user's digest time
  and leaves with the other digest items of that user and channel as one message.

No consent and no customer timeline: those rules are for customers (see the outbox).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select, update

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import NotificationCreated
from guanxi.core.domain.models import Notification, NotificationDelivery, NotificationSettings, Tenant, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.schedule import zone
from guanxi.core.storage.tenancy import TenantSession

KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
LINK_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
KIND_KEYS = frozenset({"channels", "digest", "muted"})
MAX_BODY = 4000


class NotificationInput(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    kind: str
    title: str
    dedupe_key: str
    body: str | None = None
    link_type: str | None = None
    link_id: uuid.UUID | None = None


class SettingsInput(msgspec.Struct, kw_only=True):
    """A change of preferences; a field left UNSET keeps its value."""

    channels: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    kinds: dict[str, dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    quiet_start: str | msgspec.UnsetType | None = msgspec.UNSET
    quiet_end: str | msgspec.UnsetType | None = msgspec.UNSET
    digest_at: str | msgspec.UnsetType = msgspec.UNSET


# -- time rules (pure) ----------------------------------------------------------------------------


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _local(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=tz)


def after_quiet_hours(at: dt.datetime, start: str | None, end: str | None, tz: ZoneInfo) -> dt.datetime:
    """``at`` if it is outside the quiet hours ``start``–``end`` (local ``HH:MM`` in ``tz``, may
    span midnight), else the end of the quiet hours; in UTC."""
    if not start or not end or start == end:
        return at
    local = at.astimezone(tz)
    begin, finish, now = _clock(start), _clock(end), local.time().replace(tzinfo=None)
    quiet = begin <= now < finish if begin < finish else (now >= begin or now < finish)
    if not quiet:
        return at
    until = _local(local.date(), finish, tz)
    if until <= local:
        until = _local(local.date() + dt.timedelta(days=1), finish, tz)
    return until.astimezone(dt.UTC)


def next_digest(at: dt.datetime, digest_at: str, tz: ZoneInfo) -> dt.datetime:
    """The first digest time (local ``HH:MM`` in ``tz``) strictly after ``at``, in UTC."""
    local = at.astimezone(tz)
    when = _local(local.date(), _clock(digest_at), tz)
    if when <= local:
        when = _local(local.date() + dt.timedelta(days=1), _clock(digest_at), tz)
    return when.astimezone(dt.UTC)


# -- preferences ------------------------------------------------------------------------------------


async def user_zone(session: TenantSession, user: User) -> ZoneInfo:
    """The user's time zone, else the tenant's."""
    if user.time_zone:
        return zone(user.time_zone)
    name = (await session.execute(select(Tenant.time_zone).where(Tenant.id == session.tenant_id))).scalar_one_or_none()
    return zone(name)


async def get_settings(session: TenantSession, user_id: uuid.UUID) -> NotificationSettings:
    """The user's preferences (the defaults, unsaved, when the user has set none)."""
    found = await session.get(NotificationSettings, (session.tenant_id, user_id))
    if found is None:
        found = NotificationSettings(user_id=user_id, channels=None, kinds={}, quiet_start=None, quiet_end=None, digest_at="09:00")
    return found


def _check_clock(value: str | None, field: str) -> None:
    if value is not None and not HHMM.match(value):
        raise ValidationError(f"{field} must be a time HH:MM (00:00 to 23:59), not {value!r}", field=field)


def _check_channels(known: dict[str, Any], channels: list[str] | None, field: str) -> None:
    if channels is None:
        return
    unknown = [c for c in channels if c not in known]
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ValidationError(f"unknown staff channel(s) {', '.join(unknown)} (staff channels: {names})", field=field)


async def update_settings(tx: Tx, user_id: uuid.UUID, data: SettingsInput) -> NotificationSettings:
    """Change a user's preferences; each given field replaces the stored one."""
    known = tx.runtime.staff_channels
    if data.channels is not msgspec.UNSET:
        _check_channels(known, data.channels, "channels")
    if data.kinds is not msgspec.UNSET:
        for kind, pref in data.kinds.items():
            if not KIND.match(kind) or len(kind) > 64:
                raise ValidationError(f"notification kind {kind!r} is not a kind name", field="kinds")
            if not isinstance(pref, dict) or set(pref) - KIND_KEYS:
                raise ValidationError(f"kinds.{kind} takes only {', '.join(sorted(KIND_KEYS))}", field="kinds")
            channels = pref.get("channels")
            if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
                raise ValidationError(f"kinds.{kind}.channels must be a list of channel names", field="kinds")
            _check_channels(known, channels, "kinds")
            for flag in ("digest", "muted"):
                if flag in pref and not isinstance(pref[flag], bool):
                    raise ValidationError(f"kinds.{kind}.{flag} must be true or false", field="kinds")
    for field in ("quiet_start", "quiet_end", "digest_at"):
        value = getattr(data, field)
        if value is not msgspec.UNSET:
            _check_clock(value, field)
    row = await tx.session.get(NotificationSettings, (tx.tenant_id, user_id))
    if row is None:
        row = NotificationSettings(user_id=user_id, channels=None, kinds={}, digest_at="09:00")
        tx.session.add(row)
    for field in ("channels", "kinds", "quiet_start", "quiet_end", "digest_at"):
        value = getattr(data, field)
        if value is not msgspec.UNSET:
            setattr(row, field, value)
    if (row.quiet_start is None) != (row.quiet_end is None):
        raise ValidationError("set both quiet_start and quiet_end, or neither", field="quietStart")
    row.updated_at = utcnow()
    await tx.session.flush()
    changed = [f for f in ("channels", "kinds", "quiet_start", "quiet_end", "digest_at") if getattr(data, f) is not msgspec.UNSET]
    audit(tx, "notification.preferences", "user", user_id, {"fields": changed})
    return row


# -- notifying --------------------------------------------------------------------------------------


def _check(data: NotificationInput) -> tuple[str, str | None]:
    if not KIND.match(data.kind) or len(data.kind) > 64:
        raise ValidationError(f"notification kind {data.kind!r} must be dotted lower-case words", field="kind")
    title = " ".join(data.title.split())
    if not 0 < len(title) <= 300:
        raise ValidationError("title must be 1 to 300 characters", field="title")
    body = data.body.strip() if data.body and data.body.strip() else None
    if body is not None and len(body) > MAX_BODY:
        raise ValidationError(f"body must be at most {MAX_BODY} characters", field="body")
    if not 0 < len(data.dedupe_key) <= 200:
        raise ValidationError("dedupe key must be 1 to 200 characters", field="dedupeKey")
    if data.link_type is not None and not LINK_TYPE.match(data.link_type):
        raise ValidationError(f"link type {data.link_type!r} must be a lower-case word", field="linkType")
    return title, body


async def notify(tx: Tx, data: NotificationInput) -> tuple[Notification, bool]:
    """Record a notification to a staff user and queue its deliveries (see the module docstring);
    returns ``(notification, created)``. Idempotent on ``dedupe_key``."""
    title, body = _check(data)
    session = tx.session
    existing = (await session.execute(select(Notification).where(Notification.dedupe_key == data.dedupe_key))).scalar_one_or_none()
    if existing is not None:
        return existing, False
    user = await session.get(User, (tx.tenant_id, data.user_id))
    if user is None:
        raise NotFoundError(f"user {data.user_id} not found")
    now = utcnow()
    row = Notification(
        id=new_id(),
        user_id=user.id,
        kind=data.kind,
        title=title,
        body=body,
        link_type=data.link_type,
        link_id=data.link_id,
        dedupe_key=data.dedupe_key,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    queued = await _queue_deliveries(tx, user, row, now) if user.active else 0
    tx.emit(
        "guanxi_notification_created",
        NotificationCreated(
            tenant_id=tx.tenant_id,
            actor=tx.ctx.actor,
            notification_id=row.id,
            user_id=user.id,
            kind=row.kind,
            title=row.title,
            body=row.body,
            link_type=row.link_type,
            link_id=row.link_id,
            created_at=row.created_at,
        ),
    )
    worker = tx.runtime.state.get("staff_worker")
    if queued and worker is not None:
        tx.after_commit(worker.wake)
    return row, True


async def _queue_deliveries(tx: Tx, user: User, row: Notification, now: dt.datetime) -> int:
    settings = await get_settings(tx.session, user.id)
    pref = (settings.kinds or {}).get(row.kind) or {}
    if pref.get("muted"):
        return 0
    wanted = pref.get("channels", settings.channels)
    digest = bool(pref.get("digest", False))
    tz = await user_zone(tx.session, user)
    when = next_digest(now, settings.digest_at, tz) if digest else after_quiet_hours(now, settings.quiet_start, settings.quiet_end, tz)
    queued = 0
    # the one place a staff channel is chosen for a user: a per-tenant plugin check goes here
    # (the offering plugin is tx.runtime.staff_channel_owners[name])
    for name, channel in sorted(tx.runtime.staff_channels.items()):
        if wanted is not None and name not in wanted:
            continue
        address = await channel.recipient(tx.session, user.id)
        if not address:
            continue  # not reachable there: the in-app notification stands alone
        tx.session.add(
            NotificationDelivery(
                id=new_id(),
                notification_id=row.id,
                user_id=user.id,
                channel=name,
                recipient=address,
                digest=digest,
                status="queued",
                attempts=0,
                next_attempt_at=when,
                created_at=now,
            )
        )
        queued += 1
    await tx.session.flush()
    return queued


# -- reading ----------------------------------------------------------------------------------------


async def list_notifications(session: TenantSession, user_id: uuid.UUID, *, first: int, unread_only: bool = False) -> list[Notification]:
    """A user's notifications: unread first, then newest first."""
    stmt = (
        select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(Notification.read_at.is_not(None), Notification.created_at.desc(), Notification.id.desc())
        .limit(first)
    )
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return list((await session.scalars(stmt)).all())


async def unread_count(session: TenantSession, user_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def mark_read(tx: Tx, user_id: uuid.UUID, ids: list[uuid.UUID] | None) -> int:
    """Mark the user's notifications read (these, or all when ``ids`` is None); returns how many
    changed. Another user's ids are ignored, not reported."""
    stmt = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None)).values(read_at=utcnow())
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await tx.session.execute(stmt.execution_options(synchronize_session=False))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    audit(tx, "notification.read", "user", user_id, {"count": count, "all": ids is None})
    return count
