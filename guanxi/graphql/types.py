"""Core GraphQL object types. Plugins add fields to ``Customer`` through their contribution."""

from __future__ import annotations

import datetime as dt
from uuid import UUID
from typing import Any

import strawberry
from strawberry.types import Info

from guanxi.core import models as m
from guanxi.core.services.tags import tag_label
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.pagination import PageInfo, check_page_size, decode_cursor, encode_cursor
from guanxi.graphql.scalars import JSON


def _context(info: Info) -> Any:
    return info.context


@strawberry.type(description="A staff member: sales, marketing, service, manager or admin.")
class User:
    uuid: strawberry.Private[UUID]
    email: str
    name: str
    role: str
    team: str | None
    active: bool

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("User", self.uuid))

    @classmethod
    def from_model(cls, u: m.User) -> User:
        return cls(uuid=u.id, email=u.email, name=u.name, role=u.role, team=u.team, active=u.active)


@strawberry.type(description="A lifecycle stage of a pipeline.")
class Stage:
    uuid: strawberry.Private[UUID]
    key: str
    name: str
    position: int
    category: str = strawberry.field(description="open, won, lost, retained or churned")

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Stage", self.uuid))

    @classmethod
    def from_model(cls, s: m.Stage) -> Stage:
        return cls(uuid=s.id, key=s.key, name=s.name, position=s.position, category=s.category)


@strawberry.type(description="An ordered set of lifecycle stages.")
class Pipeline:
    uuid: strawberry.Private[UUID]
    key: str
    name: str
    is_default: bool
    stages: list[Stage]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Pipeline", self.uuid))


@strawberry.type(description="A label on customers; `label` is `group/name`, or `name` without a group.")
class Tag:
    uuid: strawberry.Private[UUID]
    name: str
    group: str | None
    label: str
    color: str | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Tag", self.uuid))

    @classmethod
    def from_model(cls, t: m.Tag) -> Tag:
        return cls(uuid=t.id, name=t.name, group=t.group_name or None, label=tag_label(t), color=t.color)


@strawberry.type(description="A customer's account on one channel.")
class Identity:
    uuid: strawberry.Private[UUID]
    channel: str
    external_id: str
    union_id: str | None
    nickname: str | None
    avatar_url: str | None
    follower_count: int | None
    profile: JSON  # type: ignore[valid-type]
    created_at: dt.datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Identity", self.uuid))

    @classmethod
    def from_model(cls, i: m.Identity) -> Identity:
        return cls(
            uuid=i.id,
            channel=i.channel,
            external_id=i.external_id,
            union_id=i.union_id,
            nickname=i.nickname,
            avatar_url=i.avatar_url,
            follower_count=i.follower_count,
            profile=i.profile,
            created_at=i.created_at,
        )


@strawberry.type(description="One touchpoint on a customer's timeline.")
class Interaction:
    uuid: strawberry.Private[UUID]
    customer_uuid: strawberry.Private[UUID]
    channel: str
    kind: str
    direction: str
    occurred_at: dt.datetime
    text: str | None
    payload: JSON  # type: ignore[valid-type]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Interaction", self.uuid))

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        row = await _context(info).loaders.customers.load(self.customer_uuid)
        return Customer.from_row(row) if row is not None else None

    @classmethod
    def from_model(cls, i: m.Interaction) -> Interaction:
        return cls(
            uuid=i.id,
            customer_uuid=i.customer_id,
            channel=i.channel,
            kind=i.kind,
            direction=i.direction,
            occurred_at=i.occurred_at,
            text=i.text,
            payload=i.payload,
        )


@strawberry.type
class InteractionEdge:
    cursor: str
    node: Interaction


@strawberry.type(description="A page of interactions, newest first.")
class InteractionConnection:
    edges: list[InteractionEdge]
    page_info: PageInfo


@strawberry.type(description="A move between lifecycle stages.")
class StageChange:
    uuid: strawberry.Private[UUID]
    from_uuid: strawberry.Private[UUID | None]
    to_uuid: strawberry.Private[UUID]
    actor_uuid: strawberry.Private[UUID | None]
    changed_at: dt.datetime
    rule: str | None
    reason: str | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("StageChange", self.uuid))

    @strawberry.field
    async def from_stage(self, info: Info) -> Stage | None:
        stages = await _context(info).loaders.stages()
        s = stages.get(self.from_uuid) if self.from_uuid else None
        return Stage.from_model(s) if s else None

    @strawberry.field
    async def to_stage(self, info: Info) -> Stage:
        stages = await _context(info).loaders.stages()
        return Stage.from_model(stages[self.to_uuid])

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        if self.actor_uuid is None:
            return None
        u = await _context(info).loaders.users.load(self.actor_uuid)
        return User.from_model(u) if u else None

    @classmethod
    def from_model(cls, c: m.StageChange) -> StageChange:
        return cls(
            uuid=c.id,
            from_uuid=c.from_stage_id,
            to_uuid=c.to_stage_id,
            actor_uuid=c.actor_id,
            changed_at=c.changed_at,
            rule=c.rule,
            reason=c.reason,
        )


