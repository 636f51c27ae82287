"""The lead pool (公海): pools of unowned leads, claimed and released by salespeople.

A lead in a pool is a customer without an owner plus a :class:`SalesPoolLead` row. Claiming sets
the row to ``held`` and the customer's owner to the claimer in one transaction; the row's
``open`` → ``held`` UPDATE is conditional (``WHERE status = 'open'``), so of two claims that
race exactly one changes the row (PostgreSQL re-checks the condition after the first commits,
SQLite serialises writers) and the other gets ``CONFLICT``. Reading the pool and claiming look
past the ownership rule of the caller's session (``ALL_OWNERS``: an unowned customer is nobody's),
still inside the caller's tenant; everything else a salesperson does stays limited to their own
customers.

Every move is a :class:`SalesPoolMove` (the customer's pool history) and an audit entry.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any, Final

import msgspec
from sqlalchemy import and_, exists, func, select, update

from guanxi import PoolReturnRule, Runtime
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, GuanxiError, NotFoundError, ValidationError
from guanxi.core.domain.models import Customer, Interaction, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.services.notifications import NotificationInput, notify
from guanxi.core.services.schedule import schedule_job, tenant_zone
from guanxi.core.storage.tenancy import ALL_OWNERS, TenantSession
from guanxi.plugins.sales.models import SalesPool, SalesPoolLead, SalesPoolMove
from guanxi.plugins.sales.pool_rules import available_rules, check_rules

log = logging.getLogger(__name__)
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
EVERY_OWNER: Final = {ALL_OWNERS: True}
RETURN_JOB: Final = "sales.pool_return"
#: how often the return rules run (the tenant's time zone): hourly
RETURN_CRON: Final = "0 * * * *"
RETURN_NOTICE: Final = "sales.pool_return_soon"
ACTOR: Final = Actor(kind="rule", name="sales.pool_return")


class PoolInput(msgspec.Struct, kw_only=True):
    key: str
    name: str
    hold_limit: int | None = None
    return_after_days: int | None = None
    #: contributed return rules (``guanxi_pool_return_rules``) with their parameter: ``{"sales.contract_lapsed": 30}``
    return_rules: dict[str, int] | None = None
    #: who may claim: these roles (None: sales, manager and admin) …
    claim_roles: list[str] | None = None
    #: … and, if given, only users of these teams
    claim_teams: list[str] | None = None
    #: leads of this pool a user of a role may claim per day (the tenant's day), by role; a role not named: no limit
    daily_claim_limits: dict[str, int] | None = None


#: who may claim from a pool that names no roles
DEFAULT_CLAIM_ROLES: Final = ("admin", "manager", "sales")


class LimitReachedError(GuanxiError):
    """A limit was reached; the message names it."""

    code = "LIMIT_REACHED"


def mask_phone(phone: str) -> str:
    """``+8613912345678`` → ``+86139****5678``: enough to recognise, not to call."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:-8] + phone[-8:-4].translate(str.maketrans("0123456789", "**********")) + phone[-4:]


async def _settings(tx: Tx, data: PoolInput) -> dict[str, Any]:
    """A pool's settings from the input, checked (everything but the key)."""
    name = data.name.strip()
    if not name or len(name) > 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    if data.hold_limit is not None and data.hold_limit < 1:
        raise ValidationError("holdLimit must be at least 1 (or null: no limit)", field="holdLimit")
    if data.return_after_days is not None and not 1 <= data.return_after_days <= 3650:
        raise ValidationError("returnAfterDays must be 1 to 3650 (or null: never)", field="returnAfterDays")
    claim_roles, claim_teams, daily = _claim_rules(data)
    return_rules = check_rules(data.return_rules, await available_rules(tx.runtime, tx.tenant_id, tx.session))
    return {
        "name": name,
        "hold_limit": data.hold_limit,
        "return_after_days": data.return_after_days,
        "return_rules": return_rules,
        "claim_roles": claim_roles,
        "claim_teams": claim_teams,
        "daily_claim_limits": daily,
    }


def _audited(pool: SalesPool) -> dict[str, Any]:
    return {
        "key": pool.key,
        "name": pool.name,
        "hold_limit": pool.hold_limit,
        "return_after_days": pool.return_after_days,
        "return_rules": pool.return_rules,
        "claim_roles": pool.claim_roles,
        "claim_teams": pool.claim_teams,
        "daily_claim_limits": pool.daily_claim_limits,
    }


