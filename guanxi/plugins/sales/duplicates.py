"""Duplicate suggestions: other customers that look like the same person as one customer, with
the reasons and a confidence, found in SQL through the indexed contact points, identities'
union ids and the display name. Only customers the caller may see are suggested."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import and_, func, select

from guanxi.core.domain.models import ContactPoint, Customer, Identity
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession

#: confidence of each reason alone; several reasons combine as 1 - Π(1 - c)
CONFIDENCE = {"phone": 0.9, "email": 0.85, "union_id": 0.95, "name": 0.4}


@dataclass
class Suggestion:
    customer_id: uuid.UUID
    reasons: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        missing = 1.0
        for reason in self.reasons:
            missing *= 1 - CONFIDENCE[reason]
        return round(1 - missing, 4)


async def suggestions(session: TenantSession, customer_id: uuid.UUID, first: int = 10) -> list[Suggestion]:
    """Live customers sharing a phone, an e-mail or a union id with the customer, or with the same
    display name (case and spaces ignored), most likely first."""
    customer = await get_customer(session, customer_id)
    found: dict[uuid.UUID, Suggestion] = {}

    def add(other: uuid.UUID, reason: str) -> None:
        s = found.setdefault(other, Suggestion(other))
        if reason not in s.reasons:
            s.reasons.append(reason)

    mine = select(ContactPoint.kind, ContactPoint.value).where(ContactPoint.customer_id == customer.id).subquery()
    live = and_(Customer.tenant_id == ContactPoint.tenant_id, Customer.id == ContactPoint.customer_id, Customer.merged_into_id.is_(None))
    shared = (
        select(ContactPoint.customer_id, ContactPoint.kind)
        .join(mine, and_(mine.c.kind == ContactPoint.kind, mine.c.value == ContactPoint.value))
        .join(Customer, live)
        .where(ContactPoint.customer_id != customer.id)
    )
    for other, kind in (await session.execute(shared)).all():
        add(other, kind)
    unions = select(Identity.union_id).where(Identity.customer_id == customer.id, Identity.union_id.is_not(None))
    same_union = (
        select(Identity.customer_id)
        .join(Customer, and_(Customer.tenant_id == Identity.tenant_id, Customer.id == Identity.customer_id))
        .where(Identity.union_id.in_(unions), Identity.customer_id != customer.id, Customer.merged_into_id.is_(None))
    )
    for (other,) in (await session.execute(same_union)).all():
        add(other, "union_id")
    name = "".join(customer.display_name.lower().split())
    if name:
        same_name = select(Customer.id).where(
            func.lower(func.replace(Customer.display_name, " ", "")) == name,
            Customer.id != customer.id,
            Customer.merged_into_id.is_(None),
            Customer.erased_at.is_(None),
        )
        for (other,) in (await session.execute(same_name)).all():
            add(other, "name")
    ranked = sorted(found.values(), key=lambda s: (-s.confidence, s.customer_id))
    return ranked[:first]
