"""Personal-data rights (PIPL / GDPR): export everything held on a person, erase it.

Erasure keeps what aggregates need: the customer row stays (anonymised, with its stage and
stage history, so funnel counts do not move), interactions keep kind, channel, direction and
time (scores and activity counts stay valid) but lose their text and payload, and identities keep
their row under a placeholder id. Names, phones, e-mails, addresses, message texts, raw provider
payloads and profile data are removed from every core table; each enabled plugin erases its own
data through ``guanxi_erase_customer`` in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, cast, delete, or_, select, update

from guanxi.core.base.errors import NotFoundError
from guanxi.core.domain.models import (
    AuditEvent,
    Consent,
    ContactPoint,
    Customer,
    CustomerFieldValue,
    CustomerTag,
    Identity,
    InboxEvent,
    Interaction,
    Notification,
    NotificationDelivery,
    NotificationSettings,
    OutboxMessage,
    Stage,
    StageChange,
    Tag,
    Task,
    User,
    utcnow,
)
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.audit import PERSONAL_FIELDS, audit
from guanxi.core.services.customers import get_customer
from guanxi.core.services.fields import field_values_of
from guanxi.core.services.files import erase_files, files_of
from guanxi.core.storage.tenancy import TenantSession

ERASED_NAME = "Erased customer"
ERASED = "[erased]"


def _jsonable_field(value: Any) -> Any:
    """A custom field's typed value as JSON (decimals and dates as text, user ids as text)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date | uuid.UUID):
        return str(value)
    return value


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _with_tombstones(session: TenantSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and every customer merged into it (directly or through a chain)."""
    ids = [customer_id]
    frontier = [customer_id]
    while frontier:
        merged = (await session.scalars(select(Customer.id).where(Customer.merged_into_id.in_(frontier)))).all()
        frontier = [m for m in merged if m not in ids]
        ids.extend(frontier)
    return ids


def personal_data_gaps(runtime: Runtime) -> list[str]:
    """Enabled plugins whose tables hold personal data (columns with ``info=PERSONAL``) but that
    do not implement both ``guanxi_export_customer_data`` and ``guanxi_erase_customer``: one
    line per plugin saying what is missing (reported by ``guanxi plugins --check``)."""
    from guanxi.core.domain.models import Base

    hooks = {
        "guanxi_export_customer_data": {i.plugin_name for i in runtime.pm.hook.guanxi_export_customer_data.get_hookimpls()},
        "guanxi_erase_customer": {i.plugin_name for i in runtime.pm.hook.guanxi_erase_customer.get_hookimpls()},
    }
    problems = []
    for plugin in sorted(runtime.enabled_plugins, key=len, reverse=True):
        personal = sorted(
            f"{table.name}.{column.name}"
            for table in Base.metadata.tables.values()
            if table.name.startswith(f"{plugin}_")
            for column in table.columns
            if column.info.get("personal")
        )
        missing = [hook for hook, implementers in hooks.items() if plugin not in implementers]
        if personal and missing:
            problems.append(f"plugin {plugin!r} stores personal data ({', '.join(personal)}) but does not implement {', '.join(missing)}")
    return sorted(problems)


async def export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any]:
    """Everything held on a person, core and plugins, as JSON-compatible values."""
    customer = await get_customer(session, customer_id)
    ids = await _with_tombstones(session, customer.id)
    stages = {s.id: s.key for s in (await session.scalars(select(Stage))).all()}

    async def rows(model: Any, *order: Any) -> list[Any]:
        return list((await session.scalars(select(model).where(model.customer_id.in_(ids)).order_by(*order))).all())

    tag_rows = (
        await session.execute(
            select(Tag.group_name, Tag.name).join(CustomerTag, CustomerTag.tag_id == Tag.id).where(CustomerTag.customer_id.in_(ids))
        )
    ).all()
    field_values = await field_values_of(session, ids)
    data: dict[str, Any] = {
        "exportedAt": utcnow().isoformat(),
        "customer": {
            "id": str(customer.id),
            "displayName": customer.display_name,
            "company": customer.company,
            "phones": customer.phones,
            "emails": customer.emails,
            "attributes": customer.attributes,
            "source": customer.source,
            "stage": stages.get(customer.stage_id) if customer.stage_id else None,
            "ownerId": str(customer.owner_id) if customer.owner_id else None,
            "createdAt": _iso(customer.created_at),
            "mergedCustomerIds": [str(i) for i in ids[1:]],
        },
        "identities": [
            {
                "channel": i.channel,
                "externalId": i.external_id,
                "unionId": i.union_id,
                "nickname": i.nickname,
                "avatarUrl": i.avatar_url,
                "followerCount": i.follower_count,
                "profile": i.profile,
                "createdAt": _iso(i.created_at),
            }
            for i in await rows(Identity, Identity.created_at)
        ],
        "interactions": [
            {
                "channel": i.channel,
                "kind": i.kind,
                "direction": i.direction,
                "occurredAt": _iso(i.occurred_at),
                "text": i.text,
                "payload": i.payload,
            }
            for i in await rows(Interaction, Interaction.occurred_at, Interaction.id)
        ],
        "tags": sorted(f"{g}/{n}" if g else n for g, n in tag_rows),
        "tasks": [
            {"title": t.title, "notes": t.notes, "dueAt": _iso(t.due_at), "doneAt": _iso(t.done_at)}
            for t in await rows(Task, Task.created_at, Task.id)
        ],
        "consents": [
            {"channel": c.channel, "status": c.status, "source": c.source, "changedAt": _iso(c.changed_at)}
            for c in await rows(Consent, Consent.channel)
        ],
        "stageHistory": [
            {
                "from": stages.get(s.from_stage_id) if s.from_stage_id else None,
                "to": stages.get(s.to_stage_id),
                "at": _iso(s.changed_at),
                "reason": s.reason,
            }
            for s in await rows(StageChange, StageChange.changed_at, StageChange.id)
        ],
        "fields": {d.key: _jsonable_field(v) for cid in reversed(ids) for d, v in field_values.get(cid, [])},
        "messages": [
            {"channel": m.channel, "recipient": m.recipient, "text": m.text, "status": m.status, "createdAt": _iso(m.created_at)}
            for m in await rows(OutboxMessage, OutboxMessage.created_at, OutboxMessage.id)
        ],
    }
    data["files"] = await files_of(session, ids)
    sections = await plugins.collect(runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=session, customer_id=customer.id)
    data["plugins"] = {name: section for name, section in sections}
    return data


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _json_not(column: Any, empty: str) -> Any:
    """``column`` (JSON) is not the empty value ``empty`` (``{}`` or ``[]``), in any dialect."""
    return cast(column, String) != empty


async def erase_customer(tx: Tx, customer_id: uuid.UUID) -> dict[str, int]:
    """Erase a person's personal data across core and plugins, in the caller's transaction
    (a plugin failing undoes everything). Returns what was erased, by kind: only what still held
    personal data, so erasing an erased customer again reports zero everywhere. Audited."""
    session = tx.session
    customer = await get_customer(session, customer_id)
    ids = await _with_tombstones(session, customer.id)
    people = (await session.scalars(select(Customer).where(Customer.id.in_(ids)))).all()
    identities = (await session.scalars(select(Identity).where(Identity.customer_id.in_(ids)))).all()
    # values that may also sit in raw provider payloads not linked to the customer
    needles = (
        {v for c in people for v in (*c.phones, *c.emails)}
        | {i.external_id for i in identities}
        | {i.union_id for i in identities if i.union_id}
    )
    # what plugins need to find rows keyed by a provider's user id, before the identities are blanked
    former = [(i.channel, i.external_id, i.union_id) for i in identities]
    # Only what still holds personal data is changed and counted, so erasing again reports zeros.
    counts: dict[str, int] = {}
    now = utcnow()
    blank_person: tuple[Any, ...] = (ERASED_NAME, None, [], [], {}, "")
    people_left = [
        p
        for p in people
        if p.erased_at is None or (p.display_name, p.company, p.phones, p.emails, p.attributes, p.search_text) != blank_person
    ]
    for person in people_left:
        person.display_name = ERASED_NAME
        person.company = None
        person.phones = []
        person.emails = []
        person.attributes = {}
        person.search_text = ""
        person.erased_at = person.erased_at or now
        person.updated_at = now
    counts["customers"] = len(people_left)
    counts["contact_points"] = _rows(await session.execute(delete(ContactPoint).where(ContactPoint.customer_id.in_(ids))))
    counts["field_values"] = _rows(await session.execute(delete(CustomerFieldValue).where(CustomerFieldValue.customer_id.in_(ids))))
    # a merge's undo record holds the person's phones, e-mails and rows: erased, the merge stays
    from guanxi.core.domain.models import CustomerMerge

    merges = _rows(
        await session.execute(delete(CustomerMerge).where(CustomerMerge.survivor_id.in_(ids) | CustomerMerge.merged_id.in_(ids)))
    )
    if merges:
        counts["merge_records"] = merges
    identities_left = [
        i for i in identities if i.external_id != f"erased:{i.id.hex}" or i.union_id or i.nickname or i.avatar_url or i.profile
    ]
    for identity in identities_left:
        identity.external_id = f"erased:{identity.id.hex}"
        identity.union_id = None
        identity.nickname = None
        identity.avatar_url = None
        identity.profile = {}
        identity.updated_at = now
    counts["identities"] = len(identities_left)
    counts["interactions"] = _rows(
        await session.execute(
            update(Interaction)
            .where(Interaction.customer_id.in_(ids), or_(Interaction.text.is_not(None), _json_not(Interaction.payload, "{}")))
            .values(text=None, payload={})
        )
    )
    counts["tasks"] = _rows(
        await session.execute(
            update(Task)
            .where(Task.customer_id.in_(ids), or_(Task.title != ERASED, Task.notes.is_not(None)))
            .values(title=ERASED, notes=None)
        )
    )
    counts["messages"] = _rows(
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.customer_id.in_(ids),
                or_(OutboxMessage.text.is_not(None), OutboxMessage.recipient != ERASED, _json_not(OutboxMessage.attachments, "[]")),
            )
            .values(text=None, attachments=[], recipient=ERASED)
        )
    )
    raw = [InboxEvent.customer_id.in_(ids)] + [cast(InboxEvent.event, String).contains(n, autoescape=True) for n in sorted(needles)]
    counts["inbox_events"] = _rows(
        await session.execute(update(InboxEvent).where(or_(*raw), _json_not(InboxEvent.event, "{}")).values(event={}))
    )
    # the trail about the person: entries on the customer and on their tasks, identities, messages
    task_ids = (await session.scalars(select(Task.id).where(Task.customer_id.in_(ids)))).all()
    # staff notifications about the person or their tasks name them (a reminder's title and body)
    about_them = or_(
        and_(Notification.link_type == "customer", Notification.link_id.in_(ids)),
        and_(Notification.link_type == "task", Notification.link_id.in_(task_ids)),
    )
    counts["notifications"] = (await session.execute(update(Notification).where(about_them).values(title=ERASED, body=None))).rowcount or 0  # type: ignore[attr-defined]
    about = [*ids, *task_ids, *(i.id for i in identities)]
    trail = (await session.scalars(select(AuditEvent).where(AuditEvent.object_id.in_(about)))).all()
    counts["audit_events"] = 0
    for event in trail:
        blanked = {k: (ERASED if k in PERSONAL_FIELDS else v) for k, v in event.changes.items()}
        if blanked != event.changes:
            event.changes = blanked
            counts["audit_events"] += 1
    counts["files"] = await erase_files(tx, ids)
    await session.flush()
    for name, erased in await plugins.collect(
        tx.runtime.pm.hook.guanxi_erase_customer, runtime=tx.runtime, session=session, customer_id=customer.id, identities=former
    ):
        for kind, n in erased.items():
            counts[f"{name}.{kind}"] = int(n)
    audit(tx, "customer.erase", "customer", customer.id, {"erased": counts})
    return counts


# -- staff members --------------------------------------------------------------------------------


async def export_user_data(session: TenantSession, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything core holds on a staff member as a person: the profile, notification
    preferences, notifications and their deliveries."""
    user = await session.get(User, (session.tenant_id, user_id))
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    settings = await session.get(NotificationSettings, (session.tenant_id, user_id))
    rows = (await session.scalars(select(Notification).where(Notification.user_id == user_id).order_by(Notification.created_at))).all()
    deliveries = (
        await session.scalars(
            select(NotificationDelivery).where(NotificationDelivery.user_id == user_id).order_by(NotificationDelivery.created_at)
        )
    ).all()
    return {
        "exportedAt": utcnow().isoformat(),
        "user": {
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "role": user.role,
            "team": user.team,
            "timeZone": user.time_zone,
            "active": user.active,
            "createdAt": _iso(user.created_at),
        },
        "notificationSettings": None
        if settings is None
        else {
            "channels": settings.channels,
            "kinds": settings.kinds,
            "quietStart": settings.quiet_start,
            "quietEnd": settings.quiet_end,
            "digestAt": settings.digest_at,
        },
        "notifications": [
            {
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "linkType": n.link_type,
                "linkId": str(n.link_id) if n.link_id else None,
                "createdAt": _iso(n.created_at),
                "readAt": _iso(n.read_at),
            }
            for n in rows
        ],
        "notificationDeliveries": [
            {"channel": d.channel, "recipient": d.recipient, "status": d.status, "createdAt": _iso(d.created_at), "sentAt": _iso(d.sent_at)}
            for d in deliveries
        ],
    }


async def erase_user_data(tx: Tx, user_id: uuid.UUID) -> dict[str, int]:
    """Erase a staff member's personal data: notifications, their deliveries and preferences
    are deleted, and the user row is deactivated under a placeholder name and address (customers
    and tasks they own keep pointing at it, so counts by owner stay). Audited."""
    session = tx.session
    user = await session.get(User, (tx.tenant_id, user_id))
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    counts: dict[str, int] = {}
    counts["notification_deliveries"] = (
        await session.execute(delete(NotificationDelivery).where(NotificationDelivery.user_id == user_id))
    ).rowcount or 0  # type: ignore[attr-defined]
    counts["notifications"] = (await session.execute(delete(Notification).where(Notification.user_id == user_id))).rowcount or 0  # type: ignore[attr-defined]
    counts["notification_settings"] = (
        await session.execute(delete(NotificationSettings).where(NotificationSettings.user_id == user_id))
    ).rowcount or 0  # type: ignore[attr-defined]
    user.name, user.email, user.team, user.time_zone, user.active = ERASED, f"erased-{user.id.hex}@erased.invalid", None, None, False
    counts["users"] = 1
    await session.flush()
    audit(tx, "user.erase", "user", user.id, {"erased": counts})
    return counts
