"""Build the schema from core's parts and the enabled plugins' contributions."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from guanxi.core.errors import PluginError
from guanxi.core.plugins import per_plugin
from guanxi.core.runtime import Runtime
from guanxi.graphql import types as core_types
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.execution import FastLeafExecutionContext
from guanxi.graphql.extensions import RequestLifecycle
from guanxi.graphql.mutation import Mutation
from guanxi.graphql.query import Query

#: Core types a plugin may add fields to (``GraphQLContribution.extend``).
EXTENSIBLE: dict[str, type] = {
    "Customer": core_types.Customer,
    "Identity": core_types.Identity,
    "Interaction": core_types.Interaction,
    "User": core_types.User,
    "Task": core_types.Task,
    "Stage": core_types.Stage,
}
_build_lock = threading.Lock()
log = logging.getLogger("guanxi.graphql")


def _fields(cls: type) -> list[Any]:
    definition = getattr(cls, "__strawberry_definition__", None)
    if definition is None:
        raise PluginError(f"{cls!r} is not a @strawberry.type class")
    return list(definition.fields)


def _merge_root(name: str, parts: list[tuple[str, type]]) -> type | None:
    """Merge root types; a field defined twice fails with both owners named."""
    if not parts:
        return None
    owners: dict[str, str] = {}
    for owner, cls in parts:
        for f in _fields(cls):
            if f.python_name in owners:
                raise PluginError(f"{name}.{f.name} is defined by both {owners[f.python_name]} and {owner}")
            owners[f.python_name] = owner
    return merge_types(name, tuple(cls for _, cls in parts))


@contextmanager
def _extended(extensions: dict[str, list[tuple[str, type]]]) -> Iterator[None]:
    """Temporarily give core types the fields plugins add to them, while one schema is built.

    Strawberry resolves a field's type to the core class and reads its definition when the
    schema is converted; swapping the definition for an extended copy during that build gives
    this schema the plugin fields without changing the core class for other schemas (tests
    build schemas with different plugin sets in one process)."""
    saved: dict[type, Any] = {}
    try:
        for type_name, parts in extensions.items():
            if type_name not in EXTENSIBLE:
                raise PluginError(f"{parts[0][0]} extends {type_name!r}, which is not extensible (extensible: {', '.join(EXTENSIBLE)})")
            cls = EXTENSIBLE[type_name]
            definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
            names = {f.python_name: "core" for f in definition.fields}
            extra = []
            for owner, part in parts:
                for f in _fields(part):
                    if f.python_name in names:
                        raise PluginError(f"{type_name}.{f.name} is defined by both {names[f.python_name]} and {owner}")
                    names[f.python_name] = owner
                    extra.append(f)
            saved[cls] = definition
            cls.__strawberry_definition__ = dataclasses.replace(definition, fields=[*definition.fields, *extra])  # type: ignore[attr-defined]
        yield
    finally:
        for cls, definition in saved.items():
            cls.__strawberry_definition__ = definition  # type: ignore[attr-defined]


class GuanxiSchema(strawberry.Schema):
    """Strawberry's schema, minus its logging of every error at ERROR level: caller mistakes
    (bad ids, invalid input, malformed queries) are logged at debug, and unexpected errors are
    logged once, with their traceback, by :func:`guanxi.graphql.extensions.shape_error`."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            log.debug("GraphQL error: %s", error.message)


def contributions(runtime: Runtime) -> list[tuple[str, GraphQLContribution]]:
    out = []
    for name, contribution in per_plugin(runtime.pm.hook.guanxi_graphql, runtime=runtime):
        if not isinstance(contribution, GraphQLContribution):
            raise PluginError(f"plugin {name!r}: guanxi_graphql must return a GraphQLContribution, not {type(contribution).__name__}")
        out.append((name, contribution))
    return out


def build_schema(runtime: Runtime) -> strawberry.Schema:
    """The schema for this runtime: core plus every enabled plugin's contribution."""
    parts = contributions(runtime)
    query = _merge_root("Query", [("core", Query), *[(n, c.query) for n, c in parts if c.query]])
    mutation = _merge_root("Mutation", [("core", Mutation), *[(n, c.mutation) for n, c in parts if c.mutation]])
    subscription = _merge_root("Subscription", [(n, c.subscription) for n, c in parts if c.subscription])
    extensions: dict[str, list[tuple[str, type]]] = {}
    for name, c in parts:
        for type_name, cls in c.extend.items():
            extensions.setdefault(type_name, []).append((name, cls))
    extra_types = [t for _, c in parts for t in c.types]
    settings = runtime.settings.graphql
    # One instance of each, shared by every request: the caches must outlive a request, and
    # the limiters keep no per-request state. Strawberry takes factories.
    shared = [
        ParserCache(maxsize=512),
        ValidationCache(maxsize=512),
        QueryDepthLimiter(max_depth=settings.max_depth),
        MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        MaxTokensLimiter(max_token_count=settings.max_tokens),
    ]
    schema_extensions: list[Any] = [RequestLifecycle, *[(lambda ext=ext: ext) for ext in shared]]
    with _build_lock, _extended(extensions):
        return GuanxiSchema(
            query=query,  # type: ignore[arg-type]
            mutation=mutation,
            subscription=subscription,
            types=extra_types,
            extensions=schema_extensions,
            execution_context_class=FastLeafExecutionContext,
        )
