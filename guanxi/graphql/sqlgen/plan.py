"""The selection of an operation as a tree the SQL builder walks (:class:`Sel`).

Only what the builder knows is accepted: a query whose root fields are all ``customers``
(any aliases) or ``__typename``, fields of the types in :data:`FIELDS`, fragments (named or
inline) on the very type being selected, no directives. Anything else raises
:class:`NotCompilableError` and the operation keeps the present path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)


class NotCompilableError(Exception):
    """The operation uses something the SQL layer does not compile."""


#: the fields the SQL builder knows, per GraphQL type (plugin fields and the rest fall back)
FIELDS: dict[str, frozenset[str]] = {
    "CustomerConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "CustomerEdge": frozenset({"cursor", "node"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Customer": frozenset(
        {
            "id",
            "displayName",
            "company",
            "phones",
            "emails",
            "attributes",
            "source",
            "lastInteractionAt",
            "createdAt",
            "updatedAt",
            "stage",
            "owner",
            "tags",
            "identities",
            "interactions",
            "tasks",
            "consents",
        }
    ),
    "Stage": frozenset({"id", "key", "name", "position", "category", "archived"}),
    "User": frozenset({"id", "email", "name", "role", "team", "active"}),
    "Tag": frozenset({"id", "name", "group", "label", "color"}),
    "Identity": frozenset(
        {"id", "channel", "externalId", "unionId", "nickname", "avatarUrl", "followerCount", "profile", "createdAt", "unreachableAt"}
    ),
    "InteractionConnection": frozenset({"edges", "pageInfo", "totalCount"}),
    "InteractionEdge": frozenset({"cursor", "node"}),
    "Interaction": frozenset({"id", "channel", "kind", "direction", "occurredAt", "text", "payload"}),
    "Task": frozenset({"id", "title", "notes", "dueAt", "doneAt", "createdAt", "done", "overdue", "assignee"}),
    "Consent": frozenset({"channel", "status", "source", "changedAt"}),
}

#: the most keys one JSON object may have (both databases limit a function's arguments to 100)
MAX_KEYS = 48


@dataclass
class Sel:
    """One response key: the field it selects, its node (arguments), what is selected under it."""

    key: str
    name: str
    node: FieldNode
    field_def: GraphQLField | None
    type_name: str | None  # the named object type below (None for leaves and __typename)
    children: list[Sel] = field(default_factory=list)
    #: a plugin's field on ``Customer``: resolved by its own (batched) resolver and merged into
    #: the database's JSON (see :mod:`guanxi.graphql.sqlgen.merge`); ``nodes`` are its field nodes
    #: (one per fragment that selects it), ``slot`` its number in the plan
    merged: bool = False
    nodes: list[FieldNode] = field(default_factory=list)
    slot: int = -1

    def child(self, name: str) -> list[Sel]:
        return [c for c in self.children if c.name == name]


@dataclass
class SqlPlan:
    """An operation compiled for SQL: its root fields (all ``customers`` or ``__typename``)."""

    operation: OperationDefinitionNode
    roots: list[Sel]
    #: built statements by shape (see :func:`guanxi.graphql.sqlgen.build.customers_statement`)
    statements: dict[Any, Any] = field(default_factory=dict)
    #: the plugin fields merged per customer, by slot (:attr:`Sel.slot`)
    merged: list[Sel] = field(default_factory=list)
    #: how each merged field is resolved (set by :class:`guanxi.graphql.sqlgen.SqlLayer`)
    resolvers: list[Any] = field(default_factory=list)
    document: DocumentNode | None = None


def _named(t: Any) -> Any:
    while isinstance(t, GraphQLNonNull | GraphQLList):
        t = t.of_type
    return t


def _collect(
    schema: GraphQLSchema,
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    out: dict[str, Sel],
    merged: frozenset[str],
    depth: int = 0,
) -> None:
    if depth > 32:
        raise NotCompilableError("selection too deep")
    for selection in selection_set.selections:
        if selection.directives:
            raise NotCompilableError("directive")
        if isinstance(selection, FieldNode):
            name = selection.name.value
            key = selection.alias.value if selection.alias else name
            if name == "__typename":
                out.setdefault(key, Sel(key, name, selection, None, None))
                continue
            if parent.name == "Customer" and name in merged:
                found = out.get(key)
                if found is None:
                    found = out[key] = Sel(key, name, selection, parent.fields[name], None, merged=True)
                elif not found.merged or found.name != name:
                    raise NotCompilableError("conflicting fields")  # validation refuses it anyway
                found.nodes.append(selection)
                continue
            if name not in FIELDS.get(parent.name, frozenset()):
                raise NotCompilableError(f"{parent.name}.{name}")
            field_def = parent.fields[name]
            named = _named(field_def.type)
            sel = out.get(key)
            if sel is None:
                type_name = named.name if isinstance(named, GraphQLObjectType) else None
                sel = out[key] = Sel(key, name, selection, field_def, type_name)
            elif sel.name != name:
                raise NotCompilableError("conflicting fields")  # validation refuses it anyway
            if selection.selection_set is not None:
                if not isinstance(named, GraphQLObjectType):
                    raise NotCompilableError(f"abstract type {named}")
                below = {c.key: c for c in sel.children}
                _collect(schema, named, selection.selection_set, fragments, below, merged, depth + 1)
                sel.children = list(below.values())
        elif isinstance(selection, InlineFragmentNode):
            if selection.type_condition is not None and selection.type_condition.name.value != parent.name:
                raise NotCompilableError("fragment on another type")
            _collect(schema, parent, selection.selection_set, fragments, out, merged, depth)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.type_condition.name.value != parent.name:
                raise NotCompilableError("fragment on another type")
            _collect(schema, parent, fragment.selection_set, fragments, out, merged, depth)
        else:  # pragma: no cover - the AST has no other selection
            raise NotCompilableError(type(selection).__name__)


def _check_sizes(sel: Sel) -> None:
    if len(sel.children) > MAX_KEYS:
        raise NotCompilableError("too many fields in one object")
    for child in sel.children:
        _check_sizes(child)


def compile_selection(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, merged: frozenset[str] = frozenset()
) -> SqlPlan:
    """The plan of one operation of a (valid) document; :class:`NotCompilableError` if any part
    of it is not compiled. ``merged``: the plugins' fields on ``Customer`` that are resolved by
    their resolvers and merged into the JSON (anywhere else, or any other field, is not compiled)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if len(operations) != 1:
        raise NotCompilableError("operation")
    operation = operations[0]
    if operation.operation != OperationType.QUERY or operation.directives:
        raise NotCompilableError("not a query")
    for definition in operation.variable_definitions or ():
        if definition.directives:
            raise NotCompilableError("directive")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    query_type = schema.query_type
    if query_type is None:  # pragma: no cover
        raise NotCompilableError("no query type")
    roots: dict[str, Sel] = {}
    for selection in operation.selection_set.selections:
        if selection.directives:
            raise NotCompilableError("directive")
        if not isinstance(selection, FieldNode):
            raise NotCompilableError("fragment at the root")
        name = selection.name.value
        key = selection.alias.value if selection.alias else name
        if name not in ("customers", "__typename"):
            raise NotCompilableError(f"Query.{name}")
        if name == "__typename":
            roots.setdefault(key, Sel(key, name, selection, None, None))
            continue
        field_def = query_type.fields[name]
        named = _named(field_def.type)
        sel = roots.get(key) or roots.setdefault(key, Sel(key, name, selection, field_def, named.name))
        if sel.name != name or selection.selection_set is None:
            raise NotCompilableError("conflicting fields")
        below = {c.key: c for c in sel.children}
        _collect(schema, named, selection.selection_set, fragments, below, merged)
        sel.children = list(below.values())
    plan = SqlPlan(operation, list(roots.values()), document=document)
    for root in plan.roots:
        _check_sizes(root)
        _number_merged(root, plan.merged)
    return plan


def _number_merged(sel: Sel, out: list[Sel]) -> None:
    for child in sel.children:
        if child.merged:
            child.slot = len(out)
            out.append(child)
        else:
            _number_merged(child, out)
