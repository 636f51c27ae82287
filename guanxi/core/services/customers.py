"""Create, read and update customers."""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

import msgspec
from sqlalchemy import and_, delete, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm.util import identity_key

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.contracts import Arrival
from guanxi.core.domain.events import CustomerCreated, CustomerData, CustomerUpdated
from guanxi.core.domain.models import ContactPoint, Customer, Identity, Pipeline, Stage, User, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services import quotas
from guanxi.core.services.audit import audit
from guanxi.core.services.pipelines import move_stage, record_stage_change
from guanxi.core.services.stages import arrival_pipeline, pipeline_by_key, target_stage
from guanxi.core.storage.tenancy import ALL_OWNERS, TenantSession

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_CHARS = re.compile(r"[\s\-().]")
UNSET: Final = msgspec.UNSET


class CustomerInput(msgspec.Struct, kw_only=True):
    display_name: str
    company: str | None = None
    phones: list[str] = msgspec.field(default_factory=list)
    emails: list[str] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    owner_id: uuid.UUID | None = None
    stage: str | None = None  # stage key; default: the pipeline's first stage
    source: str | None = None
    #: pipeline key; default: the pipeline whose arrival rule names the source, else the default
    pipeline: str | None = None
    #: a phone or e-mail another customer has: "create" anyway, "refuse" (DUPLICATE), or "link"
    #: (:func:`create_or_link` gives back the existing customer with the new contact points)
    on_duplicate: str = "create"
    #: how a customer a channel brings arrived (for ``guanxi_assign_owner``)
    arrival: Arrival | None = None


class CustomerPatch(msgspec.Struct, kw_only=True):
    """Fields left UNSET are not changed; ``None`` clears an optional field.

    ``attributes`` is a JSON merge patch (RFC 7396, :func:`merge_patch`) of the customer's
    attributes: the keys given are set (objects merged key by key), a key whose value is
    ``None`` is removed, keys not given stay; ``None`` for the whole removes every attribute."""

    display_name: str | msgspec.UnsetType = UNSET
    company: str | msgspec.UnsetType | None = UNSET
    phones: list[str] | msgspec.UnsetType = UNSET
    emails: list[str] | msgspec.UnsetType = UNSET
    attributes: dict[str, Any] | msgspec.UnsetType | None = UNSET
    owner_id: uuid.UUID | msgspec.UnsetType | None = UNSET
    source: str | msgspec.UnsetType | None = UNSET


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396) to ``target``; neither argument is changed.

    A patch that is an object merges into the target key by key (recursively); a ``None``
    value removes the key; any other patch (a string, a list, ``None``) replaces the target."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def normalize_phone(raw: str) -> str:
    """Strip spaces and punctuation; keep a leading +. Raises ValidationError when not a phone."""
    phone = _PHONE_CHARS.sub("", raw.strip())
    digits = phone[1:] if phone.startswith("+") else phone
    if not digits.isdigit() or not 5 <= len(digits) <= 20:
        raise ValidationError(f"{raw!r} is not a phone number (5 to 20 digits, optional leading +)", field="phones")
    return phone


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValidationError(f"{raw!r} is not an email address", field="emails")
    return email


def _clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValidationError("display name must not be empty", field="displayName")
    if len(name) > 200:
        raise ValidationError("display name is longer than 200 characters", field="displayName")
    return name


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def search_text(customer: Customer, nicknames: list[str] | None = None) -> str:
    parts = [customer.display_name, customer.company or "", *customer.phones, *customer.emails, *(nicknames or [])]
    return " ".join(filter(None, parts)).lower()  # lowered once: the same as part by part (spaces between)


def snapshot(customer: Customer) -> CustomerData:
    return CustomerData(
        id=customer.id,
        display_name=customer.display_name,
        company=customer.company,
        phones=list(customer.phones),
        emails=list(customer.emails),
        attributes=dict(customer.attributes),
        owner_id=customer.owner_id,
        stage_id=customer.stage_id,
        source=customer.source,
        created_at=customer.created_at,
    )


#: ``session.info`` key: the owners :func:`_check_owner` loaded, kept referenced so that the
#: session's identity map (which holds objects weakly) answers for them again without a statement
#: (a batch of the inbox gives many new customers the same owners)
_OWNERS_SEEN = "guanxi.owners_seen"