async def create_pool(tx: Tx, data: PoolInput) -> SalesPool:
    if not _KEY.match(data.key):
        raise ValidationError("key must be lower case: a letter, then letters, digits, _ or -, at most 64", field="key")
    settings = await _settings(tx, data)
    session = tx.session
    if (await session.execute(select(SalesPool.id).where(SalesPool.key == data.key))).first() is not None:
        raise ConflictError(f"a lead pool {data.key!r} exists already", field="key")
    pool = SalesPool(key=data.key, **settings)
    session.add(pool)
    await session.flush()
    if pool.return_after_days is not None or pool.return_rules:
        await schedule_job(tx, RETURN_JOB, RETURN_JOB, cron=RETURN_CRON)
    audit(tx, "sales.pool.create", "salesPool", pool.id, _audited(pool))
    return pool


async def update_pool(tx: Tx, data: PoolInput) -> SalesPool:
    """Replace every setting of the pool ``data.key`` (name, limits, return rules, who may claim).
    Leads held now stay held: a lower hold limit refuses new claims until holds drop under it; a
    new return rule applies from the next run of the return job."""
    session = tx.session
    pool = await pool_by_key(session, data.key, field="key")
    settings = await _settings(tx, data)
    before = _audited(pool)
    for name, value in settings.items():
        setattr(pool, name, value)
    await session.flush()
    if pool.return_after_days is not None or pool.return_rules:
        await schedule_job(tx, RETURN_JOB, RETURN_JOB, cron=RETURN_CRON)
    after = _audited(pool)
    changed = {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}
    audit(tx, "sales.pool.update", "salesPool", pool.id, {"key": pool.key, "changed": changed})
    return pool


def _claim_rules(data: PoolInput) -> tuple[list[str] | None, list[str] | None, dict[str, int] | None]:
    """The pool's claim rights and daily limits, checked: known roles, non-empty team names, limits of at least 1."""
    from guanxi.core.domain.access import ROLES

    roles = None
    if data.claim_roles is not None:
        roles = sorted(set(data.claim_roles))
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise ValidationError(f"claimRoles must name roles among {', '.join(ROLES)}", field="claimRoles")
    teams = None
    if data.claim_teams is not None:
        teams = sorted({t.strip() for t in data.claim_teams})
        if not teams or any(not t or len(t) > 100 for t in teams):
            raise ValidationError("claimTeams must name teams (1 to 100 characters each)", field="claimTeams")
    daily = None
    if data.daily_claim_limits is not None:
        daily = dict(sorted(data.daily_claim_limits.items()))
        for role, limit in daily.items():
            if role not in ROLES:
                raise ValidationError(f"dailyClaimLimits: {role!r} is not a role ({', '.join(ROLES)})", field="dailyClaimLimits")
            if not 1 <= limit <= 10000:
                raise ValidationError(f"dailyClaimLimits: the limit of {role} must be 1 to 10000", field="dailyClaimLimits")
    return roles, teams, daily


async def check_may_list(session: TenantSession, actor: Actor, pool: SalesPool) -> None:
    """The caller may list the pool's open leads: a manager or an admin, or a user the pool lets
    claim (its roles and teams); anyone else gets ``FORBIDDEN``."""
    if set(actor.roles) & {"admin", "manager"}:
        return
    await _check_role_and_team(session, actor, pool, "pool")


async def _check_role_and_team(session: TenantSession, actor: Actor, pool: SalesPool, field: str) -> None:
    allowed = set(pool.claim_roles or DEFAULT_CLAIM_ROLES)
    user_id = actor.user_id
    if not set(actor.roles) & allowed:
        raise GuanxiError(f"pool {pool.key!r} may be claimed from by {', '.join(sorted(allowed))} only", code="FORBIDDEN", field=field)
    if pool.claim_teams:
        team = None
        if user_id is not None:
            team = (await session.execute(select(User.team).where(User.id == user_id))).scalar_one_or_none()
        if team not in pool.claim_teams:
            raise GuanxiError(
                f"pool {pool.key!r} may be claimed from by the teams {', '.join(pool.claim_teams)} only", code="FORBIDDEN", field=field
            )


