"""The sales plugin's GraphQL: lead pools, the pool's leads (masked until claimed), claim,
release, putting a customer in a pool, and a customer's pool history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, cast
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi import PoolReturnRule, Tx
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.types import Customer
from guanxi.plugins.sales import pool as svc
from guanxi.plugins.sales.models import SalesPool
from guanxi.plugins.sales.pool_rules import available_rules

#: the deals' contract rule, which the deprecated returnAfterContractDays stands for
CONTRACT_RULE = "sales.contract_lapsed"


@strawberry.type(description="A lead pool (公海): unowned leads salespeople claim.")
class LeadPool:
    key: str
    name: str
    hold_limit: int | None = strawberry.field(description="leads of this pool one salesperson may hold at once; null: no limit")
    return_after_days: int | None = strawberry.field(
        description="a held lead without follow-up (an outbound or internal interaction) for this many days returns; null: never"
    )
    return_after_contract_days: int | None = strawberry.field(
        description="a held lead whose last contract ended this many days ago without a new one returns; null: never",
        deprecation_reason="the rule sales.contract_lapsed in returnRules",
    )
    return_rules: list[PoolReturnRuleSetting] = strawberry.field(
        description="the return rules other plugins contribute (guanxi_pool_return_rules) that this pool applies"
    )
    claim_roles: list[str] = strawberry.field(description="roles that may claim from this pool")
    claim_teams: list[str] | None = strawberry.field(description="only users of these teams may claim; null: any team")
    daily_claim_limits: list[DailyClaimLimit] = strawberry.field(description="claims per day a user of a role may make here")
    created_at: dt.datetime

    @classmethod
    def from_model(cls, p: SalesPool, rules: dict[str, PoolReturnRule]) -> LeadPool:
        given = dict(p.return_rules or {})
        return cls(
            key=p.key,
            name=p.name,
            hold_limit=p.hold_limit,
            return_after_days=p.return_after_days,
            return_after_contract_days=given.get(CONTRACT_RULE),
            return_rules=[PoolReturnRuleSetting.of(key, int(value), rules.get(key)) for key, value in given.items()],
            claim_roles=list(p.claim_roles or svc.DEFAULT_CLAIM_ROLES),
            claim_teams=p.claim_teams,
            daily_claim_limits=[DailyClaimLimit(role=r, limit=int(n)) for r, n in (p.daily_claim_limits or {}).items()],
            created_at=p.created_at,
        )


@strawberry.enum(description="The unit of a return rule's parameter.")
class PoolRuleUnit(Enum):
    DAYS = "days"
    MONTHS = "months"


@strawberry.type(description="A return rule a pool applies, with its parameter.")
class PoolReturnRuleSetting:
    rule: str = strawberry.field(description="the rule's key, e.g. sales.contract_lapsed")
    value: int = strawberry.field(description="its parameter, in unit")
    unit: PoolRuleUnit | None = strawberry.field(description="null: no enabled plugin offers the rule now (it is skipped)")
    text: str | None = strawberry.field(description="the rule in words, as the lead's pool history names it")

    @classmethod
    def of(cls, key: str, value: int, rule: PoolReturnRule | None) -> PoolReturnRuleSetting:
        return cls(rule=key, value=value, unit=PoolRuleUnit(rule.unit) if rule else None, text=rule.text(value) if rule else None)


@strawberry.type(description="A return rule a plugin the tenant enabled offers to lead pools (guanxi_pool_return_rules).")
class PoolReturnRuleInfo:
    key: str
    unit: PoolRuleUnit
    min_value: int
    max_value: int
    description: str


@strawberry.input(description="A return rule for a pool, with its parameter (in the rule's unit).")
class PoolReturnRuleInput:
    rule: str
    value: int


@strawberry.type(description="An open lead of a pool, as the pool shows it before anyone claims it: the phone masked.")
class PoolLead:
    customer_id: strawberry.ID = strawberry.field(description="the Customer id to claim it with")
    display_name: str
    company: str | None
    masked_phones: list[str] = strawberry.field(description="phones with the middle digits hidden (+86139****5678)")
    entered_at: dt.datetime = strawberry.field(description="when it entered the pool")


@strawberry.type(description="One move of a lead: ENTER the pool, CLAIM, RELEASE, or RETURN by a return rule.")
class PoolMove:
    pool: str
    action: str = strawberry.field(description="enter, claim, release or return")
    user_id: strawberry.ID | None = strawberry.field(description="who did it (null: a rule)")
    rule: str | None
    reason: str | None
    at: dt.datetime


@strawberry.type(description="Another customer that may be the same person, with why and how sure.")
class DuplicateSuggestion:
    customer: Customer
    reasons: list[str] = strawberry.field(description="shared phone, email or union_id, or the same name")
    confidence: float = strawberry.field(description="0 to 1; several reasons combine (1 - Π(1 - c))")


@strawberry.input(description="How many leads of a pool a user of a role may claim per day (the tenant's day).")
class DailyClaimLimitInput:
    role: str
    limit: int


@strawberry.type(description="How many leads of a pool a user of a role may claim per day (the tenant's day).")
class DailyClaimLimit:
    role: str
    limit: int


@strawberry.input
class CreateLeadPoolInput:
    key: str
    name: str
    hold_limit: int | None = None
    return_after_days: int | None = None
    return_after_contract_days: int | None = strawberry.field(
        default=None, deprecation_reason="give the rule sales.contract_lapsed in returnRules"
    )
    return_rules: list[PoolReturnRuleInput] | None = strawberry.field(
        default=None, description="contributed return rules with their parameter (poolReturnRules lists them)"
    )
    claim_roles: list[str] | None = strawberry.field(default=None, description="roles that may claim (default: sales, manager, admin)")
    claim_teams: list[str] | None = strawberry.field(default=None, description="only users of these teams may claim (default: any)")
    daily_claim_limits: list[DailyClaimLimitInput] | None = strawberry.field(
        default=None, description="leads a user of a role may claim from this pool per day; a role not named: no limit"
    )


@strawberry.type
class LeadPoolPayload:
    pool: LeadPool | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LeadPayload:
    customer: Customer | None = strawberry.field(default=None, description="the customer after the move (null after a release)")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Whose customers go where: give toUserId or pool.")
class HandOverInput:
    from_user_id: strawberry.ID = strawberry.field(description="the departing or moving salesperson")
    to_user_id: strawberry.ID | None = strawberry.field(default=None, description="who takes them over")
    pool: str | None = strawberry.field(default=None, description="or: the lead pool they go back to")
    customer_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="only these of theirs (default: all)")
    reason: str = strawberry.field(description="why (离职 / 调岗 …); on every customer's pool history and in the audit trail")


@strawberry.type(description="What a handover moved.")
class HandOverResult:
    customers: int
    tasks: int = strawberry.field(description="open tasks reassigned (unassigned when the customers go back to a pool)")
    pool_holds: int = strawberry.field(description="pool holds passed on to the new owner, or customers put in the pool")
    plugins: JSON = strawberry.field(description="what other plugins handed over (guanxi_staff_handover), by plugin")


@strawberry.type
class HandOverPayload:
    result: HandOverResult | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _daily_limits(given: list[DailyClaimLimitInput] | None) -> dict[str, int] | None:
    from guanxi.core.base.errors import ValidationError

    if given is None:
        return None
    out: dict[str, int] = {}
    for item in given:
        if item.role in out:
            raise ValidationError(f"dailyClaimLimits names {item.role!r} twice", field="dailyClaimLimits")
        out[item.role] = item.limit
    return out


def _return_rules(input: CreateLeadPoolInput) -> dict[str, int] | None:
    """The input's rules by key; the deprecated ``returnAfterContractDays`` is the contract rule."""
    from guanxi.core.base.errors import ValidationError

    out: dict[str, int] = {}
    for item in input.return_rules or []:
        if item.rule in out:
            raise ValidationError(f"returnRules names {item.rule!r} twice", field="returnRules")
        out[item.rule] = item.value
    if input.return_after_contract_days is not None:
        if CONTRACT_RULE in out:
            raise ValidationError(f"give {CONTRACT_RULE} in returnRules or returnAfterContractDays, not both", field="returnRules")
        out[CONTRACT_RULE] = input.return_after_contract_days
    return out or None


