"""Read queries used by the API: customer lists with filters, keyset pagination and counts,
and the funnel report. Tenant scoping is applied by the session (:mod:`guanxi.core.storage.tenancy`)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, and_, case, distinct, func, literal, or_, select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Customer, CustomerCount, CustomerTag, Identity, Pipeline, Stage, StageChange, Tag
from guanxi.core.services.fields import FieldCondition, apply_conditions
from guanxi.core.services.tags import split_tag
from guanxi.core.storage.tenancy import TenantSession

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class CustomerOrder(enum.Enum):
    CREATED_AT_DESC = "created_at_desc"
    CREATED_AT_ASC = "created_at_asc"
    UPDATED_AT_DESC = "updated_at_desc"
    NAME_ASC = "name_asc"
    LAST_INTERACTION_DESC = "last_interaction_desc"


class CustomerFilter(msgspec.Struct, kw_only=True):
    stages: list[str] | None = None  # stage keys
    pipelines: list[str] | None = None  # pipeline keys: customers standing in one of them
    tags_any: list[str] | None = None  # tag labels, "name" or "group/name"
    tags_all: list[str] | None = None
    owner_ids: list[uuid.UUID] | None = None
    unassigned: bool | None = None
    channels: list[str] | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    search: str | None = None
    #: conditions on custom fields (:mod:`guanxi.core.services.fields`)
    fields: list[FieldCondition] | None = None
    #: conditions contributed by plugins (see :class:`CustomerCondition`), each already bound to
    #: the caller's value; applied after core's own, all must hold
    conditions: list[Any] = msgspec.field(default_factory=list)  # list[CustomerCondition]


#: A plugin's filter condition: takes core's customer select and returns it with a condition
#: added (``stmt.where(...)``), e.g. ``lambda stmt: stmt.where(Customer.id.in_(subquery))``.
CustomerCondition = Callable[[Select[Any]], Select[Any]]


@dataclass(frozen=True)
class CustomerOrdering:
    """An ordering of customer lists contributed by a plugin (the API's ``orderBy`` values).

    :param key: the ordering's name, lower_snake_case (``score_desc``); the API shows it upper
        case (``SCORE_DESC``) and writes it into cursors.
    :param expression: returns the SQL sort key for core's customer select, an expression over
        :class:`~guanxi.core.domain.models.Customer` (typically a correlated scalar subquery on the
        plugin's table). It must never be NULL (``coalesce`` it): keyset pagination compares it.
    :param descending: sort from the largest value.
    :param description: shown in the schema.

    :param from_cursor: turns the sort value read back from a cursor (numbers and times keep
        their type, anything else comes back as text) into what the expression compares with.

    Ties are broken by customer id in the same direction, and pages continue after the last row's
    (sort key, id), as for core's orderings.
    """

    key: str
    expression: Callable[[], ColumnElement[Any]]
    descending: bool = True
    description: str = ""
    from_cursor: Callable[[Any], Any] | None = None


#: The columns a customer list returns (enough to build the API's Customer object).
CUSTOMER_COLUMNS = (
    Customer.id,
    Customer.display_name,
    Customer.company,
    Customer.phones,
    Customer.emails,
    Customer.attributes,
    Customer.owner_id,
    Customer.stage_id,
    Customer.source,
    Customer.merged_into_id,
    Customer.last_interaction_at,
    Customer.created_at,
    Customer.updated_at,
)


def _order_columns(order: CustomerOrder | CustomerOrdering) -> tuple[Any, bool]:
    """(sort expression, descending)."""
    if isinstance(order, CustomerOrdering):
        return order.expression(), order.descending
    match order:
        case CustomerOrder.CREATED_AT_DESC:
            return Customer.created_at, True
        case CustomerOrder.CREATED_AT_ASC:
            return Customer.created_at, False
        case CustomerOrder.UPDATED_AT_DESC:
            return Customer.updated_at, True
        case CustomerOrder.NAME_ASC:
            return Customer.display_name, False
        case CustomerOrder.LAST_INTERACTION_DESC:
            return func.coalesce(Customer.last_interaction_at, literal(EPOCH, Customer.last_interaction_at.type)), True


def sort_key(order: CustomerOrder | CustomerOrdering, row: Any) -> Any:
    """The value of the sort expression for a loaded row (for cursors)."""
    if isinstance(order, CustomerOrdering):
        return row.sort_value
    match order:
        case CustomerOrder.CREATED_AT_DESC | CustomerOrder.CREATED_AT_ASC:
            return row.created_at
        case CustomerOrder.UPDATED_AT_DESC:
            return row.updated_at
        case CustomerOrder.NAME_ASC:
            return row.display_name
        case CustomerOrder.LAST_INTERACTION_DESC:
            return row.last_interaction_at or EPOCH


#: the longest ``search`` of a customer filter
MAX_SEARCH_CHARS = 200


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _tag_ids(session: TenantSession, labels: list[str]) -> list[uuid.UUID | None]:
    """Tag ids for labels, in order; None for a label that names no tag."""
    out: list[uuid.UUID | None] = []
    for label in labels:
        group, name = split_tag(label)
        out.append((await session.execute(select(Tag.id).where(Tag.group_name == group, Tag.name == name))).scalar_one_or_none())
    return out


async def apply_filter(session: TenantSession, stmt: Select[Any], flt: CustomerFilter | None) -> Select[Any] | None:
    """Add the filter's conditions; None means the filter can match nothing (unknown tag)."""
    stmt = stmt.where(Customer.merged_into_id.is_(None))
    if flt is None:
        return stmt
    if flt.stages:
        stage_ids = select(Stage.id).where(Stage.key.in_(flt.stages))
        stmt = stmt.where(Customer.stage_id.in_(stage_ids))
    if flt.pipelines:
        in_pipelines = select(Stage.id).join(Pipeline, and_(Pipeline.tenant_id == Stage.tenant_id, Pipeline.id == Stage.pipeline_id))
        stmt = stmt.where(Customer.stage_id.in_(in_pipelines.where(Pipeline.key.in_(flt.pipelines))))
    if flt.tags_any:
        ids = [i for i in await _tag_ids(session, flt.tags_any) if i is not None]
        if not ids:
            return None
        stmt = stmt.where(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag_id.in_(ids))))
    if flt.tags_all:
        all_ids = await _tag_ids(session, flt.tags_all)
        if any(i is None for i in all_ids):
            return None
        wanted = set(all_ids)
        sub = (
            select(CustomerTag.customer_id)
            .where(CustomerTag.tag_id.in_(wanted))
            .group_by(CustomerTag.customer_id)
            .having(func.count(distinct(CustomerTag.tag_id)) == len(wanted))
        )
        stmt = stmt.where(Customer.id.in_(sub))
    if flt.owner_ids is not None and flt.unassigned:
        stmt = stmt.where(or_(Customer.owner_id.in_(flt.owner_ids), Customer.owner_id.is_(None)))
    elif flt.owner_ids is not None:
        stmt = stmt.where(Customer.owner_id.in_(flt.owner_ids))
    elif flt.unassigned is not None:
        stmt = stmt.where(Customer.owner_id.is_(None) if flt.unassigned else Customer.owner_id.is_not(None))
    if flt.channels:
        stmt = stmt.where(Customer.id.in_(select(Identity.customer_id).where(Identity.channel.in_(flt.channels))))
    if flt.created_after is not None:
        stmt = stmt.where(Customer.created_at >= flt.created_after)
    if flt.created_before is not None:
        stmt = stmt.where(Customer.created_at < flt.created_before)
    if flt.search and flt.search.strip():
        if len(flt.search) > MAX_SEARCH_CHARS:
            # SQLite refuses LIKE patterns past 50,000 bytes ("pattern too complex"); a search
            # this long finds nothing anyway
            raise ValidationError(f"search is longer than {MAX_SEARCH_CHARS} characters", field="search")
        for word in flt.search.lower().split():
            stmt = stmt.where(Customer.search_text.like(f"%{_escape_like(word)}%", escape="\\"))
    if flt.fields:
        stmt = await apply_conditions(session, stmt, flt.fields)
    for condition in flt.conditions:
        stmt = condition(stmt)
    return stmt