async def _check_claim_rights(tx: Tx, pool: SalesPool, user_id: uuid.UUID) -> None:
    """The caller may claim from this pool (role and team), and has not claimed its daily limit."""
    session = tx.session
    roles = set(tx.ctx.actor.roles)
    allowed = set(pool.claim_roles or DEFAULT_CLAIM_ROLES)
    await _check_role_and_team(session, tx.ctx.actor, pool, "customerId")
    limits = pool.daily_claim_limits or {}
    if not limits or any(r not in limits for r in roles & allowed):
        return
    limit = max(int(limits[r]) for r in roles & allowed)
    tz = await tenant_zone(session)
    midnight = dt.datetime.combine(utcnow().astimezone(tz).date(), dt.time(), tzinfo=tz).astimezone(dt.UTC)
    today = select(func.count()).where(
        SalesPoolMove.pool_id == pool.id, SalesPoolMove.user_id == user_id, SalesPoolMove.action == "claim", SalesPoolMove.at >= midnight
    )
    if int((await session.execute(today.execution_options(**EVERY_OWNER))).scalar_one()) >= limit:
        raise LimitReachedError(
            f"daily claim limit reached: you claimed {limit} leads of pool {pool.key!r} today, the daily limit of your role",
            field="customerId",
        )


async def list_pools(session: TenantSession) -> list[SalesPool]:
    return list((await session.scalars(select(SalesPool).order_by(SalesPool.key))).all())


async def pool_by_key(session: TenantSession, key: str, field: str = "pool") -> SalesPool:
    pool = (await session.execute(select(SalesPool).where(SalesPool.key == key))).scalar_one_or_none()
    if pool is None:
        raise NotFoundError(f"no lead pool {key!r}", field=field)
    return pool


def _reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > 1000:
        raise ValidationError("reason is longer than 1000 characters", field="reason")
    return reason


def _move(tx: Tx, customer_id: uuid.UUID, pool_id: uuid.UUID, action: str, reason: str | None, *, rule: str | None = None) -> None:
    tx.session.add(
        SalesPoolMove(customer_id=customer_id, pool_id=pool_id, action=action, user_id=tx.ctx.actor.user_id, rule=rule, reason=reason)
    )


async def put_in_pool(tx: Tx, customer_id: uuid.UUID, pool_key: str, reason: str | None) -> Customer:
    """Put a customer the caller may see into a pool: its owner is cleared, anyone allowed may
    claim it. A customer already in a pool moves to this one."""
    reason = _reason(reason)
    session = tx.session
    customer = await get_customer(session, customer_id)
    pool = await pool_by_key(session, pool_key)
    lead = (await session.execute(select(SalesPoolLead).where(SalesPoolLead.customer_id == customer.id))).scalar_one_or_none()
    now = utcnow()
    if lead is None:
        session.add(SalesPoolLead(customer_id=customer.id, pool_id=pool.id, status="open", entered_at=now))
    else:
        lead.pool_id, lead.status, lead.holder_id, lead.held_at, lead.warned_at, lead.entered_at = pool.id, "open", None, None, None, now
    previous_owner = customer.owner_id
    customer.owner_id = None
    customer.updated_at = now
    _move(tx, customer.id, pool.id, "enter", reason)
    await session.flush()
    audit(tx, "sales.pool.enter", "customer", customer.id, {"pool": pool.key, "owner_id": [previous_owner, None], "reason": reason})
    return customer


