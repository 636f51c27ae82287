"""Core Query fields."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select, select
from strawberry.types import Info

from guanxi.core.domain import models as m
from guanxi.core.services import fields, queries
from guanxi.graphql import inputs
from guanxi.graphql.contrib import CustomerFilterField
from guanxi.graphql.enums import TaskDue, TaskStatus
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.pagination import encode_cursor, page_info, page_window
from guanxi.graphql.prefetch import lean_columns, materialize, node_fields
from guanxi.graphql.types import Customer, CustomerConnection, CustomerEdge, Funnel, FunnelStep, Pipeline, Stage, Tag, Task, User


def core_filter(flt: inputs.CustomerFilter | None, extra: Sequence[CustomerFilterField] = ()) -> queries.CustomerFilter | None:
    """The service-level filter for an API filter; ``extra`` are the plugins' filter fields."""
    if flt is None:
        return None
    conditions: list[queries.CustomerCondition] = []
    for field in extra:
        value = getattr(flt, field.name, None)
        if value is not None:
            conditions.append(partial(_apply, field.apply, value))
    return queries.CustomerFilter(
        stages=flt.stages,
        pipelines=flt.pipelines,
        tags_any=flt.tags_any,
        tags_all=flt.tags_all,
        owner_ids=[from_global_id(i, "User", field="filter.ownerIds") for i in flt.owner_ids] if flt.owner_ids is not None else None,
        unassigned=flt.unassigned,
        channels=flt.channels,
        created_after=flt.created_after,
        created_before=flt.created_before,
        search=flt.search,
        fields=[field_condition(c, i) for i, c in enumerate(flt.fields)] if flt.fields else None,
        conditions=conditions,
    )


def field_condition(c: inputs.FieldConditionInput, index: int) -> fields.FieldCondition:
    """The service's condition for one ``filter.fields`` entry (user ids decoded from global ids)."""
    return fields.FieldCondition(
        field=c.field,
        eq=c.eq,
        in_=list(c.in_) if c.in_ is not None else None,
        gt=c.gt,
        gte=c.gte,
        lt=c.lt,
        lte=c.lte,
        is_set=c.is_set,
        where=f"filter.fields[{index}]",
        parse_user=user_id,
    )


def user_id(raw: str, where: str) -> Any:
    """A user field's value given through the API: a User global id."""
    return from_global_id(raw, "User", field=where)


async def field_ordering(session: Any, order: inputs.FieldOrderInput) -> queries.CustomerOrdering:
    """The ordering of ``customers(orderByField:)``: the field's value, compiled into the list's SQL."""
    defn = await fields.field_definition_for_order(session, order.field)
    return queries.CustomerOrdering(
        key=f"field:{defn.key}:{'desc' if order.descending else 'asc'}",
        expression=partial(fields.sort_expression, defn),
        descending=order.descending,
        from_cursor=fields.from_cursor(defn),
    )


def _apply(apply: Callable[[Select[Any], Any], Select[Any]], value: Any, stmt: Select[Any]) -> Select[Any]:
    return apply(stmt, value)


def customer_filter_input(extra: Sequence[CustomerFilterField]) -> type:
    """``CustomerFilter`` with the plugins' fields (core's own class when there are none)."""
    if not extra:
        return inputs.CustomerFilter
    namespace: dict[str, Any] = {"__annotations__": {f.name: f.type for f in extra}, "__module__": __name__}
    for f in extra:
        namespace[f.name] = strawberry.field(default=None, description=f.description or None)
    cls = type("CustomerFilter", (inputs.CustomerFilter,), namespace)
    return strawberry.input(cls, name="CustomerFilter", description="Every condition given must hold (AND).")


def customer_order_enum(extra: Sequence[queries.CustomerOrdering]) -> Any:
    """``CustomerOrder`` with the plugins' orderings (core's own enum when there are none)."""
    if not extra:
        return inputs.CustomerOrder
    members: dict[str, Any] = {m.name: m.value for m in queries.CustomerOrder}
    members |= {o.key.upper(): strawberry.enum_value(o.key, description=o.description or None) for o in extra}
    py_enum = enum.Enum("CustomerOrder", members)  # type: ignore[misc]
    return strawberry.enum(py_enum, name="CustomerOrder", description="How a customer list is sorted.")