async def _rules(info: Info) -> dict[str, PoolReturnRule]:
    return await available_rules(info.context.rt, info.context.tenant_id, info.context.session)


def _cid(value: strawberry.ID) -> UUID:
    return from_global_id(value, "Customer", field="customerId")


@strawberry.type
class SalesQuery:
    @strawberry.field(description="The tenant's lead pools.")
    async def lead_pools(self, info: Info) -> list[LeadPool]:
        async with info.context.loaders.lock:
            rules = await _rules(info)
            return [LeadPool.from_model(p, rules) for p in await svc.list_pools(info.context.session)]

    @strawberry.field(description="The return rules lead pools may apply, offered by the plugins the tenant enabled.")
    async def pool_return_rules(self, info: Info) -> list[PoolReturnRuleInfo]:
        async with info.context.loaders.lock:
            rules = await _rules(info)
        return [
            PoolReturnRuleInfo(
                key=r.key, unit=PoolRuleUnit(r.unit), min_value=r.min_value, max_value=r.max_value, description=r.description
            )
            for r in rules.values()
        ]

    @strawberry.field(
        description="The open leads of a pool, oldest first; phones masked until claimed. Only users the pool lets claim "
        "(its roles and teams), managers and admins may list them (FORBIDDEN otherwise)."
    )
    async def pool_leads(self, info: Info, pool: str, first: int = 50) -> list[PoolLead]:
        from guanxi.graphql.pagination import check_page_size

        settings = info.context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        async with info.context.loaders.lock:
            found = await svc.pool_by_key(info.context.session, pool)
            await svc.check_may_list(info.context.session, info.context.ctx.actor, found)
            rows = await svc.open_leads(info.context.session, found.id, size)
        return [
            PoolLead(
                customer_id=strawberry.ID(to_global_id("Customer", r.id)),
                display_name=r.display_name,
                company=r.company,
                masked_phones=[svc.mask_phone(p) for p in r.phones],
                entered_at=r.entered_at,
            )
            for r in rows
        ]

    @strawberry.field(
        description="Customers that may be the same person as this one (shared phone, e-mail or union id, same name), "
        "most likely first; only customers the caller may see. Merge one with mergeCustomers."
    )
    async def duplicate_suggestions(self, info: Info, customer_id: strawberry.ID, first: int = 10) -> list[DuplicateSuggestion]:
        from guanxi.core.base.errors import NotFoundError
        from guanxi.graphql.pagination import check_page_size
        from guanxi.plugins.sales.duplicates import suggestions

        settings = info.context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        try:
            async with info.context.loaders.lock:
                found = await suggestions(info.context.session, _cid(customer_id), size)
        except NotFoundError:
            return []
        rows = await info.context.loaders.customers.load_many([s.customer_id for s in found])
        return [
            DuplicateSuggestion(customer=Customer.from_row(row, info.context), reasons=s.reasons, confidence=s.confidence)
            for s, row in zip(found, rows, strict=True)
            if row is not None
        ]


