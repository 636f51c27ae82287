"""Segments in GraphQL: list, count and preview them (saved or not), create, redefine, refresh
and delete them, and the ``inSegment`` condition of ``customers(filter:)``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import strawberry
from sqlalchemy import Select, select
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi import RequestContext
from guanxi.core.domain.models import Customer as CustomerRow
from guanxi.graphql.contrib import CustomerFilterField
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.types import Customer
from guanxi.plugins.automation.segments import service as svc
from guanxi.plugins.automation.segments.models import AutomationSegment, AutomationSegmentMember

#: most customers a preview shows
MAX_PREVIEW = 100


@strawberry.enum(description="DYNAMIC: whoever matches the definition now; STATIC: a frozen list of customers.")
class SegmentKind(enum.Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"


def segment_id(value: strawberry.ID, field: str = "id") -> uuid.UUID:
    return from_global_id(value, "Segment", field=field)


async def _customers(info: Info, ids: list[uuid.UUID]) -> list[Customer]:
    rows = await info.context.loaders.customers.load_many(ids)
    return [Customer.from_row(r, info.context) for r in rows if r is not None]


def _size(info: Info, first: int) -> int:
    from guanxi.graphql.pagination import check_page_size

    return check_page_size(first, info.context.rt.settings.graphql.default_page_size, MAX_PREVIEW)


@strawberry.type(description="A saved filter of customers (see docs/plugins/automation.md for its definition).")
class Segment:
    id: strawberry.ID
    key: str
    name: str
    description: str | None
    kind: SegmentKind
    definition: JSON | None = strawberry.field(description="the condition tree of a DYNAMIC segment (null for STATIC)")
    created_at: dt.datetime
    updated_at: dt.datetime
    refreshed_at: dt.datetime | None = strawberry.field(description="when a DYNAMIC segment's membership was last evaluated in full")
    uuid: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, s: AutomationSegment) -> Segment:
        return cls(
            id=strawberry.ID(to_global_id("Segment", s.id)),
            key=s.key,
            name=s.name,
            description=s.description,
            kind=SegmentKind(s.kind),
            definition=s.definition,  # type: ignore[arg-type]  # JSON
            created_at=s.created_at,
            updated_at=s.updated_at,
            refreshed_at=s.refreshed_at,
            uuid=s.id,
        )

    @strawberry.field(description="How many customers are in it now (among those the caller may see).")
    async def count(self, info: Info) -> int:
        async with info.context.loaders.lock:
            segment = await svc.get_segment(info.context.session, self.uuid)
            return await svc.count(info.context.rt, info.context.session, segment)

    @strawberry.field(description="Some of its customers now, newest first (at most 100).")
    async def preview(self, info: Info, first: int = 20) -> list[Customer]:
        size = _size(info, first)
        async with info.context.loaders.lock:
            segment = await svc.get_segment(info.context.session, self.uuid)
            stmt = await svc.members_query(info.context.rt, info.context.session, segment)
            stmt = stmt.order_by(CustomerRow.created_at.desc(), CustomerRow.id.desc()).limit(size)
            ids = list((await info.context.session.execute(stmt)).scalars())
        return await _customers(info, ids)


@strawberry.type(description="What a definition matches, before it is saved.")
class SegmentPreview:
    count: int
    customers: list[Customer] = strawberry.field(description="the first ones, newest first")


@strawberry.input(description="A new segment: DYNAMIC with a definition, or STATIC with customer ids and/or a CSV.")
class CreateSegmentInput:
    key: str = strawberry.field(description="unique in the tenant: a-z, 0-9, _ and -")
    name: str
    kind: SegmentKind = SegmentKind.DYNAMIC
    description: str | None = None
    definition: JSON | None = strawberry.field(default=None, description="the condition tree (DYNAMIC)")
    customer_ids: list[strawberry.ID] = strawberry.field(default_factory=list, description="the customers (STATIC)")
    csv: str | None = strawberry.field(default=None, description="a CSV with a header row and an id, email or phone column (STATIC)")


@strawberry.input(description="Only the fields given change; a new definition re-evaluates membership.")
class UpdateSegmentInput:
    name: str | None = None
    description: str | None = None
    definition: JSON | None = None


@strawberry.type
class SegmentPayload:
    segment: Segment | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RefreshSegmentPayload:
    segment: Segment | None = None
    entered: int = 0
    exited: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteSegmentPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def full_view(info: Info) -> RequestContext:
    """The caller, seeing every customer of the tenant: a segment's membership is the tenant's,
    not one salesperson's share (only managers and admins change segments)."""
    ctx: RequestContext = info.context.ctx
    return RequestContext(tenant_id=ctx.tenant_id, actor=ctx.actor)


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="The tenant's segments, by key.")
    async def segments(self, info: Info) -> list[Segment]:
        async with info.context.loaders.lock:
            rows = (await info.context.session.execute(select(AutomationSegment).order_by(AutomationSegment.key))).scalars()
            return [Segment.from_model(s) for s in rows]

    @strawberry.field(description="One segment by id (null when not found).")
    async def segment(self, info: Info, id: strawberry.ID) -> Segment | None:
        from guanxi import NotFoundError

        try:
            async with info.context.loaders.lock:
                return Segment.from_model(await svc.get_segment(info.context.session, segment_id(id)))
        except NotFoundError:
            return None

    @strawberry.field(description="Count and preview a definition without saving it (VALIDATION with the path of a bad part).")
    async def segment_preview(self, info: Info, definition: JSON, first: int = 20) -> SegmentPreview:
        size = _size(info, first)
        async with info.context.loaders.lock:
            total, ids = await svc.preview_definition(info.context.rt, info.context.session, definition, size)
        return SegmentPreview(count=total, customers=await _customers(info, ids))


