"""Stage rules: a score crossing a threshold moves the customer (lead → MQL → SQL …), with the
rule as the StageChange's rule and reason; a moved customer without an owner gets one through
``guanxi_assign_owner`` (or this plugin's round-robin / least-loaded choice among the configured
roles), and the owner gets a follow-up task."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import and_, func, select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Customer, Stage, User, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services.customers import CustomerPatch, get_customer, set_stage, snapshot, update_customer
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.plugins.scoring.models import ScoringAssignment
from guanxi.plugins.scoring.settings import Assignment, ScoringSettings

log = logging.getLogger("guanxi.plugins.scoring")


def rule_name(index: int) -> str:
    return f"scoring.stage_rules[{index}]"


async def apply_stage_rules(tx: Tx, totals: dict[uuid.UUID, float], now: dt.datetime) -> int:
    """Move the customers whose new total reaches a rule's threshold; returns how many moved.
    Costs no statement when no total reaches the lowest threshold. ``now`` is the recompute's
    clock: hand-over tasks are due relative to it."""
    settings: ScoringSettings = tx.runtime.plugin_settings("scoring", tx.tenant_id)
    rules = settings.stage_rules
    if not rules or not totals:
        return 0
    lowest = min(r.min_score for r in rules)
    candidates = [cid for cid, total in totals.items() if total >= lowest]
    if not candidates:
        return 0
    froms = {r.from_stage for r in rules}
    rows = (
        await tx.session.execute(
            select(Customer.id, Stage.key)
            .join(Stage, and_(Stage.tenant_id == Customer.tenant_id, Stage.id == Customer.stage_id))
            .where(Customer.id.in_(candidates), Stage.key.in_(froms))
        )
    ).all()
    by_from = {r.from_stage: (i, r) for i, r in enumerate(rules)}
    moved = 0
    for customer_id, stage_key in rows:
        total = totals[customer_id]
        current, steps = stage_key, 0
        while current in by_from and steps < len(rules):
            index, rule = by_from[current]
            if total < rule.min_score:
                break
            reason = f"score {total:.1f} reached {rule.min_score:g} ({rule.from_stage} → {rule.to_stage})"
            try:
                await set_stage(tx, customer_id, rule.to_stage, rule=rule_name(index), reason=reason)
            except ValidationError as exc:
                log.warning("stage rule %s skipped: %s", rule_name(index), exc)
                break
            current, steps = rule.to_stage, steps + 1
        if steps:
            moved += 1
            await _hand_over(tx, customer_id, current, total, settings.assignment, now)
    return moved


async def _hand_over(tx: Tx, customer_id: uuid.UUID, stage_key: str, total: float, cfg: Assignment, now: dt.datetime) -> None:
    """Give a moved customer an owner (if it has none) and its owner a follow-up task."""
    customer = await get_customer(tx.session, customer_id)
    owner = customer.owner_id
    if owner is None:
        owner = await pick_owner(tx, customer, cfg)
        if owner is not None:
            await update_customer(tx, customer_id, CustomerPatch(owner_id=owner))
    title = cfg.task_title.format(stage=stage_key, score=round(total, 1))
    due = now + dt.timedelta(hours=cfg.task_due_hours)
    await create_task(tx, TaskInput(customer_id=customer_id, title=title, assignee_id=owner, due_at=due))


async def pick_owner(tx: Tx, customer: Customer, cfg: Assignment) -> uuid.UUID | None:
    """``guanxi_assign_owner`` first (another plugin's rule wins); else this plugin's strategy."""
    session = tx.session

    async def active(answer: object) -> bool:
        if not isinstance(answer, uuid.UUID):
            return False
        user = await session.get(User, (tx.tenant_id, answer))
        return user is not None and user.active

    chosen: uuid.UUID | None = await plugins.call_first(
        (await tx.hooks()).guanxi_assign_owner,
        accept=active,
        runtime=tx.runtime,
        session=session,
        customer=snapshot(customer),
        arrival=None,
    )
    if chosen is not None:
        return chosen
    eligible = (User.active.is_(True), User.role.in_(cfg.roles))
    if cfg.strategy == "least_loaded":
        load = (
            select(Customer.owner_id, func.count().label("n"))
            .where(Customer.merged_into_id.is_(None), Customer.owner_id.is_not(None))
            .group_by(Customer.owner_id)
            .subquery()
        )
        stmt = (
            select(User.id)
            .outerjoin(load, load.c.owner_id == User.id)
            .where(*eligible)
            .order_by(func.coalesce(load.c.n, 0), User.created_at, User.id)
            .limit(1)
        )
        return (await session.execute(stmt)).scalar_one_or_none()
    a = ScoringAssignment
    rr = (
        select(User.id, a.user_id.label("seen"))
        .outerjoin(a, and_(a.tenant_id == User.tenant_id, a.user_id == User.id))
        .where(*eligible)
        .order_by(a.user_id.is_not(None), a.last_assigned_at, User.created_at, User.id)
        .limit(1)
    )
    row = (await session.execute(rr)).first()
    if row is None:
        return None
    if row.seen is None:
        session.add(ScoringAssignment(user_id=row.id, last_assigned_at=utcnow()))
    else:
        slot = await session.get(ScoringAssignment, (tx.tenant_id, row.id))
        if slot is not None:
            slot.last_assigned_at = utcnow()
    return uuid.UUID(str(row.id))
