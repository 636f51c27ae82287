"""Merging two customers into one survivor, with a dry run."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import func, select, update

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.events import CustomersMerged
from guanxi.core.domain.models import (
    Consent,
    ContactPoint,
    CustomerFieldValue,
    CustomerTag,
    Identity,
    Interaction,
    StageChange,
    Task,
    utcnow,
)
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import _sync_contact_points, get_customer, search_text


class MergePlan(msgspec.Struct, frozen=True, kw_only=True):
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    identities: int
    interactions: int
    tags: int
    tasks: int
    stage_changes: int
    consents: int
    filled_fields: list[str]
    dry_run: bool


async def _count(tx: Tx, model: type, merged_id: uuid.UUID) -> int:
    col = model.customer_id  # type: ignore[attr-defined]
    return int((await tx.session.execute(select(func.count()).select_from(model).where(col == merged_id))).scalar_one())


async def merge_customers(tx: Tx, survivor_id: uuid.UUID, merged_id: uuid.UUID, *, dry_run: bool = False) -> MergePlan:
    """Move identities, interactions, tags, tasks, stage history and consents of ``merged_id``
    to ``survivor_id``; fill the survivor's empty fields and union phones and emails; leave the
    merged customer as a tombstone pointing at the survivor. ``dry_run`` only reports."""
    session = tx.session
    survivor = await get_customer(session, survivor_id)
    merged = await get_customer(session, merged_id, follow_merges=False)
    if merged.merged_into_id is not None:
        raise ValidationError(f"customer {merged_id} was already merged into {merged.merged_into_id}", field="mergedId")
    if survivor.id == merged.id:
        raise ValidationError("a customer cannot be merged into itself", field="mergedId")
    survivor_tags = set((await session.execute(select(CustomerTag.tag_id).where(CustomerTag.customer_id == survivor.id))).scalars())
    merged_tags = set((await session.execute(select(CustomerTag.tag_id).where(CustomerTag.customer_id == merged.id))).scalars())
    survivor_consents = set((await session.execute(select(Consent.channel).where(Consent.customer_id == survivor.id))).scalars())
    merged_consents = set((await session.execute(select(Consent.channel).where(Consent.customer_id == merged.id))).scalars())
    filled = [f for f in ("company", "owner_id", "source") if getattr(survivor, f) is None and getattr(merged, f) is not None]
    plan = MergePlan(
        survivor_id=survivor.id,
        merged_id=merged.id,
        identities=await _count(tx, Identity, merged.id),
        interactions=await _count(tx, Interaction, merged.id),
        tags=len(merged_tags - survivor_tags),
        tasks=await _count(tx, Task, merged.id),
        stage_changes=await _count(tx, StageChange, merged.id),
        consents=len(merged_consents - survivor_consents),
        filled_fields=filled + [f for f in ("phones", "emails") if set(getattr(merged, f)) - set(getattr(survivor, f))],
        dry_run=dry_run,
    )
    if dry_run:
        return plan
    from guanxi.core.services.merge_undo import record_merge

    await record_merge(tx, survivor, merged, survivor_tags, survivor_consents, filled)
    for model in (Identity, Interaction, Task, StageChange):
        await session.execute(update(model).where(model.customer_id == merged.id).values(customer_id=survivor.id))
    for tag_id in merged_tags - survivor_tags:
        await session.execute(
            update(CustomerTag).where(CustomerTag.customer_id == merged.id, CustomerTag.tag_id == tag_id).values(customer_id=survivor.id)
        )
    for channel in merged_consents - survivor_consents:
        await session.execute(
            update(Consent).where(Consent.customer_id == merged.id, Consent.channel == channel).values(customer_id=survivor.id)
        )
    from sqlalchemy import delete

    # custom fields: the merged customer's value fills a field the survivor has no value for
    survivor_fields = select(CustomerFieldValue.field_id).where(CustomerFieldValue.customer_id == survivor.id)
    await session.execute(
        update(CustomerFieldValue)
        .where(CustomerFieldValue.customer_id == merged.id, CustomerFieldValue.field_id.not_in(survivor_fields))
        .values(customer_id=survivor.id)
    )
    await session.execute(delete(CustomerFieldValue).where(CustomerFieldValue.customer_id == merged.id))
    await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == merged.id))
    await session.execute(delete(Consent).where(Consent.customer_id == merged.id))
    await session.execute(delete(ContactPoint).where(ContactPoint.customer_id == merged.id))
    for field in filled:
        setattr(survivor, field, getattr(merged, field))
    survivor.phones = list(dict.fromkeys([*survivor.phones, *merged.phones]))
    survivor.emails = list(dict.fromkeys([*survivor.emails, *merged.emails]))
    survivor.attributes = {**merged.attributes, **survivor.attributes}
    if merged.last_interaction_at and (survivor.last_interaction_at is None or merged.last_interaction_at > survivor.last_interaction_at):
        survivor.last_interaction_at = merged.last_interaction_at
    nicks = (await session.execute(select(Identity.nickname).where(Identity.customer_id == survivor.id))).scalars()
    survivor.search_text = search_text(survivor, [n for n in nicks if n])
    survivor.updated_at = utcnow()
    merged.merged_into_id = survivor.id
    merged.merged_at = utcnow()
    merged.search_text = ""
    await session.flush()
    await _sync_contact_points(session, survivor)
    moved = {k: getattr(plan, k) for k in ("identities", "interactions", "tags", "tasks", "stage_changes", "consents")}
    audit(tx, "customer.merge", "customer", survivor.id, {"merged_id": merged.id, **moved})
    tx.emit(
        "guanxi_customers_merged",
        CustomersMerged(tenant_id=tx.tenant_id, actor=tx.ctx.actor, survivor_id=survivor.id, merged_id=merged.id, moved=moved),
    )
    return plan
