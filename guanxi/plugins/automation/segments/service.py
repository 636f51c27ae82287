"""Segments: saving them, who is in one (as SQL), and keeping dynamic memberships current.

The API the rest of automation codes against:

* :func:`members_query` ``(runtime, session, segment)`` → a ``select`` of customer ids;
* :func:`contains` ``(runtime, session, segment, customer_id)`` → bool;
* :func:`refresh` / :func:`refresh_customer` → membership rows updated, and the
  ``guanxi_segment_membership_changed`` hook emitted for those who entered or left.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, delete, func, select

from guanxi import ConflictError, NotFoundError, RequestContext, Runtime, Tx, ValidationError
from guanxi.core.base.context import Actor
from guanxi.core.domain.events import SegmentMembershipChanged
from guanxi.core.domain.models import Customer, utcnow
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.automation.segments import definition as defn
from guanxi.plugins.automation.segments.models import AutomationSegment, AutomationSegmentMember
from guanxi.plugins.automation.segments.models import AutomationSegmentMember as Member

KINDS = ("dynamic", "static")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: rows written or ids handed to one event at a time (bounded memory whatever the segment's size)
BATCH = 1000
#: most customers a static segment's CSV may list
MAX_CSV_ROWS = 100_000
ACTOR = Actor(kind="plugin", name="automation")
HOOK = "guanxi_segment_membership_changed"


class SegmentInput(msgspec.Struct, kw_only=True):
    key: str
    name: str
    kind: str = "dynamic"
    description: str | None = None
    definition: dict[str, Any] | None = None
    customer_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    csv: str | None = None


async def get_segment(session: TenantSession, segment_id: uuid.UUID) -> AutomationSegment:
    """The tenant's segment, or ``NOT_FOUND`` (another tenant's id is not found either)."""
    segment = await session.get(AutomationSegment, (session.tenant_id, segment_id))
    if segment is None:
        raise NotFoundError(f"segment {segment_id} not found", field="segmentId")
    return segment


async def condition(runtime: Runtime, session: TenantSession, segment: AutomationSegment) -> ColumnElement[bool]:
    """Who is in the segment, as a condition on ``customers``: a dynamic segment's compiled
    definition, a static segment's list."""
    if segment.kind == "dynamic" and segment.definition is not None:
        return await defn.compile_condition(runtime, session, segment.definition)
    listed = select(AutomationSegmentMember.customer_id).where(AutomationSegmentMember.segment_id == segment.id)
    return Customer.id.in_(listed)


async def members_query(runtime: Runtime, session: TenantSession, segment: AutomationSegment | uuid.UUID) -> Select[Any]:
    """A ``select`` of the ids of the segment's customers now (never merged tombstones). Run it
    on a session of the segment's tenant; add ``order_by``/``limit`` or use it as a subquery."""
    if not isinstance(segment, AutomationSegment):
        segment = await get_segment(session, segment)
    return select(Customer.id).where(Customer.merged_into_id.is_(None), await condition(runtime, session, segment))


async def contains(runtime: Runtime, session: TenantSession, segment: AutomationSegment | uuid.UUID, customer_id: uuid.UUID) -> bool:
    """Whether the customer is in the segment now (one statement after compiling)."""
    stmt = (await members_query(runtime, session, segment)).where(Customer.id == customer_id)
    return (await session.execute(stmt.limit(1))).first() is not None


async def count(runtime: Runtime, session: TenantSession, segment: AutomationSegment) -> int:
    sub = (await members_query(runtime, session, segment)).subquery()
    return int((await session.execute(select(func.count()).select_from(sub))).scalar_one())


