"""Compiled query plans: run a known query without graphql-core's per-field machinery.

A document that graphql-core/Strawberry has executed once without errors is valid (same query
text and operation name give the same parse and validation outcome), so later requests for it
can skip parsing, validation and the generic executor. :func:`compile_plan` turns the operation
into a tree of per-type field lists (collected with graphql-core's own ``collect_fields``, so
response keys, their order and merged sub-selections are graphql-core's); :func:`run_plan`
walks it: plain attributes are read with ``getattr``, resolver fields are called exactly as
graphql-core calls them (``field_def.resolve(source, info, **args)`` with Strawberry's own
resolve-info object), leaves are coerced with the type's ``coerce_output_value``.

The fast path only ever produces an error-free result. Anything it does not handle the way
graphql-core would (a resolver raising, None in a non-null position, a value a scalar refuses,
a list that is not a list or tuple, variables that do not coerce…) raises :class:`FallbackError`,
and the caller runs the operation through Strawberry/graphql-core instead (query resolvers are
read-only, so running them again is safe).

Not compiled: mutations and subscriptions, any directive in the document, abstract types
(fields of an interface or union type), object types with an ``is_type_of`` of their own
(Strawberry's, which every type implementing an interface gets, is called as graphql-core
calls it: a value it refuses falls back), introspection fields other than ``__typename``,
fragment variables.

Resolvers run level by level: the synchronous parts of the tree are completed in one pass,
the awaitables found on the way are awaited together (``gather``), so DataLoaders batch every
item of a list, then the values they gave are completed, and so on.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    Visitor,
    get_argument_values,
    visit,
)
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_fields, collect_subfields
from graphql.execution.values import VariableValues
from graphql.pyutils import Path, gather_with_cancel

from guanxi.graphql.execution import basic_attribute

GRAPHQL_MAX_INT = 2_147_483_647
GRAPHQL_MIN_INT = -2_147_483_648


class NotCompilableError(Exception):
    """The operation uses something the compiled executor does not handle."""


class FallbackError(Exception):
    """This execution must be done by graphql-core (the result could differ otherwise)."""


# -- plan -----------------------------------------------------------------------------------------

TYPENAME, BASIC, RESOLVER, DIRECT = 0, 1, 2, 3
LEAF, OBJECT, LIST = 0, 1, 2
# how a leaf value of an exact Python type is sent as it is (graphql-core's coercion gives the same)
PASS_NONE, PASS_STR, PASS_BOOL, PASS_INT, PASS_FLOAT = 0, 1, 2, 3, 4
_PASS: dict[Any, int] = {
    GraphQLString: PASS_STR,
    GraphQLID: PASS_STR,
    GraphQLBoolean: PASS_BOOL,
    GraphQLInt: PASS_INT,
    GraphQLFloat: PASS_FLOAT,
}
_SIMPLE_ARGUMENT_TYPES = (GraphQLString, GraphQLID, GraphQLBoolean, GraphQLInt, GraphQLFloat)


class Out:
    """How to complete a value of one output type."""

    __slots__ = ("coerce", "exact", "item", "kind", "needs_path", "non_null", "pass_kind", "plan")

    def __init__(self, kind: int, non_null: bool) -> None:
        self.kind = kind
        self.non_null = non_null
        self.coerce: Callable[[Any], Any] | None = None
        self.pass_kind = PASS_NONE
        # a Python type sent as it is without any check (str for String/ID, bool for Boolean)
        self.exact: type | None = None
        self.item: Out | None = None
        self.plan: ObjectPlan | None = None
        self.needs_path = False  # a resolver runs somewhere below


class FieldPlan:
    __slots__ = ("args_cacheable", "direct_args", "field_def", "field_nodes", "has_args", "key", "kind", "out", "python_name", "resolve")

    def __init__(self, key: str, kind: int) -> None:
        self.key = key
        self.kind = kind
        self.python_name = ""
        self.field_def: GraphQLField | None = None
        self.field_nodes: list[Any] = []
        self.resolve: Callable[..., Any] | None = None
        self.has_args = False
        self.args_cacheable = False
        # DIRECT: (GraphQL name, Python name, is a list) per argument
        self.direct_args: tuple[tuple[str, str, bool], ...] = ()
        self.out: Out | None = None


class ObjectPlan:
    __slots__ = ("fields", "is_type_of", "needs_path", "type", "type_name")

    def __init__(self, type_: GraphQLObjectType, fields: list[FieldPlan]) -> None:
        self.type = type_
        self.type_name = type_.name
        self.fields = fields
        # Strawberry's generated check (it ignores its info argument); None: the type has none
        self.is_type_of: Callable[[Any, Any], Any] | None = type_.is_type_of
        # a resolver below gets a resolve-info object, so the path is built down to it
        self.needs_path = any(f.kind == RESOLVER or (f.out is not None and f.out.needs_path) for f in fields)


class CompiledPlan:
    __slots__ = ("document", "operation_name", "root")

    def __init__(self, document: DocumentNode, operation_name: str | None, root: ObjectPlan) -> None:
        self.document = document
        self.operation_name = operation_name
        self.root = root


class _NoDirectives(Visitor):
    def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
        raise NotCompilableError(f"directive @{node.name.value}")


def _simple_arguments(field_def: GraphQLField) -> bool:
    """Arguments whose coerced values cannot be shared mutably between calls (built-in
    scalars and enums, or lists of them, which Strawberry copies): computed once per request."""
    for arg in field_def.args.values():
        t: Any = arg.type
        while isinstance(t, GraphQLNonNull | GraphQLList):
            t = t.of_type
        if not (t in _SIMPLE_ARGUMENT_TYPES or isinstance(t, GraphQLEnumType)):
            return False
    return True


def _direct_call(field_def: GraphQLField, strawberry_schema: Any) -> tuple[Callable[..., Any], tuple[tuple[str, str, bool], ...]] | None:
    """For a Strawberry resolver that Strawberry's wrapper would call as ``fn(source, **kwargs)``
    with the arguments passed unchanged (lists copied), that function and how to map the
    arguments; None when the wrapper does more (field extensions or permissions, exception
    handlers, ``info``/``root``/``parent`` parameters, arguments needing conversion)."""
    from strawberry.scalars import ID
    from strawberry.types.base import StrawberryList, StrawberryOptional

    if strawberry_schema is None or getattr(strawberry_schema.schema_converter, "_exception_handler_specs", True):
        return None
    field = (field_def.extensions or {}).get("strawberry-definition")
    resolver = getattr(field, "base_resolver", None)
    if field is None or resolver is None or field.extensions or not resolver.self_parameter:
        return None
    if resolver.info_parameter or resolver.parent_parameter or resolver.root_parameter:
        return None
    fn = resolver.wrapped_func
    if not callable(fn) or isinstance(fn, type):
        return None
    mapping = []
    name_converter = strawberry_schema.config.name_converter
    for argument in field.arguments:
        t, is_list = argument.type, False
        if isinstance(t, StrawberryOptional):
            t = t.of_type
        if isinstance(t, StrawberryList):
            t, is_list = t.of_type, True
            if isinstance(t, StrawberryOptional):
                t = t.of_type
        if t not in (str, int, float, bool, ID) or type(argument.type) not in (StrawberryOptional, StrawberryList, type, type(ID)):
            return None
        mapping.append((name_converter.from_argument(argument), argument.python_name, is_list))
    if len({m[0] for m in mapping}) != len(mapping) or set(field_def.args) != {m[0] for m in mapping}:
        return None
    return fn, tuple(mapping)


def _strawberry_is_type_of(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is the ``is_type_of`` Strawberry generates for a type that implements an
    interface (an isinstance check that never reads its info argument)."""
    return getattr(fn, "__module__", "") == "strawberry.schema.schema_converter" and fn.__qualname__.endswith(
        "_get_is_type_of.<locals>.is_type_of"
    )


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, strawberry_schema: Any) -> None:
        self.schema = schema
        self.strawberry_schema = strawberry_schema
        self.operation = operation
        self.fragments: dict[str, FragmentDetails] = {}
        for d in document.definitions:
            if isinstance(d, FragmentDefinitionNode):
                if d.variable_definitions:
                    raise NotCompilableError("fragment variables")
                self.fragments[d.name.value] = FragmentDetails(d, None)
        # No directive anywhere (checked before), so collecting fields never reads variables.
        self.variables = VariableValues({}, {})

    def root(self, root_type: GraphQLObjectType) -> ObjectPlan:
        grouped, defers, forbidden = collect_fields(self.schema, self.fragments, self.variables, root_type, self.operation)
        return self.object_plan(root_type, grouped, defers, forbidden)

    def object_plan(self, type_: GraphQLObjectType, grouped: dict[str, list[FieldDetails]], defers: Any, forbidden: Any) -> ObjectPlan:
        if defers or forbidden:
            raise NotCompilableError("defer")
        if type_.is_type_of is not None and not _strawberry_is_type_of(type_.is_type_of):
            raise NotCompilableError(f"{type_.name} has its own is_type_of")
        fields = []
        for key, details in grouped.items():
            if any(d.fragment_variable_values is not None or d.defer_usage is not None for d in details):
                raise NotCompilableError("fragment variables or defer")
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                fields.append(FieldPlan(key, TYPENAME))
                continue
            if name.startswith("__"):
                raise NotCompilableError("introspection")
            field_def = type_.fields.get(name)
            if field_def is None:
                raise NotCompilableError(f"unknown field {type_.name}.{name}")
            python_name = basic_attribute(field_def)
            has_args = bool(field_def.args or node.arguments)
            if python_name is not None and not has_args:
                f = FieldPlan(key, BASIC)
                f.python_name = python_name
            else:
                if field_def.resolve is None:
                    raise NotCompilableError(f"{type_.name}.{name} has no resolver")
                direct = _direct_call(field_def, self.strawberry_schema)
                if direct is not None:
                    f = FieldPlan(key, DIRECT)
                    f.resolve, f.direct_args = direct
                else:
                    f = FieldPlan(key, RESOLVER)
                    f.resolve = field_def.resolve
                f.has_args = has_args
                f.args_cacheable = _simple_arguments(field_def)
            f.field_def = field_def
            f.field_nodes = [d.node for d in details]
            f.out = self.out(field_def.type, details)
            fields.append(f)
        return ObjectPlan(type_, fields)

    def out(self, type_: Any, details: list[FieldDetails]) -> Out:
        non_null = isinstance(type_, GraphQLNonNull)
        if non_null:
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            o = Out(LIST, non_null)
            o.item = self.out(type_.of_type, details)
            o.needs_path = o.item.needs_path
            return o
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            o = Out(LEAF, non_null)
            o.coerce = type_.coerce_output_value
            o.pass_kind = _PASS.get(type_, PASS_NONE)
            o.exact = {PASS_STR: str, PASS_BOOL: bool}.get(o.pass_kind)
            return o
        if isinstance(type_, GraphQLObjectType):
            grouped, defers, forbidden = collect_subfields(self.schema, self.fragments, self.variables, self.operation, type_, details)
            o = Out(OBJECT, non_null)
            o.plan = self.object_plan(type_, grouped, defers, forbidden)
            o.needs_path = o.plan.needs_path
            return o
        raise NotCompilableError(f"abstract type {type_}")


