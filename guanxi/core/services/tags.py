"""Tags on customers. A tag is named ``name`` or ``group/name``; missing tags are created."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select

from guanxi.core.base.errors import ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import TagsChanged
from guanxi.core.domain.models import CustomerTag, Tag, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession


def split_tag(label: str) -> tuple[str, str]:
    """``"行业/教育"`` → ``("行业", "教育")``; ``"vip"`` → ``("", "vip")``."""
    group, _, name = label.strip().rpartition("/")
    group, name = group.strip(), name.strip()
    if not name or len(name) > 100 or len(group) > 100:
        raise ValidationError(f"tag {label!r} must be 'name' or 'group/name', each 1 to 100 characters", field="tags")
    return group, name


def tag_label(tag: Tag) -> str:
    return f"{tag.group_name}/{tag.name}" if tag.group_name else tag.name


async def ensure_tags(session: TenantSession, labels: list[str]) -> list[Tag]:
    wanted = list(dict.fromkeys(split_tag(label) for label in labels))
    tags: list[Tag] = []
    for group, name in wanted:
        tag = (await session.execute(select(Tag).where(Tag.group_name == group, Tag.name == name))).scalar_one_or_none()
        if tag is None:
            tag = Tag(id=new_id(), group_name=group, name=name, created_at=utcnow())
            session.add(tag)
            await session.flush()
        tags.append(tag)
    return tags


async def change_tags(
    tx: Tx, customer_id: uuid.UUID, *, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Add and remove tags; returns the labels actually added and removed."""
    session = tx.session
    customer = await get_customer(session, customer_id)
    current = {row.tag_id for row in (await session.execute(select(CustomerTag).where(CustomerTag.customer_id == customer.id))).scalars()}
    added: list[str] = []
    for tag in await ensure_tags(session, list(add)):
        if tag.id not in current:
            session.add(CustomerTag(customer_id=customer.id, tag_id=tag.id, tagged_at=utcnow(), actor_id=tx.ctx.actor.user_id))
            current.add(tag.id)
            added.append(tag_label(tag))
    removed: list[str] = []
    for label in remove:
        group, name = split_tag(label)
        found = (await session.execute(select(Tag).where(Tag.group_name == group, Tag.name == name))).scalar_one_or_none()
        if found is not None and found.id in current:
            await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer.id, CustomerTag.tag_id == found.id))
            current.discard(found.id)
            removed.append(tag_label(found))
    if added or removed:
        await session.flush()
        audit(tx, "customer.tags", "customer", customer.id, {"added": added, "removed": removed})
        tx.emit(
            "guanxi_tags_changed",
            TagsChanged(tenant_id=tx.tenant_id, actor=tx.ctx.actor, customer_id=customer.id, added=added, removed=removed),
        )
    return added, removed