def customers_query(filters: Sequence[CustomerFilterField] = (), orderings: Sequence[queries.CustomerOrdering] = ()) -> type:
    """The ``customers`` root field for a schema, with the filter fields and orderings plugins
    contribute (:class:`guanxi.graphql.contrib.GraphQLContribution`). Built per schema, so a
    schema without the plugin has none of its fields."""
    filter_type = customer_filter_input(filters)
    order_type = customer_order_enum(orderings)
    by_key = {o.key: o for o in orderings}
    default_order = order_type.CREATED_AT_DESC if orderings else queries.CustomerOrder.CREATED_AT_DESC

    async def customers(
        self: Any,
        info: Info,
        filter: Any = None,
        order_by: Any = default_order,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by_field: inputs.FieldOrderInput | None = None,
    ) -> CustomerConnection:
        context = info.context
        settings = context.rt.settings.graphql
        value = getattr(order_by, "value", order_by)
        order: queries.CustomerOrder | queries.CustomerOrdering = by_key[value] if value in by_key else queries.CustomerOrder(value)
        if order_by_field is not None:
            async with context.loaders.lock:
                order = await field_ordering(context.session, order_by_field)
            value = order.key
        order_name = value
        window = page_window(first, after, last, before, order_name, settings.default_page_size, settings.max_page_size)
        flt = core_filter(filter, filters)
        async with context.loaders.lock:
            rows, more = await queries.list_customers(
                context.session, flt=flt, order=order, first=window.size, after=window.cursor, backward=window.backward
            )
        nodes = await materialize(context, rows, node_fields(info), lean_columns(info))

        async def count() -> int:
            async with context.loaders.lock:
                return await queries.count_customers(context.session, flt)

        edges = [
            CustomerEdge(cursor=encode_cursor(order_name, queries.sort_key(order, r), r.id), node=n)
            for r, n in zip(rows, nodes, strict=True)
        ]
        return CustomerConnection(edges=edges, page_info=page_info([e.cursor for e in edges], more, window), count=count)

    customers.__annotations__ = {
        "self": Any,
        "info": Info,
        "filter": filter_type | None,
        "order_by": order_type,
        "first": int | None,
        "after": str | None,
        "last": int | None,
        "before": str | None,
        "order_by_field": Annotated[
            inputs.FieldOrderInput | None,
            strawberry.argument(description="sort by a custom field instead of `orderBy`"),
        ],
        "return": CustomerConnection,
    }
    field = strawberry.field(
        resolver=customers, description="Customers matching a filter, one page at a time (merged tombstones excluded)."
    )
    return strawberry.type(type("CustomersQuery", (), {"customers": field, "__module__": __name__}))


async def _pipelines(info: Info) -> list[Pipeline]:
    loaders = info.context.loaders
    stages = await loaders.stages()
    rows = (await loaders.execute(select(m.Pipeline).order_by(m.Pipeline.is_default.desc(), m.Pipeline.key))).scalars().all()
    return [
        Pipeline(
            id=strawberry.ID(to_global_id("Pipeline", p.id)),
            uuid=p.id,
            key=p.key,
            name=p.name,
            is_default=p.is_default,
            sources=list(p.sources or []),
            stages=[Stage.from_model(s) for s in stages.values() if s.pipeline_id == p.id and s.archived_at is None],
            archived_stages=[Stage.from_model(s) for s in stages.values() if s.pipeline_id == p.id and s.archived_at is not None],
        )
        for p in rows
    ]


async def _tasks(info: Info, assignees: Any, zone_of: Any, due: TaskDue, status: TaskStatus, first: int) -> list[Task]:
    from guanxi.core.services import tasks
    from guanxi.core.services.notifications import user_zone
    from guanxi.core.services.schedule import tenant_zone
    from guanxi.graphql.pagination import check_page_size

    settings = info.context.rt.settings.graphql
    size = check_page_size(first, settings.default_page_size, settings.max_page_size)
    session = info.context.session
    async with info.context.loaders.lock:
        user = (await session.execute(select(m.User).where(m.User.id == zone_of))).scalar_one_or_none() if zone_of else None
        tz = await user_zone(session, user) if user is not None else await tenant_zone(session)
        rows = await tasks.list_tasks(session, assignees=assignees, due=due.value, status=status.value, tz=tz, first=size)
    return [Task.from_model(t, info.context) for t in rows]


