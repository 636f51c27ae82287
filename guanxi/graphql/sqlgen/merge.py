"""Plugin fields on ``Customer`` next to a page built by SQL: resolved by their own resolvers
(DataLoaders batch them over the page), merged into the database's JSON text without decoding it.

The statement writes, where a plugin field's value goes in each customer's object, a placeholder
string ``"<nonce>:<slot>:<customer id>"`` (the nonce is random per request, so no stored text can
pass for one). :func:`merge_plugin_fields` finds the placeholders in the JSON text, runs the
fields' resolvers for those customers through the compiled executor of
:mod:`guanxi.graphql.compiled` (level by level, every awaitable of a level gathered, so each
DataLoader runs one batch for the whole page), encodes each value and writes it in place of its
placeholder. Anything the compiled executor does not do exactly as graphql-core would (a
resolver raising, which is how a plugin reports a bad argument; null in a non-null position…)
raises :class:`MergeFallback`: the present path answers the request, with its own errors.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from graphql import DocumentNode, GraphQLObjectType, GraphQLSchema, OperationDefinitionNode, visit
from graphql.execution.collect_fields import FieldDetails
from graphql.pyutils import Path
from strawberry.execution import optimized_is_awaitable

from guanxi.graphql.compiled import ObjectPlan, _Compiler, _NoDirectives, _Run
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.sqlgen.plan import Sel

_encode = msgspec.json.encode


class MergeFallback(Exception):  # noqa: N818 - a signal, not an error
    """The plugin fields could not be merged exactly as the present path answers them."""


class _PageCustomer:
    """The ``self`` a plugin field's resolver gets: the customer's id (``uuid``), the request's
    context (``ctx``), the global ``id``. Anything else a resolver reads is not there: the
    resolver raises and the present path answers (with the whole customer)."""

    __slots__ = ("ctx", "id", "uuid")

    def __init__(self, customer_id: uuid.UUID, ctx: Any) -> None:
        self.uuid = customer_id
        self.ctx = ctx
        self.id = to_global_id("Customer", customer_id)

    def __getattr__(self, name: str) -> Any:
        raise MergeFallback(f"a merged plugin field read Customer.{name}")


def resolvers_for(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, merged: Sequence[Sel]
) -> list[ObjectPlan]:
    """One compiled object plan of ``Customer`` per merged field (by slot)."""
    if not merged:
        return []
    visit(document, _NoDirectives())  # collecting the plugin fields' subtrees reads no variables
    compiler = _Compiler(schema, document, operation, None)
    customer = schema.get_type("Customer")
    assert isinstance(customer, GraphQLObjectType)
    return [compiler.object_plan(customer, {sel.key: [FieldDetails(n, None) for n in sel.nodes]}, None, None) for sel in merged]


async def merge_plugin_fields(
    document: bytes,
    nonce: str,
    plans: Sequence[ObjectPlan],
    executor: Any,
    context: Any,
) -> bytes:
    """``document`` with each placeholder replaced by the JSON of its plugin field's value."""
    pattern = re.compile(rb'"' + re.escape(nonce.encode()) + rb':(\d+):([0-9a-fA-F-]{32,36})"')
    found = pattern.findall(document)
    if not found:
        return document
    run = _Run(executor, optimized_is_awaitable)
    values: dict[tuple[bytes, bytes], dict[str, Any]] = {}
    sources: dict[bytes, _PageCustomer] = {}
    try:
        for index, (slot, raw_id) in enumerate(found):
            if (slot, raw_id) in values:
                continue
            source = sources.get(raw_id)
            if source is None:
                source = sources[raw_id] = _PageCustomer(uuid.UUID(raw_id.decode()), context)
            plan = plans[int(slot)]
            path = Path(Path(None, index, None), plan.fields[0].key, "Customer")
            values[(slot, raw_id)] = run.complete_object(plan, source, path)
        await run.settle(cancel_siblings=False)
    except BaseException as exc:
        await run.abandon()
        if isinstance(exc, Exception):
            raise MergeFallback(f"{type(exc).__name__}: {exc}") from None
        raise
    encoded = {k: _encode(next(iter(v.values()))) for k, v in values.items()}
    return pattern.sub(lambda m: encoded[(m.group(1), m.group(2))], document)


__all__ = ["MergeFallback", "merge_plugin_fields", "resolvers_for"]