async def list_customers(
    session: TenantSession,
    *,
    flt: CustomerFilter | None = None,
    order: CustomerOrder | CustomerOrdering = CustomerOrder.CREATED_AT_DESC,
    first: int = 20,
    after: tuple[Any, uuid.UUID] | None = None,
    backward: bool = False,
) -> tuple[list[Any], bool]:
    """One page of customers (rows of :data:`CUSTOMER_COLUMNS`) and whether more follow.
    ``after`` is the (sort value, id) of the last row of the previous page. With a plugin's
    :class:`CustomerOrdering`, rows also carry the sort key as ``sort_value``.

    ``backward``: the ``first`` rows *before* ``after`` (the end of the list when it is None),
    still in the list's order; the flag says whether more rows precede them."""
    col, desc = _order_columns(order)
    if backward:
        desc = not desc
    columns = (*CUSTOMER_COLUMNS, col.label("sort_value")) if isinstance(order, CustomerOrdering) else CUSTOMER_COLUMNS
    stmt = await apply_filter(session, select(*columns), flt)
    if stmt is None:
        return [], False
    if after is not None:
        value, last_id = after
        if isinstance(order, CustomerOrdering) and order.from_cursor is not None:
            value = order.from_cursor(value)
        if desc:
            stmt = stmt.where(or_(col < value, and_(col == value, Customer.id < last_id)))
        else:
            stmt = stmt.where(or_(col > value, and_(col == value, Customer.id > last_id)))
    stmt = stmt.order_by(col.desc() if desc else col.asc(), Customer.id.desc() if desc else Customer.id.asc()).limit(first + 1)
    rows = list((await session.execute(stmt)).all())
    page = rows[:first]
    if backward:
        page.reverse()
    return page, len(rows) > first