async def preview_definition(runtime: Runtime, session: TenantSession, definition: Any, first: int) -> tuple[int, list[uuid.UUID]]:
    """How many customers a definition matches and the first ``first`` of them (newest first),
    without saving it."""
    checked = defn.check(runtime, definition)
    where = await defn.compile_condition(runtime, session, checked)
    base = select(Customer.id).where(Customer.merged_into_id.is_(None), where)
    total = int((await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one())
    ids = list((await session.execute(base.order_by(Customer.created_at.desc(), Customer.id.desc()).limit(first))).scalars())
    return total, ids


def _check_input(runtime: Runtime, data: SegmentInput) -> dict[str, Any] | None:
    if not KEY.match(data.key):
        raise ValidationError("key must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit", field="key")
    if not 0 < len(data.name.strip()) <= 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    if data.kind == "dynamic":
        if data.definition is None:
            raise ValidationError("a dynamic segment needs a definition", field="definition")
        if data.customer_ids or data.csv:
            raise ValidationError("a dynamic segment takes a definition, not a list of customers", field="customerIds")
        return defn.check(runtime, data.definition)
    if data.definition is not None:
        raise ValidationError("a static segment is a list of customers, not a definition", field="definition")
    return None


async def _csv_customers(session: TenantSession, text: str) -> list[uuid.UUID]:
    """Customer ids of a CSV with a header row holding ``id`` (a customer id) or ``email`` or
    ``phone``. An id, email or phone that names nobody is refused with its line number."""
    from guanxi.graphql.ids import from_global_id

    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    column = next((c for c in ("id", "email", "phone") if c in columns), None)
    if column is None:
        raise ValidationError("the CSV needs a header row with an id, email or phone column", field="csv")
    original = (reader.fieldnames or [])[columns.index(column)]
    out: list[uuid.UUID] = []
    for number, row in enumerate(reader, start=2):
        if number - 1 > MAX_CSV_ROWS:
            raise ValidationError(f"the CSV lists more than {MAX_CSV_ROWS} customers", field="csv")
        value = (row.get(original) or "").strip()
        if not value:
            continue
        found: uuid.UUID | None
        if column == "id":
            try:
                found = uuid.UUID(value)
            except ValueError:
                found = from_global_id(value, "Customer", field=f"csv line {number}")
            exists = select(Customer.id).where(Customer.id == found, Customer.merged_into_id.is_(None))
            found = (await session.execute(exists)).scalar_one_or_none()
        else:
            word = value.lower()
            candidates = select(Customer.id, getattr(Customer, f"{column}s")).where(
                Customer.merged_into_id.is_(None), Customer.search_text.like(f"%{word}%")
            )
            found = next((cid for cid, values in (await session.execute(candidates)).all() if word in [v.lower() for v in values]), None)
        if found is None:
            raise ValidationError(f"CSV line {number}: no customer with {column} {value!r}", field="csv")
        out.append(found)
    return list(dict.fromkeys(out))


async def create_segment(tx: Tx, data: SegmentInput) -> AutomationSegment:
    """Save a segment; a dynamic one's membership is evaluated at once (entry events for all)."""
    checked = _check_input(tx.runtime, data)
    s = tx.session
    if (await s.execute(select(AutomationSegment.id).where(AutomationSegment.key == data.key))).first() is not None:
        raise ConflictError(f"a segment with key {data.key!r} exists", field="key")
    if data.kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    segment = AutomationSegment(
        key=data.key,
        name=data.name.strip(),
        description=data.description,
        kind=data.kind,
        definition=checked,
        created_by=tx.ctx.actor.user_id,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    s.add(segment)
    await s.flush()
    if data.kind == "static":
        listed = list(data.customer_ids)
        if data.csv:
            listed += await _csv_customers(s, data.csv)
        await add_members(tx, segment, listed)
    else:
        await refresh(tx, segment)
        await _schedule_refresh(tx)
    audit(tx, "segment.create", "segment", segment.id, {"key": segment.key, "kind": segment.kind})
    return segment


async def add_members(tx: Tx, segment: AutomationSegment, customer_ids: Sequence[uuid.UUID]) -> int:
    """Add customers to a static segment (entry events for the new ones); unknown ids refused."""
    wanted = list(dict.fromkeys(customer_ids))
    s = tx.session
    added: list[uuid.UUID] = []
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        live = set((await s.execute(select(Customer.id).where(Customer.id.in_(chunk), Customer.merged_into_id.is_(None)))).scalars())
        missing = [c for c in chunk if c not in live]
        if missing:
            raise NotFoundError(f"customer {missing[0]} not found", field="customerIds")
        have = set(
            (
                await s.execute(
                    select(AutomationSegmentMember.customer_id).where(
                        AutomationSegmentMember.segment_id == segment.id, AutomationSegmentMember.customer_id.in_(chunk)
                    )
                )
            ).scalars()
        )
        new = [c for c in chunk if c not in have]
        s.add_all([AutomationSegmentMember(segment_id=segment.id, customer_id=c, entered_at=utcnow()) for c in new])
        await s.flush()
        added += new
    _emit(tx, segment, added, [])
    return len(added)


async def update_segment(
    tx: Tx, segment: AutomationSegment, *, name: str | None, description: str | None, definition: Any
) -> AutomationSegment:
    """Rename or redefine a segment; a new definition re-evaluates membership (entry and exit
    events for the difference)."""
    if name is not None:
        if not 0 < len(name.strip()) <= 200:
            raise ValidationError("name must be 1 to 200 characters", field="name")
        segment.name = name.strip()
    if description is not None:
        segment.description = description
    if definition is not None:
        if segment.kind != "dynamic":
            raise ValidationError("a static segment is a list of customers, not a definition", field="definition")
        segment.definition = defn.check(tx.runtime, definition)
    segment.updated_at = utcnow()
    await tx.session.flush()
    if definition is not None:
        await refresh(tx, segment)
    audit(tx, "segment.update", "segment", segment.id, {"key": segment.key})
    return segment


async def delete_segment(tx: Tx, segment: AutomationSegment) -> None:
    await tx.session.execute(delete(AutomationSegmentMember).where(AutomationSegmentMember.segment_id == segment.id))
    await tx.session.delete(segment)
    audit(tx, "segment.delete", "segment", segment.id, {"key": segment.key})


REFRESH_JOB = "automation.segments_refresh"


async def _schedule_refresh(tx: Tx) -> None:
    """The tenant's periodic full refresh of dynamic segments (one job per tenant)."""
    from guanxi.core.services.schedule import schedule_job
    from guanxi.plugins.automation.settings import AutomationSettings

    settings = tx.runtime.plugin_settings("automation")
    cron = settings.segment_refresh_cron if isinstance(settings, AutomationSettings) else AutomationSettings().segment_refresh_cron
    await schedule_job(tx, REFRESH_JOB, "automation:segments:refresh", cron=cron)


def _emit(tx: Tx, segment: AutomationSegment, entered: list[uuid.UUID], exited: list[uuid.UUID]) -> None:
    if entered or exited:
        tx.emit(
            HOOK,
            SegmentMembershipChanged(
                tenant_id=tx.tenant_id, actor=tx.ctx.actor, segment_id=segment.id, segment_key=segment.key, entered=entered, exited=exited
            ),
        )


async def refresh(tx: Tx, segment: AutomationSegment) -> tuple[int, int]:
    """Re-evaluate a dynamic segment in full: members rows follow the definition, and the hook
    fires for who entered and who left (in events of at most :data:`BATCH` customers).
    Returns (entered, exited). Memory is bounded by the batch, whatever the segment's size."""
    if segment.kind != "dynamic":
        return 0, 0
    s = tx.session
    current = await members_query(tx.runtime, s, segment)
    stored = select(AutomationSegmentMember.customer_id).where(AutomationSegmentMember.segment_id == segment.id)
    entered = exited = 0
    while True:
        ids = list((await s.execute(current.where(Customer.id.not_in(stored)).order_by(Customer.id).limit(BATCH))).scalars())
        if not ids:
            break
        now = utcnow()
        s.add_all([AutomationSegmentMember(segment_id=segment.id, customer_id=c, entered_at=now) for c in ids])
        await s.flush()
        _emit(tx, segment, ids, [])
        entered += len(ids)
    matching = current.with_only_columns(Customer.id)
    while True:
        gone = list((await s.execute(stored.where(AutomationSegmentMember.customer_id.not_in(matching)).limit(BATCH))).scalars())
        if not gone:
            break
        await s.execute(
            delete(AutomationSegmentMember).where(
                AutomationSegmentMember.segment_id == segment.id, AutomationSegmentMember.customer_id.in_(gone)
            )
        )
        _emit(tx, segment, [], gone)
        exited += len(gone)
    segment.refreshed_at = utcnow()
    return entered, exited


async def refresh_customer(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """After a change to one customer: for every dynamic segment of the tenant, enter or leave
    it as the definition now says (two statements per dynamic segment, one when there is none)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        s = tx.session
        segments = list((await s.execute(select(AutomationSegment).where(AutomationSegment.kind == "dynamic"))).scalars())
        if not segments:
            return
        held = set(
            (
                await s.execute(
                    select(AutomationSegmentMember.segment_id).where(
                        AutomationSegmentMember.customer_id == customer_id,
                        AutomationSegmentMember.segment_id.in_([g.id for g in segments]),
                    )
                )
            ).scalars()
        )
        for segment in segments:
            now_in = await contains(runtime, s, segment, customer_id)
            if now_in and segment.id not in held:
                s.add(AutomationSegmentMember(segment_id=segment.id, customer_id=customer_id, entered_at=utcnow()))
                _emit(tx, segment, [customer_id], [])
            elif not now_in and segment.id in held:
                await s.execute(
                    delete(AutomationSegmentMember).where(
                        AutomationSegmentMember.segment_id == segment.id, AutomationSegmentMember.customer_id == customer_id
                    )
                )
                _emit(tx, segment, [], [customer_id])


async def refresh_all(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[int, int]:
    """Re-evaluate every dynamic segment of a tenant (the periodic job: conditions on time change
    with no event). Returns the total (entered, exited)."""
    totals = [0, 0]
    async with runtime.session(tenant_id) as session:
        ids = list((await session.execute(select(AutomationSegment.id).where(AutomationSegment.kind == "dynamic"))).scalars())
    for segment_id in ids:
        async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
            segment = await tx.session.get(AutomationSegment, (tenant_id, segment_id))
            if segment is not None:
                entered, exited = await refresh(tx, segment)
                totals[0] += entered
                totals[1] += exited
    return totals[0], totals[1]


async def customers_merged(runtime: Runtime, tenant_id: uuid.UUID, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """The survivor takes the merged customer's places in static segments (it keeps its own);
    dynamic memberships are re-evaluated for the survivor."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        s = tx.session
        have = set((await s.execute(select(Member.segment_id).where(Member.customer_id == survivor_id))).scalars())
        rows = list((await s.execute(select(Member).where(Member.customer_id == merged_id))).scalars())
        for row in rows:
            if row.segment_id not in have:
                s.add(Member(segment_id=row.segment_id, customer_id=survivor_id, entered_at=row.entered_at))
        await s.flush()
        await s.execute(delete(Member).where(Member.customer_id == merged_id))
    await refresh_customer(runtime, tenant_id, survivor_id)


async def segments_of(session: TenantSession, customer_id: uuid.UUID) -> list[str]:
    """The keys of the segments a customer is in (as last evaluated)."""
    stmt = (
        select(AutomationSegment.key)
        .join(
            AutomationSegmentMember,
            (AutomationSegmentMember.tenant_id == AutomationSegment.tenant_id)
            & (AutomationSegmentMember.segment_id == AutomationSegment.id),
        )
        .where(AutomationSegmentMember.customer_id == customer_id)
        .order_by(AutomationSegment.key)
    )
    return list((await session.execute(stmt)).scalars())
