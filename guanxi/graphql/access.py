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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
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
        fields=("Mutation.mergeCustomers",),
        description="Merge two customers",
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

    def __init__(self, schema: GraphQLSchema, permissions: Iterable[tuple[str, Permission]]) -> None:
        self.schema = schema
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
        self._cache: OrderedDict[tuple[str, str | None], frozenset[str] | None] = OrderedDict()

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

    def coordinates(self, query: str, operation_name: str | None) -> frozenset[str] | None:
        """Every ``Type.field`` the document selects; None if it does not parse (the normal
        execution reports that). Cached by query text."""
        key = (query, operation_name)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            document = parse(query)
        except Exception:
            found = None
        else:
            found = frozenset(_selected(self.schema, document))
        self._cache[key] = found
        while len(self._cache) > 1024:
            self._cache.popitem(last=False)
        return found

    def allows(self, roles: Iterable[str], coordinate: str) -> bool:
        """Whether the roles may use this coordinate (one no permission names is open to every role)."""
        allowed = self.rules.get(coordinate)
        return allowed is None or bool(allowed & frozenset(roles))

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


def _selected(schema: GraphQLSchema, document: DocumentNode) -> set[str]:
    type_info = TypeInfo(schema)
    found: set[str] = set()

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = type_info.get_parent_type()
            if parent is not None:
                found.add(f"{get_named_type(parent).name}.{node.name.value}")

    visit(document, TypeInfoVisitor(type_info, Collect()))
    return found