async def _check_owner(session: TenantSession, owner_id: uuid.UUID) -> None:
    user = await session.get(User, (session.tenant_id, owner_id))
    if user is not None:
        session.info.setdefault(_OWNERS_SEEN, {})[owner_id] = user
    if user is None or not user.active:
        raise ValidationError(f"owner {owner_id} is not an active user of this tenant", field="ownerId")


async def _sync_contact_points(session: TenantSession, customer: Customer, *, new: bool = False) -> None:
    """Make the customer's contact points its phones and e-mails (a ``new`` customer has none
    to delete yet)."""
    if not new:
        await session.execute(delete(ContactPoint).where(ContactPoint.customer_id == customer.id))
    elif not customer.phones and not customer.emails:
        return
    for kind, values in (("phone", customer.phones), ("email", customer.emails)):
        for value in values:
            session.add(ContactPoint(customer_id=customer.id, kind=kind, value=value))
    await session.flush()


async def get_customer(session: TenantSession, customer_id: uuid.UUID, *, follow_merges: bool = True) -> Customer:
    """Load a customer of the session's tenant; a merged id leads to the surviving customer."""
    for _ in range(16):
        customer = _loaded(session, customer_id)
        if customer is None:
            customer = await session.get(Customer, (session.tenant_id, customer_id))
        if customer is None:
            raise NotFoundError(f"customer {customer_id} not found")
        if customer.merged_into_id is None or not follow_merges:
            return customer
        customer_id = customer.merged_into_id
    raise NotFoundError(f"customer {customer_id} merge chain is too long")


