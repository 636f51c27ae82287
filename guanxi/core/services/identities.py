"""Channel identities and identity resolution (which customer is this account?)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.contracts import Arrival
from guanxi.core.domain.events import IdentityAttached
from guanxi.core.domain.models import ContactPoint, Customer, Identity, Stage, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services import quotas
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import (
    CustomerInput,
    add_new_customers,
    create_customer,
    enter_new_customer,
    get_customer,
    new_customer,
    normalize_email,
    normalize_phone,
    search_text,
)
from guanxi.core.storage.tenancy import ALL_OWNERS


class IdentityInput(msgspec.Struct, kw_only=True):
    """A customer's account on a channel, as a channel plugin reports it."""

    channel: str
    external_id: str
    union_id: str | None = None
    nickname: str | None = None
    avatar_url: str | None = None
    follower_count: int | None = None
    profile: dict[str, Any] = msgspec.field(default_factory=dict)
    phone: str | None = None
    email: str | None = None


def _validate(data: IdentityInput) -> None:
    if not data.channel or len(data.channel) > 32:
        raise ValidationError("channel must be 1 to 32 characters", field="channel")
    if not data.external_id or len(data.external_id) > 128:
        raise ValidationError("external id must be 1 to 128 characters", field="externalId")
    if data.follower_count is not None and data.follower_count < 0:
        raise ValidationError("follower count must not be negative", field="followerCount")


def _apply_profile(identity: Identity, data: IdentityInput) -> bool:
    changed = False
    for name in ("union_id", "nickname", "avatar_url", "follower_count"):
        value = getattr(data, name)
        if value is not None and getattr(identity, name) != value:
            setattr(identity, name, value)
            changed = True
    if data.profile and {**identity.profile, **data.profile} != identity.profile:
        identity.profile = {**identity.profile, **data.profile}
        changed = True
    if changed:
        identity.updated_at = utcnow()
    return changed


async def find_identity(tx: Tx, channel: str, external_id: str) -> Identity | None:
    """The tenant's identity with this channel and external id, whoever owns its customer (the
    pair is unique per tenant; a caller limited to their own customers must get a conflict, not
    a database error, for an account held by someone else's customer)."""
    stmt = select(Identity).where(Identity.channel == channel, Identity.external_id == external_id)
    return (await tx.session.execute(stmt.execution_options(**{ALL_OWNERS: True}))).scalar_one_or_none()


async def attach_identity(tx: Tx, customer_id: uuid.UUID, data: IdentityInput) -> Identity:
    """Attach a channel account to a customer, or refresh its profile if already attached.
    An account attached to another customer is a conflict (merge the customers instead)."""
    _validate(data)
    customer = await get_customer(tx.session, customer_id)
    identity = await find_identity(tx, data.channel, data.external_id)
    if identity is not None:
        if identity.customer_id != customer.id:
            raise ConflictError(f"{data.channel} account {data.external_id!r} belongs to another customer; merge the two customers instead")
        if _apply_profile(identity, data):
            audit(tx, "identity.refresh", "customer", customer.id, {"channel": data.channel, "nickname": identity.nickname})
        return identity
    return await _attach_new(tx, customer, data, new_customer=False)


