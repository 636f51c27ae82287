"""Build the schema from core's parts and the enabled plugins' contributions."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import strawberry
from graphql import ArgumentNode, GraphQLError, ObjectFieldNode, OperationDefinitionNode, StringValueNode, parse, visit
from graphql.language import Visitor
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types import ExecutionResult as StrawberryExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import PluginError
from guanxi.core.hooks.manager import per_plugin
from guanxi.core.runtime import Runtime
from guanxi.graphql import types as core_types
from guanxi.graphql.access import CORE_PERMISSIONS, AccessPolicy
from guanxi.graphql.admin import AdminMutation, AdminQuery
from guanxi.graphql.compiled import CompiledPlan, NotCompilableError, compile_plan, run_plan
from guanxi.graphql.contrib import CustomerFilterField, CustomerOrdering, GraphQLContribution, NodeType
from guanxi.graphql.execution import FastLeafExecutionContext
from guanxi.graphql.extensions import RequestLifecycle
from guanxi.graphql.fields import FieldsMutation, FieldsQuery
from guanxi.graphql.ids import remembering_sent_ids
from guanxi.graphql.messaging import CustomerMessages, Message, MessagingMutation, MessagingQuery
from guanxi.graphql.metrics import GraphQLMetrics
from guanxi.graphql.mutation import Mutation
from guanxi.graphql.nodes import NodeQuery, node_registry
from guanxi.graphql.notifications import NotificationMutation, NotificationQuery, NotificationSubscription
from guanxi.graphql.pipelines import PipelinesMutation
from guanxi.graphql.query import Query, customers_query
from guanxi.graphql.sqlgen import SqlLayer, sql_enabled
from guanxi.graphql.subscriptions import Subscription
from guanxi.graphql.tenant import TenantMutation, TenantQuery

#: Core types a plugin may add fields to (``GraphQLContribution.extend``).
EXTENSIBLE: dict[str, type] = {
    "Customer": core_types.Customer,
    "Identity": core_types.Identity,
    "Interaction": core_types.Interaction,
    "User": core_types.User,
    "Task": core_types.Task,
    "Stage": core_types.Stage,
    "Message": Message,
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
    logged once, with their traceback, by :func:`guanxi.graphql.extensions.shape_error`.

    With ``compile_operations``, a query that ran once without errors is compiled
    (:mod:`guanxi.graphql.compiled`) and later requests for the same query text and operation
    name run the compiled plan; anything the plan cannot do exactly as graphql-core would
    falls back to the ordinary execution."""

    def __init__(self, *args: Any, compile_operations: bool = True, compiled_cache_size: int = 256, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compile_operations = compile_operations and _compilable_extensions(self)
        self._plans: OrderedDict[tuple[str, str | None], CompiledPlan | None] = OrderedDict()
        self._plans_max = compiled_cache_size
        #: counters: fast (compiled plan answered), fallback (plan tried, graphql-core answered),
        #: compiled, not_compilable
        self.compiled_stats = {"fast": 0, "fallback": 0, "compiled": 0, "not_compilable": 0}

    #: who may use which field (set by :func:`build_schema`); None: no checks (bare schemas in tests)
    policy: AccessPolicy | None = None
    #: what ``node(id:)`` can fetch, by the type name in global ids (set by :func:`build_schema`)
    node_types: dict[str, NodeType] = {}  # noqa: RUF012 - replaced per schema, never mutated
    #: operation counts and latencies (set by :func:`build_schema`); None: not recorded
    metrics: GraphQLMetrics | None = None
    #: the longest string accepted in an operation's input (``graphql.max_string_length``)
    max_string_length: int = 10_000
    #: queries over core types answered by one SQL statement per root field (set by
    #: :func:`build_schema`; None: off)
    sql: SqlLayer | None = None

    def _too_long(self, query: str | None, variable_values: Any) -> GraphQLError | None:
        """A string in the input longer than :attr:`max_string_length`: refused before anything
        runs (a 50,000-character search made SQLite fail with "LIKE pattern too complex")."""
        limit = self.max_string_length
        found = _long_string(variable_values, limit, "$") if isinstance(variable_values, dict) else None
        if found is None and isinstance(query, str) and len(query) > limit:
            try:
                found = _long_literal(parse(query), limit)
            except GraphQLError:
                found = None  # a syntax error: graphql-core reports it
        if found is None:
            return None
        message = f"{found}: a string longer than {limit} characters (graphql.max_string_length)"
        return GraphQLError(message, extensions={"code": "VALIDATION", "field": found})

    async def _forbidden(self, query: str | None, operation_name: str | None, variables: Any, context_value: Any) -> GraphQLError | None:
        """The checks of :mod:`guanxi.graphql.access`, before any resolver runs: the caller's
        roles, then the plugins the caller's tenant enabled."""
        if self.policy is None:
            return None
        request_context = getattr(context_value, "request_context", None)
        roles = request_context.actor.roles if request_context is not None else ()
        denied = self.policy.denied(roles, query, operation_name)
        if denied is not None:
            if not roles:  # the anonymous dev-mode caller: everything but introspection needs a key
                return GraphQLError(f"credentials required for {denied.split(' ')[0]}", extensions={"code": "UNAUTHENTICATED"})
            return GraphQLError(f"forbidden: {denied}", extensions={"code": "FORBIDDEN"})
        runtime = getattr(context_value, "runtime", None)
        if isinstance(request_context, RequestContext) and runtime is not None:
            # also reads the tenant's setting overrides for the resolvers (plugin_settings)
            disabled = await runtime.disabled_plugins(request_context.tenant_id)
            used = self.policy.plugin_used(disabled, query, operation_name, variables)
            if used is not None:
                return GraphQLError(f"plugin not enabled for this tenant: {used}", extensions={"code": "PLUGIN_DISABLED"})
        return None

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Any:
        forbidden = (
            await self._forbidden(query, operation_name, variable_values, context_value)
            or _operation_name_missing(query, operation_name)
            or self._too_long(query, variable_values)
        )
        if forbidden is not None:
            return PreExecutionError(data=None, errors=[forbidden])
        return await super().stream(
            query, variable_values, context_value, root_value, operation_name, operation_extensions, allowed_operation_types
        )

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            log.debug("GraphQL error: %s", error.message)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> StrawberryExecutionResult:
        with remembering_sent_ids():  # error messages quote the global ids the caller sent
            if self.metrics is None:
                return await self._execute(
                    query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
                )
            started = time.perf_counter()
            result = await self._execute(
                query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
            )
            self.metrics.observe(query, operation_name, time.perf_counter() - started, not result.errors)
            return result

    async def _execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None,
        context_value: Any | None,
        root_value: Any | None,
        operation_name: str | None,
        allowed_operation_types: Iterable[OperationType] | None,
        operation_extensions: dict[str, Any] | None,
    ) -> StrawberryExecutionResult:
        forbidden = (
            await self._forbidden(query, operation_name, variable_values, context_value)
            or _operation_name_missing(query, operation_name)
            or self._too_long(query, variable_values)
        )
        if forbidden is not None:
            return StrawberryExecutionResult(data=None, errors=[forbidden], extensions={})
        sql = self.sql
        query_allowed = allowed_operation_types is None or OperationType.QUERY in allowed_operation_types
        if sql is not None and isinstance(query, str) and isinstance(operation_name, str | None):
            if query_allowed and (variable_values is None or isinstance(variable_values, dict)):
                answered = await sql.run(query, operation_name, variable_values, context_value)
                if answered is not None:
                    return answered
            if not sql.known(query, operation_name):
                result = await self._execute_present(
                    query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
                )
                if type(result) is StrawberryExecutionResult and not result.errors and result.data is not None:
                    sql.remember(query, operation_name)
                return result
        return await self._execute_present(
            query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
        )

    async def _execute_present(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None,
        context_value: Any | None,
        root_value: Any | None,
        operation_name: str | None,
        allowed_operation_types: Iterable[OperationType] | None,
        operation_extensions: dict[str, Any] | None,
    ) -> StrawberryExecutionResult:
        """The present path: a compiled plan (:mod:`guanxi.graphql.compiled`) or graphql-core."""
        if not self.compile_operations or not isinstance(query, str) or not isinstance(operation_name, str | None):
            return await super().execute(
                query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
            )
        key = (query, operation_name)
        plans = self._plans
        plan = plans.get(key, _MISSING)
        if plan is not _MISSING:
            plans.move_to_end(key)
        query_allowed = allowed_operation_types is None or OperationType.QUERY in allowed_operation_types
        if isinstance(plan, CompiledPlan) and query_allowed and (variable_values is None or isinstance(variable_values, dict)):
            try:
                data = await run_plan(
                    plan,
                    self.execution_context_class or StrawberryGraphQLCoreExecutionContext,
                    self._schema,
                    root_value=root_value,
                    context_value=context_value,
                    variable_values=variable_values,
                    operation_extensions=operation_extensions,
                    is_awaitable=optimized_is_awaitable,
                )
                close = getattr(context_value, "close", None)
                if close is not None:
                    await close()
            except Exception as exc:
                self.compiled_stats["fallback"] += 1
                log.debug("compiled plan fell back: %r", exc)
            else:
                self.compiled_stats["fast"] += 1
                return StrawberryExecutionResult(data=data, errors=None, extensions={})
        result = await super().execute(
            query, variable_values, context_value, root_value, operation_name, allowed_operation_types, operation_extensions
        )
        if plan is _MISSING and type(result) is StrawberryExecutionResult and not result.errors and result.data is not None:
            self._remember(key, query, operation_name)
        return result

    def _remember(self, key: tuple[str, str | None], query: str, operation_name: str | None) -> None:
        compiled: CompiledPlan | None
        try:
            compiled = compile_plan(self._schema, parse(query), operation_name, self)
        except NotCompilableError as exc:
            log.debug("not compiled: %s", exc)
            compiled = None
        except Exception:
            log.debug("compilation failed", exc_info=True)
            compiled = None
        self.compiled_stats["compiled" if compiled is not None else "not_compilable"] += 1
        self._plans[key] = compiled
        while len(self._plans) > self._plans_max:
            self._plans.popitem(last=False)


