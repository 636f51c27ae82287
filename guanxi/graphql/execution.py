"""A faster executor for plain leaf fields.

Most fields of a page are plain attributes holding scalars (``displayName``, ``kind``,
``occurredAt`` …). graphql-core resolves each through the full machinery: a resolve-info
object, Strawberry's resolver wrapper, awaitable checks and value completion, about ten
microseconds a field. For a field that is a plain attribute (Strawberry's "basic" field: no
resolver, no arguments, no permission or extension) whose type is a scalar or an enum, this
execution context reads the attribute and serialises it directly.

Anything else, and any value that is not plainly valid (None for a non-null field, a value the
scalar refuses), goes through graphql-core unchanged, so errors, paths and null propagation
are exactly graphql-core's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import Path
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# python attribute, coercer (None: the value is sent as it is), exact types sent as they are, non-null,
# whether the value is an Int (range-checked) or a Float (finite) sent as it is
Fast = tuple[str, Callable[[Any], Any] | None, tuple[type, ...], bool, int]
_INT, _FLOAT = 1, 2
# Exact Python types graphql-core's coercion returns unchanged. Float takes only float (an int
# is coerced to a float), Int only 32-bit ints, Float only finite floats (checked below).
_PASS_THROUGH: dict[Any, tuple[tuple[type, ...], int]] = {
    GraphQLString: ((str,), 0),
    GraphQLID: ((str,), 0),
    GraphQLBoolean: ((bool,), 0),
    GraphQLInt: ((int,), _INT),
    GraphQLFloat: ((float,), _FLOAT),
}
_cache: dict[tuple[int, str, str], Fast | None] = {}
_MISSING: Any = object()


def _fast_plan(parent_type: GraphQLObjectType, field_name: str) -> Fast | None:
    field_def = parent_type.fields.get(field_name)
    if field_def is None or field_def.args:
        return None
    python_name = basic_attribute(field_def)
    if python_name is None:
        return None
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    named = return_type.of_type if non_null else return_type
    if named in _PASS_THROUGH:
        exact, check = _PASS_THROUGH[named]
        return (python_name, named.coerce_output_value, exact, non_null, check)
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return (python_name, named.coerce_output_value, (), non_null, 0)
    return None


def basic_attribute(field_def: GraphQLField) -> str | None:
    """The attribute a Strawberry "basic" field reads with ``getattr`` (no resolver, no field
    extension or permission, no exception handler, the default resolver), or None."""
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False) or getattr(resolve, "__name__", "") != "_get_basic_result":
        return None
    field = (field_def.extensions or {}).get("strawberry-definition")
    if field is None or not getattr(field, "is_basic_field", False) or getattr(field, "default_resolver", None) is not getattr:
        return None
    python_name = getattr(field, "python_name", None)
    return python_name if isinstance(python_name, str) else None


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the leaf-field fast path."""

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Path, position_context: Any) -> Any:
        field_name = field_details_list[0].node.name.value
        key = (id(self.schema), parent_type.name, field_name)
        try:
            plan = _cache[key]
        except KeyError:
            plan = _cache[key] = _fast_plan(parent_type, field_name)
        if plan is not None:
            python_name, coerce, exact, non_null, check = plan
            value = getattr(source, python_name, _MISSING)
            if value is _MISSING:  # graphql-core reports the AttributeError
                pass
            elif value is not None:
                if type(value) in exact:  # exact type: an int is not taken for a bool
                    if not check or (-2_147_483_648 <= value <= 2_147_483_647 if check == _INT else math.isfinite(value)):
                        return value
                elif not exact and not isinstance(value, Exception) and not optimized_is_awaitable(value):
                    try:
                        coerced = coerce(value)  # type: ignore[misc]
                    except Exception:  # let graphql-core report it properly
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        return coerced
            elif not non_null:
                return None
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
