"""What a plugin contributes to the GraphQL schema (returned from ``guanxi_graphql``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GraphQLContribution:
    """A plugin's part of the schema.

    :param query: a ``@strawberry.type`` class whose fields are added to ``Query``.
    :param mutation: likewise for ``Mutation``.
    :param subscription: likewise for ``Subscription``.
    :param extend: core type name (``"Customer"``, ``"Identity"``, ``"Interaction"``, ``"User"``,
        ``"Task"``, ``"Stage"``) → a ``@strawberry.type`` class whose fields are added to that
        type. A resolver's ``self`` is the core object (e.g. ``self.uuid`` is the customer's id).
    :param types: extra types the schema must know that no field reaches directly.
    """

    query: type | None = None
    mutation: type | None = None
    subscription: type | None = None
    extend: Mapping[str, type] = field(default_factory=dict)
    types: Sequence[type] = ()