async def _save_pool(info: Info, input: CreateLeadPoolInput, save: Callable[[Tx, svc.PoolInput], Awaitable[SalesPool]]) -> LeadPoolPayload:
    """Create or change a pool from the GraphQL input (the same input and checks for both)."""

    async def run() -> LeadPoolPayload:
        data = svc.PoolInput(
            key=input.key,
            name=input.name,
            hold_limit=input.hold_limit,
            return_after_days=input.return_after_days,
            return_rules=_return_rules(input),
            claim_roles=input.claim_roles,
            claim_teams=input.claim_teams,
            daily_claim_limits=_daily_limits(input.daily_claim_limits),
        )
        async with info.context.transaction() as tx:
            saved = await save(tx, data)
            rules = await available_rules(tx.runtime, tx.tenant_id, tx.session)
        return LeadPoolPayload(pool=LeadPool.from_model(saved, rules))

    return await as_payload(run, LeadPoolPayload)


@strawberry.type
class SalesMutation:
    @strawberry.mutation(description="Create a lead pool (managers and admins).")
    async def create_lead_pool(self, info: Info, input: CreateLeadPoolInput) -> LeadPoolPayload:
        return await _save_pool(info, input, svc.create_pool)

    @strawberry.mutation(
        description="Change the lead pool named by input.key: every setting (name, holdLimit, returnAfterDays, returnRules, "
        "claimRoles, claimTeams, dailyClaimLimits) becomes the input's. Held leads stay held."
    )
    async def update_lead_pool(self, info: Info, input: CreateLeadPoolInput) -> LeadPoolPayload:
        return await _save_pool(info, input, svc.update_pool)

    @strawberry.mutation(description="Put a customer into a lead pool: its owner is cleared and it can be claimed.")
    async def put_lead_in_pool(self, info: Info, customer_id: strawberry.ID, pool: str, reason: str | None = None) -> LeadPayload:
        async def run() -> LeadPayload:
            async with info.context.transaction() as tx:
                c = await svc.put_in_pool(tx, _cid(customer_id), pool, reason)
            return LeadPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, LeadPayload)

    @strawberry.mutation(
        description="Claim an open lead: you become its owner. LIMIT_REACHED when you hold the pool's limit, "
        "CONFLICT when someone claimed it first."
    )
    async def claim_lead(self, info: Info, customer_id: strawberry.ID, reason: str | None = None) -> LeadPayload:
        async def run() -> LeadPayload:
            async with info.context.transaction() as tx:
                c = await svc.claim(tx, _cid(customer_id), reason)
            return LeadPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, LeadPayload)

    @strawberry.mutation(
        description="Hand a salesperson's customers, open tasks and pool holds to another user, or back to a pool, in one "
        "audited operation (离职继承 / 在职继承); other plugins hand over their part (open deals, WeCom follows) in the same "
        "transaction (managers and admins)."
    )
    async def hand_over_customers(self, info: Info, input: HandOverInput) -> HandOverPayload:
        return await _hand_over(info, input)

    @strawberry.mutation(description="Give a held lead back to its pool, saying why.")
    async def release_lead(self, info: Info, customer_id: strawberry.ID, reason: str) -> LeadPayload:
        async def run() -> LeadPayload:
            async with info.context.transaction() as tx:
                await svc.release(tx, _cid(customer_id), reason)
            return LeadPayload(customer=None)

        return await as_payload(run, LeadPayload)


