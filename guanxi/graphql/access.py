"""Who may use which GraphQL field: declared in one place, enforced in one place.

Core's permissions are :data:`CORE_PERMISSIONS`; plugins add theirs through
``guanxi_permissions``. :class:`AccessPolicy` maps every guarded schema coordinate
(``Mutation.eraseCustomer``, ``Customer.wecom``) to the roles that may use it. Before an operation
runs, :meth:`AccessPolicy.denied` looks at every field the document selects (all fragments
included) and the operation is refused as a whole, with code ``FORBIDDEN``, if any is not allowed:
no partial answer, so nothing leaks through a field next to a forbidden one.

Defaults for fields no permission names: query and subscription fields and fields of object
types are open to every role (record ownership still limits the rows, in the data layer);
mutations are admin-only. A caller without roles (the anonymous dev-mode caller) may only
introspect.

Plugins a tenant has not enabled are refused in the same place: schema assembly hands over the
map of every coordinate a plugin contributed (root fields, fields added to core types, filter
input fields such as ``CustomerFilter.scoreGte`` and enum values such as
``CustomerOrder.SCORE_DESC``), and an operation that selects or uses any coordinate of a plugin
the caller's tenant disabled, in the document or in its variables, is refused whole with code
``PLUGIN_DISABLED`` before execution (:meth:`AccessPolicy.plugin_used`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    EnumValueNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    ObjectFieldNode,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    type_from_ast,
    visit,
)

from guanxi.core.base.errors import PluginError
from guanxi.core.domain.access import ROLES, Permission

ALL = ROLES
WRITERS = ("admin", "manager", "sales", "service")

CORE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        name="customers.write",
        roles=WRITERS,
        fields=(
            "Mutation.createCustomer",
            "Mutation.updateCustomer",
            "Mutation.moveCustomerStage",
            "Mutation.attachIdentity",
            "Mutation.recordInteraction",
            "Mutation.createTask",
            "Mutation.completeTask",
            "Mutation.setConsent",
            "Mutation.refreshIdentityProfile",
            "Mutation.setCustomerFields",
        ),
        description="Create and change customers, their timeline, tasks and consent",
    ),
    Permission(
        name="customers.tag",
        roles=(*WRITERS, "marketing"),
        fields=("Mutation.tagCustomer",),
        description="Tag customers (segmentation)",
    ),
    Permission(
        name="messages.send",
        roles=(*WRITERS, "marketing"),
        fields=("Mutation.sendMessage",),
        description="Send a message to a customer through a channel",
    ),
    Permission(
        name="customers.merge",
        roles=("admin", "manager"),
        fields=("Mutation.mergeCustomers", "Mutation.undoMerge"),
        description="Merge two customers, and undo a merge",
    ),
    Permission(
        name="customers.export",
        roles=("admin", "manager"),
        fields=("Query.exportCustomerData",),
        description="Export everything held on a person (PIPL / GDPR access); not marketing",
    ),
    Permission(
        name="customers.erase",
        roles=("admin",),
        fields=("Mutation.eraseCustomer",),
        description="Erase a person's personal data (PIPL / GDPR erasure)",
    ),
    Permission(
        name="tasks.team",
        roles=("admin", "manager"),
        fields=("Query.teamTasks",),
        description="Read the tasks of one's team (managers) or of anyone (admins)",
    ),
    Permission(
        name="fields.manage",
        roles=("admin",),
        fields=("Mutation.defineCustomField", "Mutation.updateCustomField"),
        description="Define and change the custom fields of customers",
    ),
    Permission(
        name="pipelines.manage",
        roles=("admin",),
        fields=(
            "Mutation.createPipeline",
            "Mutation.updatePipeline",
            "Mutation.createStage",
            "Mutation.updateStage",
            "Mutation.reorderStages",
            "Mutation.archiveStage",
            "Mutation.deleteStage",
        ),
        description="Create pipelines and change their stages",
    ),
    Permission(
        name="users.manage",
        roles=("admin",),
        fields=("Mutation.createUser",),
        description="Create staff users",
    ),
    Permission(
        name="apikeys.manage",
        roles=("admin",),
        fields=("Query.apiKeys", "Mutation.createApiKey", "Mutation.revokeApiKey"),
        description="Create, list and revoke API keys",
    ),
    Permission(
        name="audit.read",
        roles=("admin",),
        fields=("Query.auditEvents",),
        description="Read the audit trail",
    ),
    Permission(
        name="queues.read",
        roles=("admin",),
        fields=("Query.inboxEvents", "Query.queues", "Query.scheduledJobs"),
        description="Inspect the inbox (raw provider events), the scheduler's jobs and queue depths",
    ),
    Permission(
        name="jobs.cancel",
        roles=("admin",),
        fields=("Mutation.cancelScheduledJob",),
        description="Cancel a scheduled job",
    ),
    Permission(
        name="notifications.own",
        roles=ALL,
        fields=(
            "Query.myNotifications",
            "Query.myNotificationPreferences",
            "Mutation.markNotificationsRead",
            "Mutation.updateMyNotificationPreferences",
        ),
        description="Read one's own notifications, mark them read, set one's notification preferences",
    ),
    Permission(
        name="users.privacy",
        roles=("admin",),
        fields=("Query.exportUserData", "Mutation.eraseUserData"),
        description="Export or erase a staff member's personal data (PIPL / GDPR)",
    ),
    Permission(
        name="tenant.plugins",
        roles=("admin",),
        fields=("Query.tenantPlugins", "Query.pluginSettings", "Mutation.setPluginEnabled", "Mutation.setPluginSettings"),
        description="See and choose the tenant's plugins",
    ),
    Permission(
        name="channel_accounts.manage",
        roles=("admin",),
        fields=("Query.channelAccounts", "Mutation.saveChannelAccount", "Mutation.deleteChannelAccount"),
        description="See and connect the tenant's channel accounts (secrets are write-only)",
    ),
    Permission(
        name="messages.read",
        roles=("admin", "manager", "sales", "service", "marketing"),
        fields=("Query.outboxMessages", "Query.message"),
        description="Read outbound messages and their delivery status",
    ),
)

#: introspection meta-fields: allowed to every caller, also the anonymous dev-mode one
META_FIELDS = frozenset({"__schema", "__type", "__typename"})


class AccessPolicy:
    """The roles allowed on each guarded coordinate, and the check of a document."""

    def __init__(
        self, schema: GraphQLSchema, permissions: Iterable[tuple[str, Permission]], plugin_of: Mapping[str, str] | None = None
    ) -> None:
        self.schema = schema
        #: coordinate -> the plugin that contributed it (fields, input fields, enum values)
        self.plugin_of: dict[str, str] = dict(plugin_of or {})
        for coordinate, owner in self.plugin_of.items():
            if not _in_schema(schema, coordinate):
                raise PluginError(f"plugin {owner!r}: its coordinate {coordinate!r} is not in the schema")
        self.rules: dict[str, frozenset[str]] = {}
        self.names: dict[str, str] = {}
        self.permissions: list[tuple[str, Permission]] = []
        for owner, permission in permissions:
            self._add(owner, permission)
        mutation = schema.mutation_type
        for field in mutation.fields if mutation else ():
            coordinate = f"{mutation.name}.{field}"  # type: ignore[union-attr]
            if coordinate not in self.rules:
                self.rules[coordinate] = frozenset({"admin"})
                self.names[coordinate] = "(undeclared mutation: admins only)"
        self._cache: OrderedDict[tuple[str, str | None], _Document | None] = OrderedDict()

    def _add(self, owner: str, permission: Permission) -> None:
        bad_roles = [r for r in permission.roles if r not in ROLES]
        if bad_roles:
            raise PluginError(f"plugin {owner!r}: permission {permission.name!r} names unknown roles {bad_roles}; roles are {ROLES}")
        for coordinate in permission.fields:
            type_name, _, field = coordinate.partition(".")
            gql_type = self.schema.get_type(type_name)
            if gql_type is None or field not in getattr(gql_type, "fields", {}):
                raise PluginError(f"plugin {owner!r}: permission {permission.name!r} guards {coordinate!r}, which is not in the schema")
            if coordinate in self.rules:
                raise PluginError(
                    f"plugin {owner!r}: {coordinate!r} is already guarded by permission {self.names[coordinate]!r}; one permission a field"
                )
            self.rules[coordinate] = frozenset(permission.roles)
            self.names[coordinate] = permission.name
        self.permissions.append((owner, permission))

    def _document(self, query: str, operation_name: str | None) -> _Document | None:
        key = (query, operation_name)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            document = parse(query)
        except Exception:
            found = None
        else:
            found = _analyse(self.schema, document)
        self._cache[key] = found
        while len(self._cache) > 1024:
            self._cache.popitem(last=False)
        return found

    def allows(self, roles: Iterable[str], coordinate: str) -> bool:
        """Whether the roles may use this coordinate (one no permission names is open to every role)."""
        allowed = self.rules.get(coordinate)
        return allowed is None or bool(allowed & frozenset(roles))

    def coordinates(self, query: str, operation_name: str | None) -> frozenset[str] | None:
        """Every ``Type.field`` the document selects; None if it does not parse (the normal
        execution reports that). Cached by query text."""
        found = self._document(query, operation_name)
        return found.fields if found is not None else None

    def plugin_used(self, disabled: frozenset[str], query: str | None, operation_name: str | None, variables: Any) -> str | None:
        """The first coordinate of a ``disabled`` plugin that the operation selects or uses (a
        field, an input field or an enum value, in the document or in the variables), with its
        plugin; None when there is none."""
        if not disabled or not isinstance(query, str):
            return None
        found = self._document(query, operation_name)
        if found is None:
            return None
        used = set(found.fields | found.inputs)
        if found.variables and isinstance(variables, dict):
            for name, gql_type in found.variables:
                if name in variables:
                    _input_coordinates(gql_type, variables[name], used)
        for coordinate in sorted(used):
            owner = self.plugin_of.get(coordinate)
            if owner is not None and owner in disabled:
                return f"{coordinate} (plugin {owner})"
        return None

    def denied(self, roles: Iterable[str], query: str | None, operation_name: str | None) -> str | None:
        """The first selected coordinate the roles may not use (with its permission), or None."""
        if not isinstance(query, str):
            return None
        coordinates = self.coordinates(query, operation_name)
        if coordinates is None:
            return None
        held = frozenset(roles)
        roots = {t.name for t in (self.schema.query_type, self.schema.mutation_type, self.schema.subscription_type) if t is not None}
        # root fields first, so that a refusal names what the caller asked for (Query.customers)
        for coordinate in sorted(coordinates, key=lambda c: (c.partition(".")[0] not in roots, c)):
            type_name, _, field = coordinate.partition(".")
            if field in META_FIELDS or type_name.startswith("__"):
                continue  # introspection
            if not held:
                return f"{coordinate} (credentials required)"
            allowed = self.rules.get(coordinate)
            if allowed is not None and not (allowed & held):
                return f"{coordinate} (permission {self.names[coordinate]})"
        return None


class _Document:
    """What the checks need of one parsed document: the selected fields, the input fields and
    enum values written in it, and its variables with their types."""

    __slots__ = ("fields", "inputs", "variables")

    def __init__(self, fields: frozenset[str], inputs: frozenset[str], variables: tuple[tuple[str, GraphQLInputType], ...]) -> None:
        self.fields = fields
        self.inputs = inputs
        self.variables = variables


def _in_schema(schema: GraphQLSchema, coordinate: str) -> bool:
    type_name, _, member = coordinate.partition(".")
    gql_type = schema.get_type(type_name)
    if isinstance(gql_type, GraphQLEnumType):
        return member in gql_type.values
    return member in getattr(gql_type, "fields", {})


def _analyse(schema: GraphQLSchema, document: DocumentNode) -> _Document:
    type_info = TypeInfo(schema)
    fields: set[str] = set()
    inputs: set[str] = set()

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = type_info.get_parent_type()
            if parent is not None:
                fields.add(f"{get_named_type(parent).name}.{node.name.value}")

        def enter_object_field(self, node: ObjectFieldNode, *_: object) -> None:
            parent = type_info.get_parent_input_type()
            if parent is not None:
                inputs.add(f"{get_named_type(parent).name}.{node.name.value}")

        def enter_enum_value(self, node: EnumValueNode, *_: object) -> None:
            enum_type = type_info.get_input_type()
            if enum_type is not None:
                inputs.add(f"{get_named_type(enum_type).name}.{node.value}")

    visit(document, TypeInfoVisitor(type_info, Collect()))
    variables: list[tuple[str, GraphQLInputType]] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for var in definition.variable_definitions or ():
                gql_type = type_from_ast(schema, var.type)
                if gql_type is not None:
                    variables.append((var.variable.name.value, gql_type))  # type: ignore[arg-type]
    return _Document(frozenset(fields), frozenset(inputs), tuple(variables))


def _input_coordinates(gql_type: Any, value: Any, out: set[str]) -> None:
    """Add the input fields and enum values a variable's value uses (``CustomerFilter.scoreGte``,
    ``CustomerOrder.SCORE_DESC``) to ``out``."""
    if isinstance(gql_type, GraphQLNonNull):
        gql_type = gql_type.of_type
    if isinstance(gql_type, GraphQLList):
        for item in value if isinstance(value, list) else [value]:
            _input_coordinates(gql_type.of_type, item, out)
    elif isinstance(gql_type, GraphQLInputObjectType) and isinstance(value, dict):
        for name, item in value.items():
            field = gql_type.fields.get(name)
            if field is not None:
                out.add(f"{gql_type.name}.{name}")
                _input_coordinates(field.type, item, out)
    elif isinstance(gql_type, GraphQLEnumType) and isinstance(value, str):
        out.add(f"{gql_type.name}.{value}")