@strawberry.type
class Query:
    @strawberry.field(description="One customer by id; a merged customer's id gives the survivor. Null if none.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        from guanxi.core.base.errors import NotFoundError
        from guanxi.core.services.customers import get_customer

        uuid_ = from_global_id(id, "Customer")
        try:
            async with info.context.loaders.lock:
                model = await get_customer(info.context.session, uuid_)
        except NotFoundError:
            return None
        return Customer.from_row(model, info.context)

    @strawberry.field(description="Pipelines with their stages in order.")
    async def pipelines(self, info: Info) -> list[Pipeline]:
        return await _pipelines(info)

    @strawberry.field(description="Counts per stage and conversion between stages of a pipeline (default pipeline if no key).")
    async def funnel(self, info: Info, pipeline: str | None = None) -> Funnel:
        from guanxi.core.base.errors import ValidationError

        pipes = await _pipelines(info)
        chosen = next((p for p in pipes if p.key == pipeline), None) if pipeline else (pipes[0] if pipes else None)
        if chosen is None:
            raise ValidationError(f"unknown pipeline {pipeline!r}", field="pipeline")
        async with info.context.loaders.lock:
            steps = await queries.funnel(info.context.session, chosen.uuid)
        by_id = {s.uuid: s for s in chosen.stages}
        return Funnel(
            pipeline=chosen,
            steps=[
                FunnelStep(
                    stage=by_id[s.stage_id], current=s.current, reached=s.reached, conversion_from_previous=s.conversion_from_previous
                )
                for s in steps
            ],
        )

    @strawberry.field(
        description="The caller's own tasks (assigned to the signed-in user), soonest due first; "
        "due dates are read in the user's time zone (else the tenant's)."
    )
    async def my_tasks(self, info: Info, due: TaskDue = TaskDue.ANY, status: TaskStatus = TaskStatus.OPEN, first: int = 50) -> list[Task]:
        from guanxi.core.base.errors import ValidationError

        user_id = info.context.ctx.actor.user_id
        if user_id is None:
            raise ValidationError("these credentials act for no staff user; use an API key or token of a user", code="NOT_A_USER")
        return await _tasks(info, [user_id], user_id, due, status, first)

    @strawberry.field(
        description="Tasks of a manager's team (the users of the manager's team; an admin: everyone, or the users given), "
        "soonest due first."
    )
    async def team_tasks(
        self,
        info: Info,
        due: TaskDue = TaskDue.ANY,
        status: TaskStatus = TaskStatus.OPEN,
        assignee_ids: list[strawberry.ID] | None = None,
        first: int = 50,
    ) -> list[Task]:
        from guanxi.core.services import tasks

        actor = info.context.ctx.actor
        wanted = [from_global_id(i, "User", field="assigneeIds") for i in assignee_ids] if assignee_ids is not None else None
        team: list[Any] | None = None
        if "admin" not in actor.roles and actor.user_id is not None:
            async with info.context.loaders.lock:
                team = await tasks.team_of(info.context.session, actor.user_id)
        elif "admin" not in actor.roles:
            team = []
        assignees = wanted if team is None else [u for u in (wanted if wanted is not None else team) if u in team]
        return await _tasks(info, assignees, actor.user_id, due, status, first)

    @strawberry.field(description="Staff users of the tenant.")
    async def users(self, info: Info) -> list[User]:
        rows = (await info.context.loaders.execute(select(m.User).order_by(m.User.name))).scalars().all()
        return [User.from_model(u) for u in rows]

    @strawberry.field(description="Every tag of the tenant.")
    async def tags(self, info: Info) -> list[Tag]:
        rows = (await info.context.loaders.execute(select(m.Tag).order_by(m.Tag.group_name, m.Tag.name))).scalars().all()
        return [Tag.from_model(t) for t in rows]
