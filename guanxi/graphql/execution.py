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

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# python attribute, serialiser (None: the value is sent as it is), exact types sent as they are, non-null
Fast = tuple[str, Callable[[Any], Any] | None, tuple[type, ...], bool]
_PASS_THROUGH: dict[Any, tuple[type, ...]] = {
    GraphQLString: (str,),
    GraphQLID: (str,),
    GraphQLBoolean: (bool,),
    GraphQLInt: (int,),
    GraphQLFloat: (float, int),
}
_cache: dict[tuple[int, str, str], Fast | None] = {}


def _fast_plan(parent_type: GraphQLObjectType, field_name: str) -> Fast | None:
    field_def = parent_type.fields.get(field_name)
    if field_def is None or field_def.args:
        return None
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    strawberry_field = (field_def.extensions or {}).get("strawberry-definition")
    python_name = getattr(strawberry_field, "python_name", None)
    if python_name is None:
        return None
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    named = return_type.of_type if non_null else return_type
    if named in _PASS_THROUGH:
        return (python_name, None, _PASS_THROUGH[named], non_null)
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return (python_name, named.serialize, (), non_null)
    return None


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
            python_name, serialize, exact, non_null = plan
            value = getattr(source, python_name, None)
            if value is not None:
                if serialize is None:
                    if type(value) in exact:  # exact type: an int is not taken for a bool
                        return value
                else:
                    try:
                        serialized = serialize(value)
                    except Exception:  # let graphql-core report it properly
                        serialized = None
                    if serialized is not None:
                        return serialized
            elif not non_null:
                return None
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
