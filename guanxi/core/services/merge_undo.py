"""Undoing a merge. :func:`record_merge` runs inside the merge, before anything moves, and keeps
what the merge will change: the ids of the rows it moves to the survivor, the rows it deletes
(tags, consents and custom field values the survivor already had), the survivor's fields
before, and each plugin's own record (``guanxi_merge_record``). :func:`undo_merge` gives the
merged customer all of it back (plugins through ``guanxi_merge_undone``) while the survivor has
not been merged again, nor taken in another customer since."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update

from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import (
    Consent,
    Customer,
    CustomerFieldValue,
    CustomerMerge,
    CustomerTag,
    Identity,
    Interaction,
    StageChange,
    Task,
    utcnow,
)
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import _sync_contact_points, get_customer, search_text

#: rows moved whole from the merged customer to the survivor, by record key
MOVED: dict[str, Any] = {"identities": Identity, "interactions": Interaction, "tasks": Task, "stage_changes": StageChange}
_FILLABLE = ("company", "owner_id", "source")
_CHUNK = 500


def row_json(row: Any) -> dict[str, Any]:
    """A row's columns (tenant left out) as JSON values."""
    out: dict[str, Any] = {}
    for attr in type(row).__mapper__.column_attrs:
        if attr.key == "tenant_id":
            continue
        value = getattr(row, attr.key)
        if isinstance(value, uuid.UUID | Decimal):
            value = str(value)
        elif isinstance(value, dt.date):  # datetime too
            value = value.isoformat()
        out[attr.key] = value
    return out