async def _hand_over(info: Info, input: HandOverInput) -> HandOverPayload:
    from guanxi.plugins.sales.handover import hand_over

    async def run() -> HandOverPayload:
        def user(raw: strawberry.ID, field: str) -> UUID:
            return from_global_id(raw, "User", field=field)

        async with info.context.transaction() as tx:
            done = await hand_over(
                tx,
                user(input.from_user_id, "fromUserId"),
                to_user_id=user(input.to_user_id, "toUserId") if input.to_user_id else None,
                pool_key=input.pool,
                customer_ids=[_cid(c) for c in input.customer_ids] if input.customer_ids is not None else None,
                reason=input.reason,
            )
        return HandOverPayload(
            result=HandOverResult(customers=done.customers, tasks=done.tasks, pool_holds=done.pool_holds, plugins=cast(JSON, done.plugins))
        )

    return await as_payload(run, HandOverPayload)


def _pool_moves(info: Info) -> DataLoader[UUID, list[Any]]:
    """The request's loader of pool moves: one statement for every customer of a page."""
    state = info.context.state
    loader = state.get("sales_pool_moves")
    if loader is None:

        async def load(ids: list[UUID]) -> list[list[Any]]:
            async with info.context.loaders.lock:
                found = await svc.moves_of(info.context.session, list(ids))
            return [found.get(i, []) for i in ids]

        loader = state["sales_pool_moves"] = DataLoader(load_fn=load)
    return cast(DataLoader[UUID, list[Any]], loader)


@strawberry.type
class CustomerSales:
    @strawberry.field(description="The customer's moves in and out of lead pools, oldest first.")
    async def pool_history(self, info: Info) -> list[PoolMove]:
        me: Any = self
        found = await _pool_moves(info).load(me.uuid)
        return [
            PoolMove(
                pool=key,
                action=m.action,
                user_id=strawberry.ID(to_global_id("User", m.user_id)) if m.user_id else None,
                rule=m.rule,
                reason=m.reason,
                at=m.at,
            )
            for m, key in found
        ]