def _long_string(value: Any, limit: int, path: str) -> str | None:
    """The path of the first string in a JSON value longer than ``limit`` (``$var.key.0``)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if len(item) > limit:
                return where
        elif isinstance(item, dict):
            stack.extend((v, f"{where}{k}" if where == "$" else f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(item))
    return None


def _long_literal(document: Any, limit: int) -> str | None:
    """The argument (``search`` of ``customers(filter: {search: "…"})``) holding the first string
    literal longer than ``limit``."""
    found: list[str] = []

    class Find(Visitor):
        def enter_string_value(self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any) -> Any:
            if len(node.value) > limit:
                names = [a.name.value for a in [*ancestors, parent] if isinstance(a, ArgumentNode | ObjectFieldNode)]
                found.append(".".join(names) or "query")
                return Visitor.BREAK
            return None

    visit(document, Find())
    return found[0] if found else None


_MISSING: Any = object()


@lru_cache(maxsize=512)
def _operation_count(query: str) -> int:
    try:
        document = parse(query)
    except GraphQLError:
        return 0  # the normal execution reports the syntax error
    return sum(1 for d in document.definitions if isinstance(d, OperationDefinitionNode))


def _operation_name_missing(query: str | None, operation_name: str | None) -> GraphQLError | None:
    """The spec's GetOperation: without an operation name, a document of several operations is
    a request error. (Strawberry would pick the first operation's name and run it.)"""
    if operation_name is not None or not isinstance(query, str) or _operation_count(query) < 2:
        return None
    return GraphQLError(
        "the document has several operations: say which to run with operationName", extensions={"code": "GRAPHQL_VALIDATION"}
    )


#: schema extensions the compiled path may skip: they close the session (done by the compiled
#: path too), cache parsing/validation or limit the document (same document, same outcome)
_SKIPPABLE_EXTENSIONS = (RequestLifecycle, ParserCache, ValidationCache, QueryDepthLimiter, MaxAliasesLimiter, MaxTokensLimiter)


def _compile_enabled() -> bool:
    """The kill switch: ``GUANXI_GRAPHQL_COMPILE=0`` (or false/no/off) turns compiled plans off."""
    return os.environ.get("GUANXI_GRAPHQL_COMPILE", "1").strip().lower() not in ("0", "false", "no", "off")


def _compilable_extensions(schema: strawberry.Schema) -> bool:
    """Compiled plans skip the schema extensions: only allowed when each is known to be skippable."""
    if schema.config.enable_experimental_incremental_execution:
        return False
    try:
        extensions = schema.get_extensions()
    except Exception:
        return False
    return all(type(ext) in _SKIPPABLE_EXTENSIONS and not ext._implements_resolve() for ext in extensions)


def contributions(runtime: Runtime) -> list[tuple[str, GraphQLContribution]]:
    out = []
    for name, contribution in per_plugin(runtime.pm.hook.guanxi_graphql, runtime=runtime):
        if not isinstance(contribution, GraphQLContribution):
            raise PluginError(f"plugin {name!r}: guanxi_graphql must return a GraphQLContribution, not {type(contribution).__name__}")
        out.append((name, contribution))
    return out


def _customer_list_extensions(parts: list[tuple[str, GraphQLContribution]]) -> tuple[list[CustomerFilterField], list[CustomerOrdering]]:
    """The plugins' filter fields and orderings of ``customers``; a name used twice (or one of
    core's) fails with both owners named."""
    from guanxi.core.services.queries import CustomerOrder
    from guanxi.graphql.inputs import CustomerFilter

    filter_owners = {f.python_name: "core" for f in _fields(CustomerFilter)}
    order_owners = {m.value: "core" for m in CustomerOrder}
    filters: list[CustomerFilterField] = []
    orderings: list[CustomerOrdering] = []
    for name, c in parts:
        for flt in c.customer_filters:
            if flt.name in filter_owners:
                raise PluginError(f"CustomerFilter.{flt.name} is defined by both {filter_owners[flt.name]} and {name}")
            filter_owners[flt.name] = name
            filters.append(flt)
        for order in c.customer_orderings:
            if order.key in order_owners:
                raise PluginError(f"CustomerOrder.{order.key.upper()} is defined by both {order_owners[order.key]} and {name}")
            order_owners[order.key] = name
            orderings.append(order)
    return filters, orderings


def build_schema(runtime: Runtime, *, compile_operations: bool = True, compile_sql: bool = True) -> strawberry.Schema:
    """The schema for this runtime: core plus every enabled plugin's contribution.

    ``compile_operations``: run known queries through compiled plans (see :class:`GuanxiSchema`);
    the environment variable ``GUANXI_GRAPHQL_COMPILE=0`` turns it off. ``compile_sql``: answer
    queries over core types with one SQL statement per root field (:mod:`guanxi.graphql.sqlgen`);
    ``GUANXI_GRAPHQL_SQL=0`` turns it off."""
    parts = contributions(runtime)
    customers = customers_query(*_customer_list_extensions(parts))
    core_query = [
        ("core", customers),
        ("core", Query),
        ("core", NodeQuery),
        ("core", MessagingQuery),
        ("core", AdminQuery),
        ("core", FieldsQuery),
        ("core", NotificationQuery),
        ("core", TenantQuery),
    ]
    query = _merge_root("Query", [*core_query, *[(n, c.query) for n, c in parts if c.query]])
    mutation = _merge_root(
        "Mutation",
        [
            ("core", Mutation),
            ("core", MessagingMutation),
            ("core", AdminMutation),
            ("core", FieldsMutation),
            ("core", PipelinesMutation),
            ("core", NotificationMutation),
            ("core", TenantMutation),
            *[(n, c.mutation) for n, c in parts if c.mutation],
        ],
    )
    subscription = _merge_root(
        "Subscription",
        [("core", Subscription), ("core", NotificationSubscription), *[(n, c.subscription) for n, c in parts if c.subscription]],
    )
    extensions: dict[str, list[tuple[str, type]]] = {"Customer": [("core", CustomerMessages)]}
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
    if runtime.settings.tracing.enabled:
        # spans per operation and per resolver; only while tracing is on, since an extension
        # that resolves per field switches the compiled fast path off
        from strawberry.extensions.tracing import OpenTelemetryExtension

        schema_extensions.append(OpenTelemetryExtension)
    with _build_lock, _extended(extensions):
        schema = GuanxiSchema(
            query=query,
            mutation=mutation,
            subscription=subscription,
            types=extra_types,
            extensions=schema_extensions,
            execution_context_class=FastLeafExecutionContext,
            compile_operations=compile_operations and _compile_enabled(),
        )
    declared = [("core", p) for p in CORE_PERMISSIONS]
    for name, permissions in per_plugin(runtime.pm.hook.guanxi_permissions):
        declared += [(name, p) for p in permissions]
    owners = plugin_coordinates(schema, parts)
    schema.policy = AccessPolicy(schema._schema, declared, owners)
    schema.node_types = node_registry((name, n) for name, c in parts for n in c.nodes)
    if runtime.settings.metrics.enabled:
        schema.metrics = GraphQLMetrics(runtime.settings.metrics.max_operation_names)
    if compile_sql and sql_enabled() and _compilable_extensions(schema):
        # the plugins' fields on Customer are resolved by their resolvers and merged per customer
        merged = frozenset(c.split(".", 1)[1] for c in owners if c.startswith("Customer."))
        schema.sql = SqlLayer(schema._schema, merged_fields=merged, executor_class=schema.execution_context_class)
    schema.max_string_length = settings.max_string_length
    return schema


def plugin_coordinates(schema: strawberry.Schema, parts: list[tuple[str, GraphQLContribution]]) -> dict[str, str]:
    """Which plugin contributed each coordinate of the schema: root fields, fields added to core
    types, ``CustomerFilter`` input fields and ``CustomerOrder`` values. The access policy uses
    it to refuse a disabled plugin's parts (``PLUGIN_DISABLED``)."""
    names = schema.config.name_converter
    owners: dict[str, str] = {}
    for name, c in parts:
        for root, cls in (("Query", c.query), ("Mutation", c.mutation), ("Subscription", c.subscription), *c.extend.items()):
            if cls is not None:
                for f in _fields(cls):
                    owners[f"{root}.{names.get_graphql_name(f)}"] = name
        for flt in c.customer_filters:
            owners[f"CustomerFilter.{names.apply_naming_config(flt.name)}"] = name
        for order in c.customer_orderings:
            owners[f"CustomerOrder.{order.key.upper()}"] = name
    return owners