async def held_count(session: TenantSession, pool_id: uuid.UUID, user_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(SalesPoolLead.pool_id == pool_id, SalesPoolLead.holder_id == user_id, SalesPoolLead.status == "held")
    return int((await session.execute(stmt.execution_options(**EVERY_OWNER))).scalar_one())


async def claim(tx: Tx, customer_id: uuid.UUID, reason: str | None) -> Customer:
    """Claim an open lead for the calling user. Refused with ``LIMIT_REACHED`` when the user
    holds the pool's limit already, ``CONFLICT`` when someone else claimed it first."""
    reason = _reason(reason)
    user_id = tx.ctx.actor.user_id
    if user_id is None:
        raise GuanxiError("only a signed-in staff user can claim a lead (this key acts for no user)", code="NOT_A_USER")
    session = tx.session
    lead = (
        await session.execute(select(SalesPoolLead).where(SalesPoolLead.customer_id == customer_id).execution_options(**EVERY_OWNER))
    ).scalar_one_or_none()
    if lead is None:
        raise NotFoundError("no such lead in any pool", field="customerId")
    pool = (await session.execute(select(SalesPool).where(SalesPool.id == lead.pool_id))).scalar_one()
    if lead.status != "open":
        raise ConflictError("this lead was claimed already", field="customerId")
    await _check_claim_rights(tx, pool, user_id)
    if pool.hold_limit is not None and await held_count(session, pool.id, user_id) >= pool.hold_limit:
        raise LimitReachedError(
            f"hold limit reached: you hold {pool.hold_limit} leads of pool {pool.key!r}, its limit; release one first", field="customerId"
        )
    now = utcnow()
    won = await session.execute(
        update(SalesPoolLead)
        .where(SalesPoolLead.customer_id == customer_id, SalesPoolLead.status == "open")
        .values(status="held", holder_id=user_id, held_at=now, warned_at=None)
        .execution_options(**EVERY_OWNER, synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError("this lead was claimed already", field="customerId")
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.owner_id.is_(None))
        .values(owner_id=user_id, updated_at=now)
        .execution_options(**EVERY_OWNER, synchronize_session=False)
    )
    _move(tx, customer_id, pool.id, "claim", reason)
    await session.flush()
    audit(tx, "sales.pool.claim", "customer", customer_id, {"pool": pool.key, "owner_id": [None, user_id], "reason": reason})
    session.expire_all()
    return await get_customer(session, customer_id)


async def release(tx: Tx, customer_id: uuid.UUID, reason: str | None) -> None:
    """Give a held lead back to its pool (its holder, or a manager or admin who sees it)."""
    reason = _reason(reason)
    session = tx.session
    customer = await get_customer(session, customer_id)  # a salesperson sees only their own
    lead = (await session.execute(select(SalesPoolLead).where(SalesPoolLead.customer_id == customer.id))).scalar_one_or_none()
    if lead is None or lead.status != "held":
        raise ValidationError("this customer is not a held lead of a pool (putLeadInPool puts it in one)", field="customerId")
    if not reason:
        raise ValidationError("say why the lead goes back to the pool", field="reason")
    pool = (await session.execute(select(SalesPool).where(SalesPool.id == lead.pool_id))).scalar_one()
    await _back_to_pool(tx, customer, lead, pool, "release", reason)


async def _back_to_pool(
    tx: Tx, customer: Customer, lead: SalesPoolLead, pool: SalesPool, action: str, reason: str | None, rule: str | None = None
) -> None:
    holder = lead.holder_id
    lead.status, lead.holder_id, lead.held_at, lead.warned_at, lead.entered_at = "open", None, None, None, utcnow()
    customer.owner_id = None
    customer.updated_at = utcnow()
    rule = rule or (f"no follow-up for {pool.return_after_days} days" if action == "return" else None)
    _move(tx, customer.id, pool.id, action, reason, rule=rule)
    await tx.session.flush()
    audit(tx, f"sales.pool.{action}", "customer", customer.id, {"pool": pool.key, "owner_id": [holder, None], "reason": reason})


def _quiet_since(cutoff: dt.datetime) -> Any:
    """No follow-up by staff (an outbound or internal interaction) since ``cutoff``."""
    return ~exists(
        select(Interaction.id).where(
            Interaction.tenant_id == SalesPoolLead.tenant_id,
            Interaction.customer_id == SalesPoolLead.customer_id,
            Interaction.direction != "in",
            Interaction.occurred_at >= cutoff,
        )
    )


async def run_return_rules(runtime: Runtime, tenant_id: uuid.UUID, now: dt.datetime, idempotency_key: str) -> tuple[int, int]:
    """Evaluate every pool's return rule in SQL: held leads without follow-up for
    ``return_after_days`` go back to the pool; those one day from it get their holder notified
    (once per hold). Returns (returned, warned)."""
    returned = warned = 0
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        session = tx.session
        rules = await available_rules(runtime, tenant_id, session)
        as_of = now.astimezone(await tenant_zone(session))
        for pool in await list_pools(session):
            for key, value in (pool.return_rules or {}).items():
                rule = rules.get(key)
                if rule is None:  # its plugin was disabled or removed since: the pool keeps the setting
                    log.warning("lead pool %s: return rule %r is not offered by any enabled plugin; skipped", pool.key, key)
                    continue
                back, told = await _return_by_rule(tx, pool, rule, int(value), as_of)
                returned, warned = returned + back, warned + told
            if pool.return_after_days is None:
                continue
            due = now - dt.timedelta(days=pool.return_after_days)
            soon = due + dt.timedelta(days=1)
            held = and_(SalesPoolLead.pool_id == pool.id, SalesPoolLead.status == "held")
            stmt = select(SalesPoolLead, Customer).join(
                Customer, and_(Customer.tenant_id == SalesPoolLead.tenant_id, Customer.id == SalesPoolLead.customer_id)
            )
            for lead, customer in (await session.execute(stmt.where(held, SalesPoolLead.held_at < due, _quiet_since(due)))).all():
                await _back_to_pool(tx, customer, lead, pool, "return", f"no follow-up for {pool.return_after_days} days")
                returned += 1
            warn = stmt.where(held, SalesPoolLead.held_at < soon, SalesPoolLead.warned_at.is_(None), _quiet_since(soon))
            for lead, customer in (await session.execute(warn)).all():
                lead.warned_at = now
                body = f"No follow-up for {pool.return_after_days - 1} days. Record an interaction to keep the lead."
                warned += await _warn(tx, lead, customer, pool, body, "follow-up")
            await session.flush()
    return returned, warned


async def _warn(tx: Tx, lead: SalesPoolLead, customer: Customer, pool: SalesPool, body: str, rule: str) -> int:
    """Tell the holder (if active) that the lead returns tomorrow, once per hold and rule; 1 if told."""
    if lead.holder_id is None:
        return 0
    active = (await tx.session.execute(select(User.id).where(User.id == lead.holder_id, User.active.is_(True)))).first()
    if active is None:
        return 0
    held = lead.held_at.isoformat() if lead.held_at else ""
    await notify(
        tx,
        NotificationInput(
            user_id=lead.holder_id,
            kind=RETURN_NOTICE,
            title=f"{customer.display_name} goes back to the pool {pool.name} tomorrow",
            body=body,
            dedupe_key=f"{RETURN_NOTICE}:{customer.id}:{held}" if rule == "follow-up" else f"{RETURN_NOTICE}:{rule}:{customer.id}:{held}",
            link_type="customer",
            link_id=customer.id,
        ),
    )
    return 1


async def _return_by_rule(tx: Tx, pool: SalesPool, rule: PoolReturnRule, value: int, as_of: dt.datetime) -> tuple[int, int]:
    """Held leads of the pool whose customer lapsed under a contributed rule as of ``as_of`` go back
    to it (one SQL condition); those that lapse a day later get their holder notified (once per
    hold, whichever rule warns first). Returns (returned, warned)."""
    text = rule.text(value)

    def held(at: dt.datetime) -> Any:
        return (
            select(SalesPoolLead, Customer)
            .join(Customer, and_(Customer.tenant_id == SalesPoolLead.tenant_id, Customer.id == SalesPoolLead.customer_id))
            .where(
                SalesPoolLead.pool_id == pool.id,
                SalesPoolLead.status == "held",
                rule.condition(SalesPoolLead.tenant_id, SalesPoolLead.customer_id, at, value),
            )
        )

    rows = (await tx.session.execute(held(as_of))).all()
    for lead, customer in rows:
        await _back_to_pool(tx, customer, lead, pool, "return", text, rule=text[:100])
    warned = 0
    soon = held(as_of + dt.timedelta(days=1)).where(SalesPoolLead.warned_at.is_(None))
    for lead, customer in (await tx.session.execute(soon)).all():
        lead.warned_at = utcnow()
        body = rule.warning(value) if rule.warning else f"It goes back tomorrow: {text}."
        warned += await _warn(tx, lead, customer, pool, body, rule.key)
    await tx.session.flush()
    return len(rows), warned


async def open_leads(session: TenantSession, pool_id: uuid.UUID, first: int) -> list[Any]:
    """The open leads of a pool, oldest first: rows of (customer id, display name, company,
    phones, entered_at)."""
    stmt = (
        select(Customer.id, Customer.display_name, Customer.company, Customer.phones, SalesPoolLead.entered_at)
        .join(SalesPoolLead, and_(SalesPoolLead.tenant_id == Customer.tenant_id, SalesPoolLead.customer_id == Customer.id))
        .where(SalesPoolLead.pool_id == pool_id, SalesPoolLead.status == "open", Customer.merged_into_id.is_(None))
        .order_by(SalesPoolLead.entered_at, Customer.id)
        .limit(first)
    )
    return list((await session.execute(stmt.execution_options(**EVERY_OWNER))).all())


async def moves_of(session: TenantSession, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    rows = (
        await session.execute(
            select(SalesPoolMove, SalesPool.key)
            .join(SalesPool, and_(SalesPool.tenant_id == SalesPoolMove.tenant_id, SalesPool.id == SalesPoolMove.pool_id))
            .where(SalesPoolMove.customer_id.in_(customer_ids))
            .order_by(SalesPoolMove.at, SalesPoolMove.id)
        )
    ).all()
    out: dict[uuid.UUID, list[Any]] = {}
    for move, key in rows:
        out.setdefault(move.customer_id, []).append((move, key))
    return out
