"""Staff handover (离职继承 / 在职继承): a departing or moving salesperson's customers, open tasks
and pool holds handed to another user, or back to a lead pool, in one audited transaction.
Other parts (open deals, WeCom follow relations) join through core's ``guanxi_staff_handover``
hook, called in the same transaction."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select, update

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.contracts import StaffHandover
from guanxi.core.domain.models import Customer, Task, User, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import CustomerPatch, update_customer
from guanxi.plugins.sales import pool
from guanxi.plugins.sales.models import SalesPoolLead, SalesPoolMove


class HandoverResult(msgspec.Struct, frozen=True, kw_only=True):
    customers: int
    tasks: int
    pool_holds: int
    #: what each plugin handed over through ``guanxi_staff_handover``, by plugin name
    plugins: dict[str, dict[str, int]]


async def _active_user(tx: Tx, user_id: uuid.UUID, field: str) -> User:
    user = (await tx.session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()
    if user is None:
        raise ValidationError(f"user {user_id} is not a user of this tenant", field=field)
    if field == "toUserId" and not user.active:
        raise ValidationError(f"user {user_id} is not active", field=field)
    return user


async def hand_over(
    tx: Tx,
    from_user_id: uuid.UUID,
    *,
    to_user_id: uuid.UUID | None,
    pool_key: str | None,
    customer_ids: list[uuid.UUID] | None,
    reason: str,
) -> HandoverResult:
    """Hand ``from_user_id``'s customers (all, or ``customer_ids`` among them) to ``to_user_id``
    or back to the pool ``pool_key`` (exactly one of the two): owners, open tasks (of those
    customers; of any customer when all are handed to a user) and pool holds move, then plugins
    hand over their part."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationError("say why the customers are handed over", field="reason")
    if (to_user_id is None) == (pool_key is None):
        raise ValidationError("give either toUserId or pool", field="toUserId")
    await _active_user(tx, from_user_id, "fromUserId")
    if to_user_id is not None:
        if to_user_id == from_user_id:
            raise ValidationError("the customers are this user's already", field="toUserId")
        await _active_user(tx, to_user_id, "toUserId")
    target = None if pool_key is None else await pool.pool_by_key(tx.session, pool_key)
    s = tx.session
    stmt = select(Customer.id).where(Customer.owner_id == from_user_id, Customer.merged_into_id.is_(None)).order_by(Customer.id)
    if customer_ids is not None:
        stmt = stmt.where(Customer.id.in_(customer_ids))
    ids = list((await s.execute(stmt)).scalars())
    if customer_ids is not None and len(ids) != len(set(customer_ids)):
        raise ValidationError("some customers are not this user's (or not visible to you)", field="customerIds")
    holds = 0
    if to_user_id is not None:
        for cid in ids:
            await update_customer(tx, cid, CustomerPatch(owner_id=to_user_id))
        held = (
            await s.execute(
                select(SalesPoolLead).where(
                    SalesPoolLead.customer_id.in_(ids), SalesPoolLead.holder_id == from_user_id, SalesPoolLead.status == "held"
                )
            )
        ).scalars()
        now = utcnow()
        for lead in held:
            lead.holder_id, lead.held_at, lead.warned_at = to_user_id, now, None
            s.add(SalesPoolMove(customer_id=lead.customer_id, pool_id=lead.pool_id, action="handover", user_id=to_user_id, reason=reason))
            holds += 1
    else:
        assert target is not None
        for cid in ids:
            await pool.put_in_pool(tx, cid, target.key, reason)
        holds = len(ids)
    open_tasks = update(Task).where(Task.assignee_id == from_user_id, Task.done_at.is_(None))
    if customer_ids is not None or to_user_id is None:
        open_tasks = open_tasks.where(Task.customer_id.in_(ids))
    moved_tasks = int((await s.execute(open_tasks.values(assignee_id=to_user_id))).rowcount or 0)  # type: ignore[attr-defined]
    await s.flush()
    event = StaffHandover(from_user_id=from_user_id, to_user_id=to_user_id, pool=pool_key, customer_ids=ids, reason=reason)
    joined = await plugins.collect((await tx.hooks()).guanxi_staff_handover, tx=tx, handover=event)
    result = HandoverResult(customers=len(ids), tasks=moved_tasks, pool_holds=holds, plugins=dict(joined))
    audit(
        tx,
        "sales.handover",
        "user",
        from_user_id,
        {"to_user_id": to_user_id, "pool": pool_key, "reason": reason, **msgspec.structs.asdict(result)},
    )
    return result