def compile_plan(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, strawberry_schema: Any = None) -> CompiledPlan:
    """A plan for the query operation of ``document``; :class:`NotCompilableError` if it is not one.

    With ``strawberry_schema``, simple Strawberry resolvers are called directly (see :func:`_direct_call`)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            raise NotCompilableError("no single operation")
        operation = operations[0]
    else:
        found = [o for o in operations if o.name is not None and o.name.value == operation_name]
        if len(found) != 1:
            raise NotCompilableError("operation not found")
        operation = found[0]
    if operation.operation != OperationType.QUERY:
        raise NotCompilableError(operation.operation.value)
    visit(document, _NoDirectives())
    root_type = schema.query_type
    if root_type is None:
        raise NotCompilableError("no query type")
    return CompiledPlan(document, operation_name, _Compiler(schema, document, operation, strawberry_schema).root(root_type))


# -- execution ------------------------------------------------------------------------------------


class _Run:
    """One execution of a plan."""

    __slots__ = ("args", "executor", "is_awaitable", "pending")

    def __init__(self, executor: Any, is_awaitable: Callable[[Any], bool]) -> None:
        self.executor = executor
        self.is_awaitable = is_awaitable
        # (awaitable, how to complete its value, path, container, key in the container)
        self.pending: list[tuple[Awaitable[Any], Out, Path | None, Any, Any]] = []
        self.args: dict[int, dict[str, Any]] = {}

    def arguments(self, f: FieldPlan) -> dict[str, Any]:
        if not f.has_args:
            return {}
        if f.args_cacheable:
            cached = self.args.get(id(f))
            if cached is None:
                cached = self.args[id(f)] = self._coerce_arguments(f)
            return cached
        return self._coerce_arguments(f)

    def direct_arguments(self, f: FieldPlan) -> dict[str, Any]:
        """Keyword arguments as Strawberry's ``convert_arguments`` gives them for plain scalars:
        Python names, only the arguments graphql-core coerced, lists copied."""
        coerced = self.arguments(f)
        kwargs = {}
        for gql, py, is_list in f.direct_args:
            if gql in coerced:
                value = coerced[gql]
                kwargs[py] = list(value) if is_list and value is not None else value
        return kwargs

    def _coerce_arguments(self, f: FieldPlan) -> dict[str, Any]:
        ex = self.executor
        return get_argument_values(f.field_def, f.field_nodes[0], ex.variable_values, None, ex.hide_suggestions)  # type: ignore[arg-type]

    def complete_object(self, plan: ObjectPlan, source: Any, path: Path | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        type_name = plan.type_name
        for f in plan.fields:
            kind = f.kind
            out = f.out
            key = f.key
            if kind == BASIC:
                value = getattr(source, f.python_name)
                if type(value) is out.exact:  # type: ignore[union-attr]
                    result[key] = value
                    continue
                field_path = Path(path, key, type_name) if out.needs_path else None  # type: ignore[union-attr]
            elif kind == TYPENAME:
                result[key] = type_name
                continue
            elif kind == DIRECT:
                field_path = Path(path, key, type_name) if out.needs_path else None  # type: ignore[union-attr]
                value = f.resolve(source, **self.direct_arguments(f)) if f.has_args else f.resolve(source)  # type: ignore[misc]
            else:
                field_path = Path(path, key, type_name)
                info = self.executor.build_resolve_info(f.field_def, f.field_nodes, plan.type, field_path)
                value = f.resolve(source, info, **self.arguments(f))  # type: ignore[misc]
            result[key] = self.complete(out, value, field_path, result, key)  # type: ignore[arg-type]
        return result

    def complete(self, out: Out, value: Any, path: Path | None, container: Any, key: Any) -> Any:
        """The completed value; an awaitable is queued (it is written to ``container[key]``
        once awaited and completed) and a placeholder None returned."""
        if value is None or value is Undefined:
            if out.non_null:
                raise FallbackError("null in a non-null position")
            return None
        kind = out.kind
        if kind == LEAF:
            pass_kind = out.pass_kind
            if pass_kind:
                t = type(value)
                if pass_kind == PASS_STR:
                    if t is str:
                        return value
                elif pass_kind == PASS_BOOL:
                    if t is bool:
                        return value
                elif pass_kind == PASS_INT:
                    if t is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT:
                        return value
                elif t is float and math.isfinite(value):
                    return value
        if self.is_awaitable(value):
            self.pending.append((value, out, path, container, key))
            return None
        if isinstance(value, Exception):
            raise FallbackError("a resolver returned an exception")
        if kind == LEAF:
            coerced = out.coerce(value)  # type: ignore[misc]
            if coerced is None or coerced is Undefined:
                raise FallbackError("leaf coerced to null")
            return coerced
        if kind == OBJECT:
            plan = out.plan
            if plan.is_type_of is not None and plan.is_type_of(value, None) is not True:  # type: ignore[union-attr]
                raise FallbackError(f"is_type_of refused a value for {plan.type_name}")  # type: ignore[union-attr]
            return self.complete_object(plan, value, path)  # type: ignore[arg-type]
        # LIST
        if type(value) is not list and type(value) is not tuple:
            raise FallbackError("list value is not a list")
        item = out.item
        items: list[Any] = []
        append = items.append
        if out.needs_path:
            for index, v in enumerate(value):
                append(self.complete(item, v, Path(path, index, None), items, index))  # type: ignore[arg-type]
        else:
            for index, v in enumerate(value):
                append(self.complete(item, v, None, items, index))  # type: ignore[arg-type]
        return items

    async def settle(self, *, cancel_siblings: bool = True) -> None:
        """Await every queued awaitable, completing what they give, level by level.

        ``cancel_siblings=False``: when one awaitable of a level raises, the others still run to
        their end before the error is raised (none is cancelled in the middle of a query on a
        session that stays in use)."""
        is_awaitable = self.is_awaitable
        while self.pending:
            batch, self.pending = self.pending, []
            if len(batch) == 1:
                values = [await batch[0][0]]
            elif cancel_siblings:
                values = await gather_with_cancel(*(p[0] for p in batch))
            else:
                values = await _gather_all(*(p[0] for p in batch))
            for (_, out, path, container, key), value in zip(batch, values, strict=True):
                if is_awaitable(value):  # graphql-core awaits once
                    raise FallbackError("awaitable resolved to an awaitable")
                container[key] = self.complete(out, value, path, container, key)

    async def abandon(self) -> None:
        """Leave nothing running: close unstarted coroutines, wait for other awaitables."""
        pending, self.pending = self.pending, []
        others = []
        for awaitable, *_ in pending:
            close = getattr(awaitable, "close", None)
            if close is not None and hasattr(awaitable, "cr_frame"):
                close()
            else:
                others.append(awaitable)
        if others:
            import asyncio

            await asyncio.gather(*others, return_exceptions=True)


async def _gather_all(*awaitables: Awaitable[Any]) -> list[Any]:
    """Every awaitable run to its end; then the first error, if any, is raised."""
    import asyncio

    values = await asyncio.gather(*awaitables, return_exceptions=True)
    for value in values:
        if isinstance(value, BaseException):
            raise value
    return values


async def run_plan(
    plan: CompiledPlan,
    executor_class: Any,
    schema: GraphQLSchema,
    *,
    root_value: Any,
    context_value: Any,
    variable_values: dict[str, Any] | None,
    operation_extensions: dict[str, Any] | None,
    is_awaitable: Callable[[Any], bool],
) -> dict[str, Any]:
    """The ``data`` of the operation; raises :class:`FallbackError` (or anything) when graphql-core
    must run it instead."""
    executor = executor_class.build(
        schema,
        plan.document,
        root_value,
        context_value,
        variable_values,
        plan.operation_name,
        is_awaitable=is_awaitable,
        operation_extensions=operation_extensions,
    )
    if isinstance(executor, list):
        raise FallbackError("variables do not coerce")
    run = _Run(executor, is_awaitable)
    try:
        data = run.complete_object(plan.root, root_value, None)
        await run.settle()
    except BaseException:
        await run.abandon()
        raise
    return data