@strawberry.type
class SegmentMutation:
    @strawberry.mutation(description="Save a segment; a DYNAMIC one's membership is evaluated at once.")
    async def create_segment(self, info: Info, input: CreateSegmentInput) -> SegmentPayload:
        async def run() -> SegmentPayload:
            data = svc.SegmentInput(
                key=input.key,
                name=input.name,
                kind=input.kind.value,
                description=input.description,
                definition=input.definition,  # type: ignore[arg-type]  # JSON
                customer_ids=[from_global_id(c, "Customer", field="customerIds") for c in input.customer_ids],
                csv=input.csv,
            )
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                created = await svc.create_segment(tx, data)
            return SegmentPayload(segment=Segment.from_model(created))

        return await as_payload(run, SegmentPayload)

    @strawberry.mutation(description="Rename or redefine a segment.")
    async def update_segment(self, info: Info, id: strawberry.ID, input: UpdateSegmentInput) -> SegmentPayload:
        async def run() -> SegmentPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                segment = await svc.get_segment(tx.session, segment_id(id))
                await svc.update_segment(tx, segment, name=input.name, description=input.description, definition=input.definition)
            return SegmentPayload(segment=Segment.from_model(segment))

        return await as_payload(run, SegmentPayload)

    @strawberry.mutation(description="Add customers to a STATIC segment.")
    async def add_segment_members(self, info: Info, id: strawberry.ID, customer_ids: list[strawberry.ID]) -> RefreshSegmentPayload:
        async def run() -> RefreshSegmentPayload:
            from guanxi import ValidationError

            ids = [from_global_id(c, "Customer", field="customerIds") for c in customer_ids]
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                segment = await svc.get_segment(tx.session, segment_id(id))
                if segment.kind != "static":
                    raise ValidationError("only a STATIC segment takes customers by hand", field="id")
                added = await svc.add_members(tx, segment, ids)
            return RefreshSegmentPayload(segment=Segment.from_model(segment), entered=added)

        return await as_payload(run, RefreshSegmentPayload)

    @strawberry.mutation(description="Re-evaluate a DYNAMIC segment's membership now (entry and exit events for the difference).")
    async def refresh_segment(self, info: Info, id: strawberry.ID) -> RefreshSegmentPayload:
        async def run() -> RefreshSegmentPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                segment = await svc.get_segment(tx.session, segment_id(id))
                entered, exited = await svc.refresh(tx, segment)
            return RefreshSegmentPayload(segment=Segment.from_model(segment), entered=entered, exited=exited)

        return await as_payload(run, RefreshSegmentPayload)

    @strawberry.mutation(description="Delete a segment (its bulk sends keep their recipients).")
    async def delete_segment(self, info: Info, id: strawberry.ID) -> DeleteSegmentPayload:
        async def run() -> DeleteSegmentPayload:
            info.context.reset_reads()
            async with info.context.rt.transaction(full_view(info)) as tx:
                segment = await svc.get_segment(tx.session, segment_id(id))
                await svc.delete_segment(tx, segment)
            return DeleteSegmentPayload(deleted_id=id)

        return await as_payload(run, DeleteSegmentPayload)


def _in_segment(stmt: Select[Any], key: str) -> Select[Any]:
    members = (
        select(AutomationSegmentMember.customer_id)
        .join(
            AutomationSegment,
            (AutomationSegment.tenant_id == AutomationSegmentMember.tenant_id)
            & (AutomationSegment.id == AutomationSegmentMember.segment_id),
        )
        .where(AutomationSegment.key == key)
    )
    return stmt.where(CustomerRow.id.in_(members))


#: ``customers(filter: {inSegment: "vip"})``: members of a segment as last evaluated
CUSTOMER_FILTERS = [
    CustomerFilterField("in_segment", str | None, _in_segment, "in the segment with this key (membership as last evaluated)")
]