def unfiltered(flt: CustomerFilter | None) -> bool:
    """Whether the filter sets no condition (all customers but those merged away)."""
    if flt is None:
        return True
    values = msgspec.structs.asdict(flt)
    return not values.pop("conditions") and all(v is None for v in values.values())


def live_count() -> Select[Any]:
    """The tenant's live customers from the counts the triggers keep (``CustomerCount``): a few
    rows read whatever the tenant's size. Only for a session seeing every customer of its tenant
    (a session limited to some owners counts its customers with ``count(*)``)."""
    return select(func.coalesce(func.sum(CustomerCount.n), 0))


async def count_customers(session: TenantSession, flt: CustomerFilter | None = None) -> int:
    """The customers matching ``flt`` that the session sees: exact under filters and ownership
    (``count(*)`` with the filter's conditions and the chokepoint's predicates); without a filter,
    for a session that sees every customer of its tenant, the maintained count (:func:`live_count`)."""
    if session.owners is None and unfiltered(flt):
        return int((await session.execute(live_count())).scalar_one())
    stmt = await apply_filter(session, select(func.count()).select_from(Customer), flt)
    if stmt is None:
        return 0
    return int((await session.execute(stmt)).scalar_one())


class FunnelStep(msgspec.Struct, frozen=True, kw_only=True):
    stage_id: uuid.UUID
    key: str
    name: str
    category: str
    current: int  # customers in this stage now
    reached: int  # customers who got this far (see funnel())
    conversion_from_previous: float | None  # reached / previous main-path step's reached


#: Categories on the main path of a funnel, and those that imply having been won.
MAIN_PATH = ("open", "won")
AFTER_WON = ("retained", "churned")


async def funnel(session: TenantSession, pipeline_id: uuid.UUID | None = None) -> list[FunnelStep]:
    """Counts per stage of a pipeline and conversion between consecutive main-path stages.

    The main path is the open stages in order, then ``won``. For a main-path stage, ``reached``
    counts customers whose history got at least that far: a customer who jumped from lead to
    SQL has reached MQL too, and a retained or churned customer has reached won. For ``lost``,
    ``retained`` and ``churned``, ``reached`` counts customers who ever entered the stage.
    ``conversion_from_previous`` is reached ÷ the previous main-path stage's reached; it is None
    for the first stage, for stages off the main path, and when nobody reached the previous one.
    Merged tombstones are not counted."""
    if pipeline_id is None:
        pipeline_id = (await session.execute(select(Pipeline.id).order_by(Pipeline.is_default.desc(), Pipeline.key).limit(1))).scalar_one()
    live_stages = select(Stage).where(Stage.pipeline_id == pipeline_id, Stage.archived_at.is_(None)).order_by(Stage.position)
    stages = list((await session.execute(live_stages)).scalars())
    main = [s for s in stages if s.category in MAIN_PATH]
    rank = {s.id: i + 1 for i, s in enumerate(main)}
    won_rank = max((rank[s.id] for s in main if s.category == "won"), default=len(main))
    for s in stages:
        if s.category in AFTER_WON:
            rank[s.id] = won_rank
    live = Customer.merged_into_id.is_(None)
    joined = and_(Customer.tenant_id == StageChange.tenant_id, Customer.id == StageChange.customer_id)
    current = dict((await session.execute(select(Customer.stage_id, func.count()).where(live).group_by(Customer.stage_id))).all())
    entered = dict(
        (
            await session.execute(
                select(StageChange.to_stage_id, func.count(distinct(StageChange.customer_id)))
                .join(Customer, joined)
                .where(live)
                .group_by(StageChange.to_stage_id)
            )
        ).all()
    )
    progress: dict[int, int] = {}
    if rank:
        level = case(rank, value=StageChange.to_stage_id, else_=0)
        per_customer = (
            select(func.max(level).label("level")).join(Customer, joined).where(live).group_by(StageChange.customer_id).subquery()
        )
        rows = await session.execute(select(per_customer.c.level, func.count()).group_by(per_customer.c.level))
        progress = {int(lvl): int(n) for lvl, n in rows.all()}

    def got_as_far_as(r: int) -> int:
        return sum(n for lvl, n in progress.items() if lvl >= r)

    steps: list[FunnelStep] = []
    previous: int | None = None
    for stage in stages:
        on_path = stage.category in MAIN_PATH
        reached = got_as_far_as(rank[stage.id]) if on_path else int(entered.get(stage.id, 0))
        conversion = round(reached / previous, 4) if on_path and previous else None
        steps.append(
            FunnelStep(
                stage_id=stage.id,
                key=stage.key,
                name=stage.name,
                category=stage.category,
                current=int(current.get(stage.id, 0)),
                reached=reached,
                conversion_from_previous=conversion,
            )
        )
        if on_path:
            previous = reached
    return steps
