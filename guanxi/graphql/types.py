"""Core GraphQL object types. Plugins add fields to ``Customer`` through their contribution.

Performance shape: ids are computed when an object is built (a plain field, no resolver call);
nested fields of a customer are synchronous resolvers that return data prefetched for the whole
page (see :mod:`guanxi.graphql.prefetch`) and fall back to DataLoaders (an awaitable) when the
object was not built by a prefetching resolver. graphql-core awaits what a resolver returns, so
both paths are valid for one field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from guanxi.core.services.tags import tag_label
from guanxi.graphql.enums import ConsentStatus, CustomFieldKind, Direction, Role, StageCategory
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.pagination import PageInfo, Window, encode_cursor, page_info, page_window

ID_DOC = "Stable, opaque global id."


@strawberry.interface(
    description="An object with a stable global id: `node(id:)` and `nodes(ids:)` fetch any of them again (Relay's Node)."
)
class Node:
    id: strawberry.ID = strawberry.field(description=ID_DOC)


@strawberry.type(description="A staff member: sales, marketing, service, manager or admin.")
class User(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    email: str
    name: str
    role: Role
    team: str | None
    active: bool

    @classmethod
    def from_model(cls, u: Any) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", u.id)),
            uuid=u.id,
            email=u.email,
            name=u.name,
            role=Role(u.role),
            team=u.team,
            active=u.active,
        )


@strawberry.type(description="A lifecycle stage of a pipeline.")
class Stage(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    key: str
    name: str
    position: int
    category: StageCategory
    archived: bool = strawberry.field(description="an archived stage takes no customers; its history stays")

    @classmethod
    def from_model(cls, s: Any) -> Stage:
        return cls(
            id=strawberry.ID(to_global_id("Stage", s.id)),
            uuid=s.id,
            key=s.key,
            name=s.name,
            position=s.position,
            category=StageCategory(s.category),
            archived=s.archived_at is not None,
        )


@strawberry.type(description="An ordered set of lifecycle stages. A customer stands in one pipeline at a time.")
class Pipeline(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    key: str
    name: str
    is_default: bool
    sources: list[str] = strawberry.field(description="the arrival rule: new customers with one of these sources (or channels) start here")
    stages: list[Stage] = strawberry.field(description="the live stages in order")
    archived_stages: list[Stage] = strawberry.field(description="archived stages, kept for the history that names them")


@strawberry.type(description="A label on customers; `label` is `group/name`, or `name` without a group.")
class Tag(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    name: str
    group: str | None
    label: str
    color: str | None

    @classmethod
    def from_model(cls, t: Any) -> Tag:
        return cls(
            id=strawberry.ID(to_global_id("Tag", t.id)),
            uuid=t.id,
            name=t.name,
            group=t.group_name or None,
            label=tag_label(t),
            color=t.color,
        )


@strawberry.type(description="A customer's account on one channel.")
class Identity(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    channel: str
    external_id: str
    union_id: str | None
    nickname: str | None
    avatar_url: str | None
    follower_count: int | None
    profile: JSON
    created_at: dt.datetime
    unreachable_at: dt.datetime | None = strawberry.field(
        default=None, description="set when a delivery report said the account is gone; sendMessage refuses it until it writes in"
    )

    @classmethod
    def from_model(cls, i: Any) -> Identity:
        return cls(
            id=strawberry.ID(to_global_id("Identity", i.id)),
            uuid=i.id,
            channel=i.channel,
            external_id=i.external_id,
            union_id=i.union_id,
            nickname=i.nickname,
            avatar_url=i.avatar_url,
            follower_count=i.follower_count,
            profile=i.profile,
            created_at=i.created_at,
            unreachable_at=i.unreachable_at,
        )


@strawberry.type(description="One touchpoint on a customer's timeline.")
class Interaction(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    customer_uuid: strawberry.Private[UUID]
    ctx: strawberry.Private[Any]
    channel: str
    kind: str
    direction: Direction
    occurred_at: dt.datetime
    text: str | None
    payload: JSON

    @strawberry.field
    async def customer(self) -> Customer | None:
        row = await self.ctx.loaders.customers.load(self.customer_uuid)
        return Customer.from_row(row, self.ctx) if row is not None else None

    @classmethod
    def from_model(cls, i: Any, ctx: Any) -> Interaction:
        return cls(
            id=strawberry.ID(to_global_id("Interaction", i.id)),
            uuid=i.id,
            customer_uuid=i.customer_id,
            ctx=ctx,
            channel=i.channel,
            kind=i.kind,
            direction=Direction(i.direction),
            occurred_at=i.occurred_at,
            text=i.text,
            payload=i.payload,
        )


def _interaction_cursor(row: Any) -> str:
    return encode_cursor("interactions", row.occurred_at, row.id)


@strawberry.type
class InteractionEdge:
    #: the row the edge is for: its cursor is encoded only when a query selects it
    row: strawberry.Private[Any]

    @strawberry.field
    def cursor(self) -> str:
        return _interaction_cursor(self.row)

    node: Interaction


@strawberry.type(description="A page of interactions, newest first.")
class InteractionConnection:
    edges: list[InteractionEdge]
    page_info: PageInfo
    count: strawberry.Private[Any]

    @strawberry.field(description="How many interactions the timeline has (all pages; with `kinds`, of those kinds only).")
    async def total_count(self) -> int:
        return int(await self.count())


def interaction_connection(
    rows: list[Any], window: Window, ctx: Any, customer_uuid: UUID, kinds: tuple[str, ...] | None
) -> InteractionConnection:
    """A page from ``size + 1`` rows fetched in the direction of paging (newest first forward,
    oldest first backward)."""
    page, more = rows[: window.size], len(rows) > window.size
    if window.backward:
        page.reverse()
    edges = [InteractionEdge(row=i, node=Interaction.from_model(i, ctx)) for i in page]

    def count() -> Any:
        return ctx.loaders.interaction_counts.load((customer_uuid, kinds))

    ends = [_interaction_cursor(page[0]), _interaction_cursor(page[-1])] if page else []
    return InteractionConnection(edges=edges, page_info=page_info(ends, more, window), count=count)


@strawberry.type(description="A move between lifecycle stages.")
class StageChange(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    from_uuid: strawberry.Private[UUID | None]
    to_uuid: strawberry.Private[UUID]
    actor_uuid: strawberry.Private[UUID | None]
    ctx: strawberry.Private[Any]
    changed_at: dt.datetime
    rule: str | None
    reason: str | None

    @strawberry.field
    async def from_stage(self) -> Stage | None:
        stages = await self.ctx.loaders.stages()
        s = stages.get(self.from_uuid) if self.from_uuid else None
        return Stage.from_model(s) if s else None

    @strawberry.field
    async def to_stage(self) -> Stage:
        stages = await self.ctx.loaders.stages()
        return Stage.from_model(stages[self.to_uuid])

    @strawberry.field
    async def actor(self) -> User | None:
        if self.actor_uuid is None:
            return None
        u = await self.ctx.loaders.users.load(self.actor_uuid)
        return User.from_model(u) if u else None

    @classmethod
    def from_model(cls, c: Any, ctx: Any) -> StageChange:
        return cls(
            id=strawberry.ID(to_global_id("StageChange", c.id)),
            uuid=c.id,
            from_uuid=c.from_stage_id,
            to_uuid=c.to_stage_id,
            actor_uuid=c.actor_id,
            ctx=ctx,
            changed_at=c.changed_at,
            rule=c.rule,
            reason=c.reason,
        )


@strawberry.type(description="A follow-up for a staff member.")
class Task(Node):
    id: strawberry.ID = strawberry.field(description=ID_DOC)
    uuid: strawberry.Private[UUID]
    customer_uuid: strawberry.Private[UUID]
    assignee_uuid: strawberry.Private[UUID | None]
    ctx: strawberry.Private[Any]
    title: str
    notes: str | None
    due_at: dt.datetime | None
    done_at: dt.datetime | None
    created_at: dt.datetime

    @strawberry.field
    def done(self) -> bool:
        return self.done_at is not None

    @strawberry.field
    def overdue(self) -> bool:
        return self.done_at is None and self.due_at is not None and self.due_at < dt.datetime.now(dt.UTC)

    @strawberry.field
    async def assignee(self) -> User | None:
        if self.assignee_uuid is None:
            return None
        u = await self.ctx.loaders.users.load(self.assignee_uuid)
        return User.from_model(u) if u else None

    @strawberry.field
    async def customer(self) -> Customer | None:
        row = await self.ctx.loaders.customers.load(self.customer_uuid)
        return Customer.from_row(row, self.ctx) if row is not None else None

    @classmethod
    def from_model(cls, t: Any, ctx: Any) -> Task:
        return cls(
            id=strawberry.ID(to_global_id("Task", t.id)),
            uuid=t.id,
            customer_uuid=t.customer_id,
            assignee_uuid=t.assignee_id,
            ctx=ctx,
            title=t.title,
            notes=t.notes,
            due_at=t.due_at,
            done_at=t.done_at,
            created_at=t.created_at,
        )


@strawberry.type(description="Whether a customer agreed to be contacted on a channel.")
class Consent:
    channel: str
    status: ConsentStatus
    source: str | None
    changed_at: dt.datetime

    @classmethod
    def from_model(cls, c: Any) -> Consent:
        return cls(channel=c.channel, status=ConsentStatus(c.status), source=c.source, changed_at=c.changed_at)


@strawberry.type(description="The value of one custom field of a customer, typed: read `value`, or the accessor of the field's kind.")
class CustomerFieldValue:
    key: str
    label: str
    kind: CustomFieldKind
    user_uuid: strawberry.Private[UUID | None]
    ctx: strawberry.Private[Any]
    value: JSON = strawberry.field(
        description="as JSON: a string (text, choice, date YYYY-MM-DD, user id, money and number as a decimal string), "
        "a list of strings (multi choice) or a boolean"
    )
    text: str | None = strawberry.field(description="text and single choice fields")
    number: float | None = strawberry.field(description="number and money fields (exact amount: `decimal`)")
    decimal: str | None = strawberry.field(description="number and money fields as an exact decimal string")
    date: dt.date | None = strawberry.field(description="date fields")
    boolean: bool | None = strawberry.field(description="boolean fields")
    choices: list[str] | None = strawberry.field(description="multi choice fields, in the field's choice order")

    @strawberry.field(description="user fields")
    async def user(self) -> User | None:
        if self.user_uuid is None:
            return None
        u = await self.ctx.loaders.users.load(self.user_uuid)
        return User.from_model(u) if u else None

    @classmethod
    def build(cls, defn: Any, value: Any, ctx: Any) -> CustomerFieldValue:
        kind = defn.kind
        as_json: Any = value
        if kind in ("number", "money"):
            as_json = format(value, "f")
        elif kind == "date":
            as_json = value.isoformat()
        elif kind == "user":
            as_json = to_global_id("User", value)
        return cls(
            key=defn.key,
            label=defn.label,
            kind=CustomFieldKind(kind),
            user_uuid=value if kind == "user" else None,
            ctx=ctx,
            value=as_json,
            text=value if kind in ("text", "single_choice") else None,
            number=float(value) if kind in ("number", "money") else None,
            decimal=as_json if kind in ("number", "money") else None,
            date=value if kind == "date" else None,
            boolean=value if kind == "boolean" else None,
            choices=list(value) if kind == "multi_choice" else None,
        )


@strawberry.type(description="One person or company.")
class Customer(Node):
    id: strawberry.ID = strawberry.field(description="Stable global id. A merged customer's id keeps resolving to the survivor.")
    uuid: strawberry.Private[UUID]
    owner_uuid: strawberry.Private[UUID | None]
    stage_uuid: strawberry.Private[UUID | None]
    merged_into_uuid: strawberry.Private[UUID | None]
    ctx: strawberry.Private[Any]
    #: Nested data prefetched for a whole page, by field name (see guanxi.graphql.prefetch).
    pre: strawberry.Private[dict[str, Any]]
    display_name: str
    company: str | None
    phones: list[str]
    emails: list[str]
    attributes: JSON
    source: str | None
    last_interaction_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, r: Any, ctx: Any, pre: dict[str, Any] | None = None) -> Customer:
        return cls(
            id=strawberry.ID(to_global_id("Customer", r.id)),
            uuid=r.id,
            owner_uuid=r.owner_id,
            stage_uuid=r.stage_id,
            merged_into_uuid=r.merged_into_id,
            ctx=ctx,
            pre=pre if pre is not None else {},
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
    def stage(self) -> Stage | None:
        if "stage" in self.pre:
            return self.pre["stage"]
        return self._stage()  # type: ignore[return-value]

    async def _stage(self) -> Stage | None:
        if self.stage_uuid is None:
            return None
        s = (await self.ctx.loaders.stages()).get(self.stage_uuid)
        return Stage.from_model(s) if s else None

    @strawberry.field
    def owner(self) -> User | None:
        if "owner" in self.pre:
            return self.pre["owner"]
        return self._owner()  # type: ignore[return-value]

    async def _owner(self) -> User | None:
        if self.owner_uuid is None:
            return None
        u = await self.ctx.loaders.users.load(self.owner_uuid)
        return User.from_model(u) if u else None

    @strawberry.field
    def tags(self) -> list[Tag]:
        if "tags" in self.pre:
            return self.pre["tags"]
        return self._tags()  # type: ignore[return-value]

    async def _tags(self) -> list[Tag]:
        return [Tag.from_model(t) for t in await self.ctx.loaders.tags.load(self.uuid)]

    @strawberry.field
    def identities(self, channel: str | None = None) -> list[Identity]:
        if "identities" in self.pre:
            found: list[Identity] = self.pre["identities"]
            return found if channel is None else [i for i in found if i.channel == channel]
        return self._identities(channel)  # type: ignore[return-value]

    async def _identities(self, channel: str | None) -> list[Identity]:
        rows = await self.ctx.loaders.identities.load(self.uuid)
        return [Identity.from_model(i) for i in rows if channel is None or i.channel == channel]

    @strawberry.field(description="Every stage move, oldest first.")
    def stage_history(self) -> list[StageChange]:
        if "stage_history" in self.pre:
            return self.pre["stage_history"]
        return self._stage_history()  # type: ignore[return-value]

    async def _stage_history(self) -> list[StageChange]:
        return [StageChange.from_model(c, self.ctx) for c in await self.ctx.loaders.stage_history.load(self.uuid)]

    @strawberry.field(description="Follow-up tasks, soonest due first.")
    def tasks(self, include_done: bool = False) -> list[Task]:
        if "tasks" in self.pre:
            found: list[Task] = self.pre["tasks"]
        else:
            return self._tasks(include_done)  # type: ignore[return-value]
        return found if include_done else [t for t in found if t.done_at is None]

    async def _tasks(self, include_done: bool) -> list[Task]:
        rows = await self.ctx.loaders.open_tasks.load(self.uuid)
        return [Task.from_model(t, self.ctx) for t in rows if include_done or t.done_at is None]

    @strawberry.field(description="Values of the tenant's custom fields that are set, in the fields' order (see `customFields`).")
    def fields(self) -> list[CustomerFieldValue]:
        if "fields" in self.pre:
            return self.pre["fields"]
        return self._fields()  # type: ignore[return-value]

    async def _fields(self) -> list[CustomerFieldValue]:
        return [CustomerFieldValue.build(d, v, self.ctx) for d, v in await self.ctx.loaders.field_values.load(self.uuid)]

    @strawberry.field(description="Consent per channel; a channel not listed was never opted out.")
    async def consents(self) -> list[Consent]:
        return [Consent.from_model(c) for c in await self.ctx.loaders.consents.load(self.uuid)]

    @strawberry.field(description="The timeline, newest first (first/after forward, last/before backward).")
    def interactions(
        self,
        first: int | None = None,
        after: str | None = None,
        kinds: list[str] | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> InteractionConnection:
        settings = self.ctx.rt.settings.graphql
        window = page_window(first, after, last, before, "interactions", settings.default_page_size, settings.max_page_size)
        kinds_key = tuple(sorted(kinds)) if kinds else None
        pre = self.pre.get("interactions")
        if window.cursor is None and not window.backward and pre is not None and pre[0] == (window.size, kinds_key):
            return interaction_connection(pre[1], window, self.ctx, self.uuid, kinds_key)
        return self._interactions(window, kinds_key)  # type: ignore[return-value]

    async def _interactions(self, window: Window, kinds: tuple[str, ...] | None) -> InteractionConnection:
        if window.backward:
            rows = await self.ctx.loaders.interactions_before(self.uuid, window.size, kinds, window.cursor)
        elif window.cursor is None:
            rows = await self.ctx.loaders.recent_interactions.load((self.uuid, window.size, kinds))
        else:
            rows = await self.ctx.loaders.interactions_after(self.uuid, window.size, kinds, window.cursor)
        return interaction_connection(rows, window, self.ctx, self.uuid, kinds)


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