@strawberry.type(description="A follow-up for a staff member.")
class Task:
    uuid: strawberry.Private[UUID]
    customer_uuid: strawberry.Private[UUID]
    assignee_uuid: strawberry.Private[UUID | None]
    title: str
    notes: str | None
    due_at: dt.datetime | None
    done_at: dt.datetime | None
    created_at: dt.datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.uuid))

    @strawberry.field
    def done(self) -> bool:
        return self.done_at is not None

    @strawberry.field
    def overdue(self) -> bool:
        return self.done_at is None and self.due_at is not None and self.due_at < dt.datetime.now(dt.UTC)

    @strawberry.field
    async def assignee(self, info: Info) -> User | None:
        if self.assignee_uuid is None:
            return None
        u = await _context(info).loaders.users.load(self.assignee_uuid)
        return User.from_model(u) if u else None

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        row = await _context(info).loaders.customers.load(self.customer_uuid)
        return Customer.from_row(row) if row is not None else None

    @classmethod
    def from_model(cls, t: m.Task) -> Task:
        return cls(
            uuid=t.id,
            customer_uuid=t.customer_id,
            assignee_uuid=t.assignee_id,
            title=t.title,
            notes=t.notes,
            due_at=t.due_at,
            done_at=t.done_at,
            created_at=t.created_at,
        )


@strawberry.type(description="One person or company.")
class Customer:
    uuid: strawberry.Private[UUID]
    owner_uuid: strawberry.Private[UUID | None]
    stage_uuid: strawberry.Private[UUID | None]
    merged_into_uuid: strawberry.Private[UUID | None]
    display_name: str
    company: str | None
    phones: list[str]
    emails: list[str]
    attributes: JSON  # type: ignore[valid-type]
    source: str | None
    last_interaction_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @strawberry.field(description="Stable global id. A merged customer's id keeps resolving to the survivor.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Customer", self.uuid))

    @classmethod
    def from_row(cls, r: Any) -> Customer:
        return cls(
            uuid=r.id,
            owner_uuid=r.owner_id,
            stage_uuid=r.stage_id,
            merged_into_uuid=r.merged_into_id,
            display_name=r.display_name,
            company=r.company,
            phones=r.phones,
            emails=r.emails,
            attributes=r.attributes,
            source=r.source,
            last_interaction_at=r.last_interaction_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )

    @strawberry.field
    async def stage(self, info: Info) -> Stage | None:
        if self.stage_uuid is None:
            return None
        stages = await _context(info).loaders.stages()
        s = stages.get(self.stage_uuid)
        return Stage.from_model(s) if s else None

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        if self.owner_uuid is None:
            return None
        u = await _context(info).loaders.users.load(self.owner_uuid)
        return User.from_model(u) if u else None

    @strawberry.field
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.from_model(t) for t in await _context(info).loaders.tags.load(self.uuid)]

    @strawberry.field
    async def identities(self, info: Info, channel: str | None = None) -> list[Identity]:
        rows = await _context(info).loaders.identities.load(self.uuid)
        return [Identity.from_model(i) for i in rows if channel is None or i.channel == channel]

    @strawberry.field(description="Every stage move, oldest first.")
    async def stage_history(self, info: Info) -> list[StageChange]:
        return [StageChange.from_model(c) for c in await _context(info).loaders.stage_history.load(self.uuid)]

    @strawberry.field(description="Follow-up tasks, soonest due first.")
    async def tasks(self, info: Info, include_done: bool = False) -> list[Task]:
        rows = await _context(info).loaders.open_tasks.load(self.uuid)
        return [Task.from_model(t) for t in rows if include_done or t.done_at is None]

    @strawberry.field(description="The timeline, newest first.")
    async def interactions(
        self, info: Info, first: int | None = None, after: str | None = None, kinds: list[str] | None = None
    ) -> InteractionConnection:
        context = _context(info)
        settings = context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        kinds_key = tuple(sorted(kinds)) if kinds else None
        if after is None:
            rows = await context.loaders.recent_interactions.load((self.uuid, size, kinds_key))
        else:
            rows = await _interactions_after(context, self.uuid, size, kinds_key, decode_cursor(after, "interactions"))
        page, more = rows[:size], len(rows) > size
        edges = [InteractionEdge(cursor=encode_cursor("interactions", i.occurred_at, i.id), node=Interaction.from_model(i)) for i in page]
        return InteractionConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


async def _interactions_after(
    context: Any, customer_id: UUID, size: int, kinds: tuple[str, ...] | None, after: tuple[Any, UUID]
) -> list[m.Interaction]:
    from sqlalchemy import and_, or_, select

    at, last_id = after
    stmt = select(m.Interaction).where(
        m.Interaction.customer_id == customer_id,
        or_(m.Interaction.occurred_at < at, and_(m.Interaction.occurred_at == at, m.Interaction.id < last_id)),
    )
    if kinds:
        stmt = stmt.where(m.Interaction.kind.in_(kinds))
    stmt = stmt.order_by(m.Interaction.occurred_at.desc(), m.Interaction.id.desc()).limit(size + 1)
    return list((await context.loaders.execute(stmt)).scalars())


@strawberry.type
class CustomerEdge:
    cursor: str
    node: Customer


@strawberry.type(description="A page of customers.")
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo
    count: strawberry.Private[Any]

    @strawberry.field(description="How many customers match the filter (all pages).")
    async def total_count(self) -> int:
        return int(await self.count())


@strawberry.type(description="One stage of the funnel report.")
class FunnelStep:
    stage: Stage
    current: int = strawberry.field(description="customers in this stage now")
    reached: int = strawberry.field(description="customers who ever entered this stage")
    conversion_from_previous: float | None = strawberry.field(description="reached ÷ the previous main-path stage's reached")


@strawberry.type(description="Customer counts per stage and conversion between stages.")
class Funnel:
    pipeline: Pipeline
    steps: list[FunnelStep]