def _loaded(session: TenantSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, when the session holds it loaded and current: what ``session.get`` would
    answer from its identity map, without its trip through the async layer (the inbox asks for
    a batch's customers several times per event)."""
    found = session.sync_session.identity_map.get(identity_key(Customer, (session.tenant_id, customer_id)))
    if not isinstance(found, Customer):
        return None
    state = sa_inspect(found)
    return None if state.expired_attributes or state.deleted or state.was_deleted else found


ON_DUPLICATE = frozenset({"create", "refuse", "link"})


async def duplicates_of(session: TenantSession, phones: list[str], emails: list[str]) -> list[tuple[uuid.UUID, str, str]]:
    """Live customers of the tenant (every owner's) holding one of these phones or e-mails, as
    (customer id, kind, value), oldest customer first."""
    # per kind ``kind = ? AND value IN (…)``: a lookup in the (tenant, kind, value) index; SQLite
    # planned ``(kind, value) IN (VALUES …)`` as a walk over every customer of the tenant
    found: list[tuple[uuid.UUID, str, str, Any, uuid.UUID]] = []
    for kind, values in (("phone", phones), ("email", emails)):
        if not values:
            continue
        stmt = (
            select(ContactPoint.customer_id, ContactPoint.kind, ContactPoint.value, Customer.created_at, Customer.id)
            .join(Customer, and_(Customer.tenant_id == ContactPoint.tenant_id, Customer.id == ContactPoint.customer_id))
            .where(
                ContactPoint.kind == kind,
                ContactPoint.value.in_(sorted(set(values))),
                Customer.merged_into_id.is_(None),
                Customer.erased_at.is_(None),
            )
            .execution_options(**{ALL_OWNERS: True})
        )
        found.extend((r[0], r[1], r[2], r[3], r[4]) for r in (await session.execute(stmt)).all())
    found.sort(key=lambda r: (r[3], r[4], r[1] != "phone", r[2]))  # oldest customer first
    return [(r[0], r[1], r[2]) for r in found]


async def _visible(session: TenantSession, customer_id: uuid.UUID) -> Customer | None:
    try:
        return await get_customer(session, customer_id)
    except NotFoundError:
        return None


async def create_or_link(tx: Tx, data: CustomerInput) -> tuple[Customer, bool]:
    """Create a customer, or with ``on_duplicate="link"`` give back the (oldest) existing
    customer the caller may see that holds one of its phones or e-mails, adding the new ones to
    it; returns (customer, linked). A duplicate the caller may not see is refused (DUPLICATE)."""
    if data.on_duplicate not in ON_DUPLICATE:
        raise ValidationError(f"onDuplicate must be one of {', '.join(sorted(ON_DUPLICATE))}", field="onDuplicate")
    if data.on_duplicate != "link":
        return await create_customer(tx, data), False
    phones = _dedupe([normalize_phone(p) for p in data.phones])
    emails = _dedupe([normalize_email(e) for e in data.emails])
    found = await duplicates_of(tx.session, phones, emails)
    if not found:
        return await create_customer(tx, data), False
    for customer_id, _, _ in found:
        existing = await _visible(tx.session, customer_id)
        if existing is not None:
            patch = CustomerPatch(
                phones=_dedupe([*existing.phones, *phones]) if set(phones) - set(existing.phones) else UNSET,
                emails=_dedupe([*existing.emails, *emails]) if set(emails) - set(existing.emails) else UNSET,
                company=data.company if data.company and not existing.company else UNSET,
            )
            await update_customer(tx, existing.id, patch)
            audit(tx, "customer.link", "customer", existing.id, {"phones": phones, "emails": emails, "source": data.source})
            return existing, True
    _refuse_duplicate(found)
    raise AssertionError("unreachable")  # pragma: no cover


def _refuse_duplicate(found: list[tuple[uuid.UUID, str, str]], visible: uuid.UUID | None = None) -> None:
    _, kind, value = found[0]
    field = "phones" if kind == "phone" else "emails"
    whose = f" (customer {visible})" if visible is not None else ""
    raise ConflictError(f"another customer{whose} has the {kind} {value}", field=field, code="DUPLICATE")


#: ``session.info`` key: a dict that keeps, for the session's transaction, the stage new
#: customers enter by (pipeline, stage, source); a batch of the inbox sets it (every new
#: customer of the batch would read the same pipelines and stages again)
ENTRY_STAGES = "guanxi.entry_stages"


async def _entry_stage(session: TenantSession, data: CustomerInput) -> Stage:
    memo: dict[tuple[str | None, str | None, str | None], Stage] | None = session.info.get(ENTRY_STAGES)
    key = (data.pipeline, data.stage, None if data.pipeline is not None else data.source)
    if memo is not None and (stage := memo.get(key)) is not None:
        return stage
    if data.pipeline is not None:
        pipeline = await pipeline_by_key(session, data.pipeline)
    else:
        pipeline = await arrival_pipeline(session, data.source)
    stage = await target_stage(session, pipeline, data.stage)
    if memo is not None:
        memo[key] = stage
    return stage


async def create_customer(tx: Tx, data: CustomerInput) -> Customer:
    session = tx.session
    await quotas.check_new_customers(tx)
    customer, stage = await new_customer(tx, data)
    session.add(customer)
    await session.flush()
    await _sync_contact_points(session, customer, new=True)
    await move_stage(tx, customer, stage, reason="created")
    _record_created(tx, customer)
    return customer


async def new_customer(tx: Tx, data: CustomerInput) -> tuple[Customer, Stage]:
    """A customer built from ``data`` (validated, its owner chosen: the caller's, else the
    ``guanxi_assign_owner`` hook), not added to the session yet, and the stage it enters by.
    :func:`create_customer` writes it; a batch (:func:`add_new_customers`) writes many together."""
    session = tx.session
    if data.on_duplicate == "refuse":
        found = await duplicates_of(
            session, _dedupe([normalize_phone(p) for p in data.phones]), _dedupe([normalize_email(e) for e in data.emails])
        )
        if found:
            seen = await _visible(session, found[0][0])
            _refuse_duplicate(found, seen.id if seen is not None else None)
    customer = Customer(
        id=new_id(),
        display_name=_clean_name(data.display_name),
        company=(data.company or "").strip() or None,
        phones=_dedupe([normalize_phone(p) for p in data.phones]),
        emails=_dedupe([normalize_email(e) for e in data.emails]),
        attributes=dict(data.attributes),
        owner_id=data.owner_id,
        source=data.source,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    stage = await _entry_stage(session, data)
    if customer.owner_id is None and tx.ctx.owners is not None and tx.ctx.actor.user_id is not None:
        # a salesperson's (or manager's) new customer is theirs, or they could not see it
        customer.owner_id = tx.ctx.actor.user_id
    if customer.owner_id is not None:
        await _check_owner(session, customer.owner_id)
    else:

        async def active_user(answer: object) -> bool:
            if not isinstance(answer, uuid.UUID):
                return False
            try:
                await _check_owner(session, answer)
            except ValidationError:
                return False
            return True

        customer.owner_id = await plugins.call_first(
            (await tx.hooks()).guanxi_assign_owner,
            accept=active_user,
            runtime=tx.runtime,
            session=session,
            customer=snapshot(customer),
            arrival=data.arrival,
        )
    customer.search_text = search_text(customer)
    return customer, stage


async def add_new_customers(tx: Tx, built: list[tuple[Customer, Stage]]) -> None:
    """Insert customers made by :func:`new_customer` (the caller checked the quota for all of
    them), each already at its entry stage: one multi-row ``INSERT`` now (no ``UPDATE`` after);
    then the caller calls :func:`enter_new_customer` for each (their contact points, stage
    history and audit rows are inserted together at the session's next flush)."""
    for customer, stage in built:
        customer.stage_id = stage.id
        tx.session.add(customer)
    await tx.session.flush()


def enter_new_customer(tx: Tx, customer: Customer, stage: Stage) -> None:
    """What :func:`create_customer` records after the customer's row, for a customer inserted
    by :func:`add_new_customers`: contact points, entry into ``stage``, audit, events."""
    for kind, values in (("phone", customer.phones), ("email", customer.emails)):
        for value in values:
            tx.session.add(ContactPoint(customer_id=customer.id, kind=kind, value=value))
    record_stage_change(tx, customer, stage, None, None, reason="created")
    _record_created(tx, customer)


def _record_created(tx: Tx, customer: Customer) -> None:
    audit(
        tx,
        "customer.create",
        "customer",
        customer.id,
        {"display_name": customer.display_name, "phones": customer.phones, "emails": customer.emails, "source": customer.source},
    )
    tx.emit("guanxi_customer_created", CustomerCreated(tenant_id=tx.tenant_id, actor=tx.ctx.actor, customer=snapshot(customer)))


async def update_customer(tx: Tx, customer_id: uuid.UUID, patch: CustomerPatch) -> Customer:
    session = tx.session
    customer = await get_customer(session, customer_id)
    changed: dict[str, list[Any]] = {}

    def setf(name: str, value: Any) -> None:
        old = getattr(customer, name)
        if old != value:
            changed[name] = [old, value]
            setattr(customer, name, value)

    if patch.display_name is not UNSET:
        setf("display_name", _clean_name(patch.display_name))
    if patch.company is not UNSET:
        setf("company", (patch.company or "").strip() or None)
    if patch.phones is not UNSET:
        setf("phones", _dedupe([normalize_phone(p) for p in patch.phones]))
    if patch.emails is not UNSET:
        setf("emails", _dedupe([normalize_email(e) for e in patch.emails]))
    if patch.attributes is not UNSET:
        setf("attributes", {} if patch.attributes is None else merge_patch(customer.attributes, patch.attributes))
    if patch.owner_id is not UNSET:
        if patch.owner_id is not None:
            await _check_owner(session, patch.owner_id)
        setf("owner_id", patch.owner_id)
    if patch.source is not UNSET:
        setf("source", patch.source)
    if not changed:
        return customer
    customer.updated_at = utcnow()
    if {"display_name", "company", "phones", "emails"} & changed.keys():
        nick_rows = await session.execute(select(Identity.nickname).where(Identity.customer_id == customer.id))
        customer.search_text = search_text(customer, [n for n in nick_rows.scalars() if n])
        if {"phones", "emails"} & changed.keys():
            await _sync_contact_points(session, customer)
    audit(tx, "customer.update", "customer", customer.id, changed)
    tx.emit(
        "guanxi_customer_updated", CustomerUpdated(tenant_id=tx.tenant_id, actor=tx.ctx.actor, customer=snapshot(customer), changed=changed)
    )
    return customer


async def set_stage(
    tx: Tx,
    customer_id: uuid.UUID,
    stage_key: str,
    *,
    reason: str | None = None,
    rule: str | None = None,
    pipeline: str | None = None,
) -> Customer:
    """Move a customer to the stage with this key of its pipeline, or of ``pipeline`` (a move
    to another pipeline; the history keeps both)."""
    customer = await get_customer(tx.session, customer_id)
    current = await tx.session.get(Stage, (tx.tenant_id, customer.stage_id)) if customer.stage_id and pipeline is None else None
    found = await tx.session.get(Pipeline, (tx.tenant_id, current.pipeline_id)) if current else None
    if found is None:
        found = await pipeline_by_key(tx.session, pipeline)
    stage = await target_stage(tx.session, found, stage_key)
    await move_stage(tx, customer, stage, reason=reason, rule=rule)
    return customer
