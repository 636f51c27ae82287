"""What a plugin contributes to the GraphQL schema (returned from ``guanxi_graphql``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select

from guanxi.core.services.queries import CustomerOrdering
from guanxi.graphql.types import Node


@dataclass(frozen=True)
class CustomerFilterField:
    """A field a plugin adds to the ``CustomerFilter`` input of ``customers(filter: …)``.

    :param name: the Python name, snake_case (``score_gte``); GraphQL shows it camelCased
        (``scoreGte``). It must not clash with core's or another plugin's filter fields.
    :param type: its Python type, optional (``float | None``); an omitted or null value adds no
        condition.
    :param apply: ``apply(stmt, value)`` returns core's customer select with the plugin's condition
        added, e.g. ``stmt.where(Customer.id.in_(select(Score.customer_id).where(Score.total >= value)))``.
    :param description: shown in the schema.
    """

    name: str
    type: Any
    apply: Callable[[Select[Any], Any], Select[Any]]
    description: str = ""


@dataclass(frozen=True)
class NodeType:
    """A type that ``node(id:)`` and ``nodes(ids:)`` can fetch by its global id.

    :param name: the type name inside its global ids (``to_global_id("ReferralReward", …)``).
    :param load: ``await load(info, uuids)`` returns the objects found, by uuid (objects of a
        ``@strawberry.type`` that implements :class:`Node`). Query on the request's session
        (``info.context.loaders.execute(select(…))``): tenancy and record ownership then apply,
        so another tenant's or another salesperson's object is simply not found.
    :param guard: a schema coordinate (``"Query.referralRewards"``) whose permission the caller
        must hold to fetch this type by id; without one, the type's own fields' permissions apply.
    """

    name: str
    load: Callable[[Any, list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Any]]]
    guard: str | None = None


@dataclass(frozen=True)
class GraphQLContribution:
    """A plugin's part of the schema.

    :param query: a ``@strawberry.type`` class whose fields are added to ``Query``.
    :param mutation: likewise for ``Mutation``.
    :param subscription: likewise for ``Subscription``.
    :param extend: core type name (``"Customer"``, ``"Identity"``, ``"Interaction"``, ``"User"``,
        ``"Task"``, ``"Stage"``, ``"Message"``) → a ``@strawberry.type`` class whose fields are
        added to that type. A resolver's ``self`` is the core object (e.g. ``self.uuid`` is the
        customer's id, or the message's: the outbox row's id).
    :param types: extra types the schema must know that no field reaches directly.
    :param customer_filters: fields added to the ``CustomerFilter`` input of ``customers``
        (:class:`CustomerFilterField`).
    :param customer_orderings: values added to the ``CustomerOrder`` enum of ``customers(orderBy:)``
        (:class:`guanxi.core.services.queries.CustomerOrdering`), with keyset pagination like core's.
    :param nodes: the plugin's types with global ids that ``node(id:)`` can fetch
        (:class:`NodeType`); their classes implement :class:`Node`.
    """

    query: type | None = None
    mutation: type | None = None
    subscription: type | None = None
    extend: Mapping[str, type] = field(default_factory=dict)
    types: Sequence[type] = ()
    customer_filters: Sequence[CustomerFilterField] = ()
    customer_orderings: Sequence[CustomerOrdering] = ()
    nodes: Sequence[NodeType] = ()


__all__ = ["CustomerFilterField", "CustomerOrdering", "GraphQLContribution", "Node", "NodeType"]