async def _attach_new(tx: Tx, customer: Customer, data: IdentityInput, *, new_customer: bool, flush: bool = True) -> Identity:
    """Attach an account known not to be attached yet (a ``new_customer`` has no other
    identity, so its search text needs no read of their nicknames). ``flush=False``: the
    identity is inserted at the session's next flush (with a batch's others)."""
    identity = Identity(
        id=new_id(),
        customer_id=customer.id,
        channel=data.channel,
        external_id=data.external_id,
        profile={},
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    _apply_profile(identity, data)
    tx.session.add(identity)
    if flush:
        await tx.session.flush()
    if identity.nickname:
        if new_customer:
            nicknames = [identity.nickname]
        else:
            nicks = (await tx.session.execute(select(Identity.nickname).where(Identity.customer_id == customer.id))).scalars()
            nicknames = [n for n in nicks if n]
        customer.search_text = search_text(customer, nicknames)
    audit(tx, "identity.attach", "customer", customer.id, {"channel": data.channel, "external_id": data.external_id})
    tx.emit(
        "guanxi_identity_attached",
        IdentityAttached(
            tenant_id=tx.tenant_id,
            actor=tx.ctx.actor,
            customer_id=customer.id,
            identity_id=identity.id,
            channel=data.channel,
            external_id=data.external_id,
        ),
    )
    return identity


async def _match_core(tx: Tx, data: IdentityInput) -> uuid.UUID | None:
    session = tx.session
    if data.union_id:
        row = (await session.execute(select(Identity.customer_id).where(Identity.union_id == data.union_id).limit(1))).scalar_one_or_none()
        if row is not None:
            return row
    for kind, raw, norm in (("phone", data.phone, normalize_phone), ("email", data.email, normalize_email)):
        if not raw:
            continue
        try:
            value = norm(raw)
        except ValidationError:
            continue
        rows = (
            (
                await session.execute(
                    select(ContactPoint.customer_id)
                    .join(Customer, (Customer.tenant_id == ContactPoint.tenant_id) & (Customer.id == ContactPoint.customer_id))
                    .where(ContactPoint.kind == kind, ContactPoint.value == value, Customer.merged_into_id.is_(None))
                    .limit(2)
                )
            )
            .scalars()
            .all()
        )
        if len(rows) == 1:  # an ambiguous match is no match
            return rows[0]
    return None


class KnownIdentities(dict[tuple[str, str], "Identity | None"]):
    """Identities already looked up in this transaction by (channel, external id); None: no
    identity has the account. Holds their customers too, so the session keeps them (its
    identity map holds objects weakly) and :func:`get_customer` finds them without a statement."""

    customers: list[Customer]
    #: accounts :func:`create_new_people` attached to new customers, with the events their
    #: creation queued: the first :func:`resolve_identity` of the account queues them and
    #: answers ``customer_created=True``
    fresh: dict[tuple[str, str], list[tuple[str, Any, Any]]]
    #: accounts a ``guanxi_resolve_customer`` implementation placed with a customer
    placed: dict[tuple[str, str], uuid.UUID]


async def prefetch_identities(tx: Tx, keys: set[tuple[str, str]]) -> KnownIdentities:
    """Look up many accounts at once (a batch of the inbox): the identities, and their
    customers into the session, in two statements; every key gets an entry (None: not attached).
    Pass the result to :func:`resolve_identity` as ``known``."""
    known = KnownIdentities(dict.fromkeys(keys))
    known.customers, known.fresh, known.placed = [], {}, {}
    if not keys:
        return known
    # one statement per channel (a batch is mostly one channel's): ``channel = ? AND external_id
    # IN (…)`` is a lookup in the unique (tenant, channel, external id) index, where SQLite planned
    # ``(channel, external_id) IN (VALUES …)`` (and an OR of channels) as a scan of every identity
    # of the tenant: the worker's cost grew with the tenant (bench/soak.py, 4.2x in 10 minutes)
    found: list[Identity] = []
    for channel in sorted({c for c, _ in keys}):
        ids = sorted(e for c, e in keys if c == channel)
        stmt = select(Identity).where(Identity.channel == channel, Identity.external_id.in_(ids))
        found.extend((await tx.session.execute(stmt.execution_options(**{ALL_OWNERS: True}))).scalars())
    for identity in found:
        known[(identity.channel, identity.external_id)] = identity
    customer_ids = sorted({identity.customer_id for identity in found})
    if customer_ids:
        stmt_customers = select(Customer).where(Customer.id.in_(customer_ids)).execution_options(**{ALL_OWNERS: True})
        known.customers = list((await tx.session.execute(stmt_customers)).scalars())
    return known


async def resolve_identity(
    tx: Tx,
    data: IdentityInput,
    *,
    display_name: str | None = None,
    source: str | None = None,
    arrival: Arrival | None = None,
    known: KnownIdentities | None = None,
) -> tuple[Customer, Identity, bool]:
    """Find or create the customer behind a channel account.

    Order: the account itself; core matching (union id on any channel, then a unique phone or
    email); the ``guanxi_resolve_customer`` hook; else a new customer. Returns
    ``(customer, identity, customer_created)``. ``known`` (from :func:`prefetch_identities`, in
    this transaction) answers the account lookup without a statement when it holds the key, and
    learns the identity attached here."""
    _validate(data)
    key = (data.channel, data.external_id)
    if known is not None and key in known:
        identity = known[key]
    else:
        identity = await find_identity(tx, data.channel, data.external_id)
    if identity is not None:
        _apply_profile(identity, data)
        held = known.fresh.pop(key, None) if known is not None else None
        if held is not None:  # created for this account by create_new_people
            tx.release_events(held)
        return await get_customer(tx.session, identity.customer_id), identity, held is not None
    # an account create_new_people saw placed by a plugin (it has no union id, phone or e-mail)
    customer_id = known.placed.get(key) if known is not None else None
    if customer_id is None:
        customer_id = await _match_core(tx, data)
    if customer_id is None:
        customer_id = await _placed_by_plugin(tx, data)
    created = False
    if customer_id is None:
        name = display_name or data.nickname or f"{data.channel}:{data.external_id}"
        customer = await create_customer(
            tx,
            CustomerInput(
                display_name=name,
                phones=[data.phone] if data.phone else [],
                emails=[data.email] if data.email else [],
                source=source or data.channel,
                arrival=arrival,
            ),
        )
        customer_id, created = customer.id, True
    if created:  # the account was looked up above: attach it without a second look
        identity = await _attach_new(tx, customer, data, new_customer=True)
    else:
        identity = await attach_identity(tx, customer_id, data)
    if known is not None:
        known[key] = identity
    return await get_customer(tx.session, customer_id), identity, created


async def _placed_by_plugin(tx: Tx, data: IdentityInput) -> uuid.UUID | None:
    async def live_customer(answer: object) -> bool:
        if not isinstance(answer, uuid.UUID):
            return False
        try:
            await get_customer(tx.session, answer)
        except NotFoundError:
            return False
        return True

    found: uuid.UUID | None = await plugins.call_first(
        (await tx.hooks()).guanxi_resolve_customer, accept=live_customer, session=tx.session, identity=data
    )
    return found


async def create_new_people(tx: Tx, people: list[tuple[IdentityInput, Arrival | None]], known: KnownIdentities) -> int:
    """Create, together, the customers of a batch's accounts that :func:`resolve_identity`
    would create one by one: accounts ``known`` says are not attached, without a union id, phone
    or e-mail (core matching is left to :func:`resolve_identity`), that no
    ``guanxi_resolve_customer`` implementation places (its answer is kept in ``known.placed``).
    The customers are inserted in one statement, then their identities, stage history, contact
    points and audit rows in one each; each account's events are held in ``known.fresh``
    until its first :func:`resolve_identity`. ``people``: (account, arrival) in the batch's order
    (the first of an account names its customer and owner, as one by one). Returns how many
    customers were created."""
    todo: dict[tuple[str, str], tuple[IdentityInput, Arrival | None]] = {}
    for data, arrival in people:
        key = (data.channel, data.external_id)
        if key in todo or key not in known or known[key] is not None or key in known.placed:
            continue
        _validate(data)
        if data.union_id or data.phone or data.email:
            continue
        todo[key] = (data, arrival)
    for key, (data, _) in list(todo.items()):
        placed = await _placed_by_plugin(tx, data)
        if placed is not None:
            known.placed[key] = placed
            del todo[key]
    if not todo:
        return 0
    await quotas.check_new_customers(tx, len(todo))
    built: list[tuple[Customer, Stage]] = []
    for data, arrival in todo.values():
        name = data.nickname or f"{data.channel}:{data.external_id}"
        customer, stage = await new_customer(tx, CustomerInput(display_name=name, source=data.channel, arrival=arrival))
        if data.nickname:  # as _attach_new will make it: inserted so, not updated after
            customer.search_text = search_text(customer, [data.nickname])
        built.append((customer, stage))
    await add_new_customers(tx, built)
    for (key, (data, _)), (customer, stage) in zip(todo.items(), built, strict=True):
        with tx.holding_events() as held:
            enter_new_customer(tx, customer, stage)
            known[key] = await _attach_new(tx, customer, data, new_customer=True, flush=False)
        known.fresh[key] = held
        known.customers.append(customer)
    await tx.session.flush()  # the identities (and the rest), together; the session now knows them
    return len(built)