def row_values(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The column values of a row saved by :func:`row_json`, typed again."""
    out: dict[str, Any] = {}
    for attr in model.__mapper__.column_attrs:
        if attr.key not in data:
            continue
        value = data[attr.key]
        column_type = attr.columns[0].type
        column_type = getattr(column_type, "impl", column_type)  # a TypeDecorator's own type
        try:
            kind = column_type.python_type
        except NotImplementedError:  # pragma: no cover - every core column type has one
            kind = object
        if value is not None and isinstance(value, str):
            if kind is uuid.UUID:
                value = uuid.UUID(value)
            elif kind is dt.datetime:
                value = dt.datetime.fromisoformat(value)
            elif kind is dt.date:
                value = dt.date.fromisoformat(value)
            elif kind is Decimal:
                value = Decimal(value)
        out[attr.key] = value
    return out


async def _ids(tx: Tx, model: Any, customer_id: uuid.UUID) -> list[str]:
    return [str(i) for i in (await tx.session.execute(select(model.id).where(model.customer_id == customer_id))).scalars()]


async def record_merge(
    tx: Tx, survivor: Customer, merged: Customer, survivor_tags: set[uuid.UUID], survivor_consents: set[str], filled: list[str]
) -> CustomerMerge:
    """Keep what the coming merge of ``merged`` into ``survivor`` changes (call before it moves anything)."""
    s = tx.session
    moved = {key: await _ids(tx, model, merged.id) for key, model in MOVED.items()}
    tag_rows = (await s.execute(select(CustomerTag).where(CustomerTag.customer_id == merged.id))).scalars().all()
    consent_rows = (await s.execute(select(Consent).where(Consent.customer_id == merged.id))).scalars().all()
    survivor_fields = set(
        (await s.execute(select(CustomerFieldValue.field_id).where(CustomerFieldValue.customer_id == survivor.id))).scalars()
    )
    value_rows = (await s.execute(select(CustomerFieldValue).where(CustomerFieldValue.customer_id == merged.id))).scalars().all()
    plugin_records = await plugins.collect(
        (await tx.hooks()).guanxi_merge_record, runtime=tx.runtime, session=s, survivor_id=survivor.id, merged_id=merged.id
    )
    record = {
        "moved": moved,
        "tags_moved": [str(r.tag_id) for r in tag_rows if r.tag_id not in survivor_tags],
        "tags_deleted": [row_json(r) for r in tag_rows if r.tag_id in survivor_tags],
        "consents_moved": [r.channel for r in consent_rows if r.channel not in survivor_consents],
        "consents_deleted": [row_json(r) for r in consent_rows if r.channel in survivor_consents],
        "values_moved": [str(r.id) for r in value_rows if r.field_id not in survivor_fields],
        "values_deleted": [row_json(r) for r in value_rows if r.field_id in survivor_fields],
        "filled": {f: str(getattr(merged, f)) for f in filled},
        "survivor_before": {
            "phones": list(survivor.phones),
            "emails": list(survivor.emails),
            "attributes": dict(survivor.attributes),
            "last_interaction_at": survivor.last_interaction_at.isoformat() if survivor.last_interaction_at else None,
        },
        "plugins": dict(plugin_records),
    }
    row = CustomerMerge(
        id=new_id(), survivor_id=survivor.id, merged_id=merged.id, merged_at=utcnow(), actor_id=tx.ctx.actor.user_id, record=record
    )
    s.add(row)
    return row


async def _move_back(tx: Tx, model: Any, ids: list[str], survivor_id: uuid.UUID, merged_id: uuid.UUID) -> int:
    done = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = [uuid.UUID(i) for i in ids[start : start + _CHUNK]]
        result: Any = await tx.session.execute(
            update(model).where(model.id.in_(chunk), model.customer_id == survivor_id).values(customer_id=merged_id)
        )
        done += int(result.rowcount or 0)
    return done


async def undo_merge(tx: Tx, merged_id: uuid.UUID) -> tuple[Customer, Customer]:
    """Undo the merge that made ``merged_id`` a tombstone; returns (restored, survivor)."""
    s = tx.session
    merged = await get_customer(s, merged_id, follow_merges=False)
    if merged.merged_into_id is None:
        raise ValidationError(f"customer {merged_id} is not merged into another", field="mergedId")
    found = (
        await s.execute(
            select(CustomerMerge)
            .where(CustomerMerge.merged_id == merged.id, CustomerMerge.undone_at.is_(None))
            .order_by(CustomerMerge.merged_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if found is None or found.survivor_id != merged.merged_into_id:
        raise ConflictError(f"the merge of customer {merged_id} kept no record to undo it with")
    survivor = await get_customer(s, found.survivor_id, follow_merges=False)
    if survivor.merged_into_id is not None:
        raise ConflictError(f"the survivor {survivor.id} was merged into {survivor.merged_into_id} since; undo that merge first")
    later = (
        await s.execute(
            select(CustomerMerge.merged_id).where(
                CustomerMerge.survivor_id == survivor.id, CustomerMerge.undone_at.is_(None), CustomerMerge.merged_at > found.merged_at
            )
        )
    ).first()
    if later is not None:
        raise ConflictError(f"the survivor {survivor.id} took in customer {later[0]} since; undo that merge first")
    rec = found.record
    counts: dict[str, int] = {}
    for key, model in MOVED.items():
        counts[key] = await _move_back(tx, model, rec["moved"].get(key, []), survivor.id, merged.id)
    tags_moved = [uuid.UUID(i) for i in rec["tags_moved"]]
    if tags_moved:
        await s.execute(
            update(CustomerTag)
            .where(CustomerTag.customer_id == survivor.id, CustomerTag.tag_id.in_(tags_moved))
            .values(customer_id=merged.id)
        )
    if rec["consents_moved"]:
        await s.execute(
            update(Consent)
            .where(Consent.customer_id == survivor.id, Consent.channel.in_(rec["consents_moved"]))
            .values(customer_id=merged.id)
        )
    counts["values"] = await _move_back(tx, CustomerFieldValue, rec["values_moved"], survivor.id, merged.id)
    for model, key in ((CustomerTag, "tags_deleted"), (Consent, "consents_deleted"), (CustomerFieldValue, "values_deleted")):
        rows = [{**row_values(model, r), "tenant_id": tx.tenant_id} for r in rec[key]]
        if rows:
            await s.execute(insert(model), rows)
    counts["tags"] = len(tags_moved) + len(rec["tags_deleted"])
    counts["consents"] = len(rec["consents_moved"]) + len(rec["consents_deleted"])
    _restore_survivor(survivor, merged, rec)
    merged.merged_into_id = None
    merged.merged_at = None
    for c in (survivor, merged):
        nicks = (await s.execute(select(Identity.nickname).where(Identity.customer_id == c.id))).scalars()
        c.search_text = search_text(c, [n for n in nicks if n])
    survivor.updated_at = utcnow()
    await s.flush()
    await _sync_contact_points(s, survivor)
    await _sync_contact_points(s, merged)
    own = {name: {"record": r} for name, r in (rec.get("plugins") or {}).items()}
    given_back = await plugins.collect_each(
        (await tx.hooks()).guanxi_merge_undone, own, runtime=tx.runtime, session=s, survivor_id=survivor.id, merged_id=merged.id
    )
    found.undone_at = utcnow()
    audit(tx, "customer.unmerge", "customer", merged.id, {"survivor_id": survivor.id, **counts, "plugins": dict(given_back)})
    return merged, survivor


def _restore_survivor(survivor: Customer, merged: Customer, rec: dict[str, Any]) -> None:
    """Take back from the survivor what the merge filled in from the merged customer, unless it
    was changed since."""
    for field, value in rec["filled"].items():
        current = getattr(survivor, field)
        if current is not None and str(current) == value:
            setattr(survivor, field, None)
    before = rec["survivor_before"]
    for name in ("phones", "emails"):
        added = set(getattr(merged, name)) - set(before[name])
        setattr(survivor, name, [v for v in getattr(survivor, name) if v not in added])
    attributes = dict(survivor.attributes)
    for key, value in merged.attributes.items():
        if key not in before["attributes"] and attributes.get(key) == value:
            attributes.pop(key)
    survivor.attributes = attributes
    at = before["last_interaction_at"]
    if survivor.last_interaction_at is not None and merged.last_interaction_at == survivor.last_interaction_at:
        survivor.last_interaction_at = dt.datetime.fromisoformat(at) if at else None
