"""Relay's object identification: ``node(id:)`` and ``nodes(ids:)`` fetch any object with a
global id (every type implementing the ``Node`` interface).

Each fetchable type is a :class:`~guanxi.graphql.contrib.NodeType`: core's are
:data:`CORE_NODES`, plugins add theirs (``GraphQLContribution.nodes``). Objects are loaded on the
request's session, so tenancy and record ownership apply as everywhere (another tenant's or,
for a salesperson, another salesperson's customer is ``null``, like an unknown id). A type whose
list is guarded by a permission (messages, the audit trail, the inbox) is ``null`` too for a
caller without it; the fields selected on the objects are checked before the operation runs, as
for any query (:mod:`guanxi.graphql.access`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain import models as m
from guanxi.graphql.admin import AuditEntry
from guanxi.graphql.contrib import NodeType
from guanxi.graphql.ids import decode_global_id
from guanxi.graphql.messaging import InboxItem, Message
from guanxi.graphql.types import Customer, Identity, Interaction, Node, Stage, StageChange, Tag, Task, User


def rows_by_id(model: Any, build: Callable[[Any, Info], Any]) -> Callable[[Info, list[uuid.UUID]], Any]:
    """A ``load`` for a table with an ``id`` column: one statement on the request session."""

    async def load(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        rows = (await info.context.loaders.execute(select(model).where(model.id.in_(ids)))).scalars()
        return {r.id: build(r, info) for r in rows}

    return load


async def _customers(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """As ``customer(id:)``: a merged customer's id gives the survivor."""
    from guanxi.core.services.customers import get_customer

    found: dict[uuid.UUID, Any] = {}
    for row in await info.context.loaders.customers_by_id(ids):
        if row is None:
            continue
        if row.merged_into_id is None:
            found[row.id] = Customer.from_row(row, info.context)
            continue
        try:
            async with info.context.loaders.lock:
                survivor = await get_customer(info.context.session, row.id)
        except NotFoundError:
            continue
        found[row.id] = Customer.from_row(survivor, info.context)
    return found


async def _users(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    return {u.id: User.from_model(u) for u in await info.context.loaders.users_by_id(ids) if u is not None}


async def _stages(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    stages = await info.context.loaders.stages()
    return {i: Stage.from_model(stages[i]) for i in ids if i in stages}


async def _pipelines(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    from guanxi.graphql.query import _pipelines as all_pipelines

    return {p.uuid: p for p in await all_pipelines(info) if p.uuid in ids}


CORE_NODES: tuple[NodeType, ...] = (
    NodeType("Customer", _customers),
    NodeType("User", _users),
    NodeType("Stage", _stages),
    NodeType("Pipeline", _pipelines),
    NodeType("Tag", rows_by_id(m.Tag, lambda r, info: Tag.from_model(r))),
    NodeType("Identity", rows_by_id(m.Identity, lambda r, info: Identity.from_model(r))),
    NodeType("Interaction", rows_by_id(m.Interaction, lambda r, info: Interaction.from_model(r, info.context))),
    NodeType("StageChange", rows_by_id(m.StageChange, lambda r, info: StageChange.from_model(r, info.context))),
    NodeType("Task", rows_by_id(m.Task, lambda r, info: Task.from_model(r, info.context))),
    NodeType("Message", rows_by_id(m.OutboxMessage, lambda r, info: Message.from_model(r)), guard="Query.message"),
    NodeType("AuditEvent", rows_by_id(m.AuditEvent, lambda r, info: AuditEntry.from_row(r)), guard="Query.auditEvents"),
    NodeType("InboxEvent", rows_by_id(m.InboxEvent, lambda r, info: InboxItem.from_model(r)), guard="Query.inboxEvents"),
)


def node_registry(plugin_nodes: Iterable[tuple[str, NodeType]]) -> dict[str, NodeType]:
    """Core's node types plus the plugins'; a type name claimed twice fails with both owners."""
    from guanxi.core.base.errors import PluginError

    registry = {n.name: n for n in CORE_NODES}
    owners = {n.name: "core" for n in CORE_NODES}
    for owner, node_type in plugin_nodes:
        if node_type.name in registry:
            raise PluginError(f"node type {node_type.name!r} is defined by both {owners[node_type.name]} and {owner}")
        registry[node_type.name] = node_type
        owners[node_type.name] = owner
    return registry


async def fetch_nodes(info: Info, ids: list[str], field: str) -> list[Any]:
    """The objects of these global ids, in order; None for an unknown, invisible or forbidden one."""
    schema = info.schema
    registry: Mapping[str, NodeType] = getattr(schema, "node_types", {})
    policy = getattr(schema, "policy", None)
    request_context = getattr(info.context, "request_context", None)
    roles = request_context.actor.roles if request_context is not None else ()
    wanted: dict[str, list[uuid.UUID]] = {}
    decoded: list[tuple[str, uuid.UUID]] = []
    for global_id in ids:
        type_name, value = decode_global_id(global_id, field=field)
        decoded.append((type_name, value))
        node_type = registry.get(type_name)
        if node_type is None:
            continue
        if node_type.guard is not None and policy is not None and not policy.allows(roles, node_type.guard):
            continue
        wanted.setdefault(type_name, []).append(value)
    found: dict[str, Mapping[uuid.UUID, Any]] = {}
    for type_name, values in wanted.items():
        found[type_name] = await registry[type_name].load(info, list(dict.fromkeys(values)))
    return [found.get(type_name, {}).get(value) for type_name, value in decoded]


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id (Relay); null if none is visible to the caller.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        (found,) = await fetch_nodes(info, [id], "id")
        return found

    @strawberry.field(description="Objects by their global ids, in the order given (Relay); null for each one not visible.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        limit = info.context.rt.settings.graphql.max_page_size
        if len(ids) > limit:
            raise ValidationError(f"`ids` has {len(ids)} ids; at most {limit} at once", field="ids", code="BAD_PAGE_SIZE")
        return await fetch_nodes(info, list(ids), "ids")
