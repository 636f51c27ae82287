"""Administration: API keys, the audit trail, and personal-data rights (export, erasure).

Who may call each field is declared in :mod:`guanxi.graphql.access` (admins; export also
managers), never checked here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core import auth
from guanxi.core.domain.models import AuditEvent
from guanxi.core.services import privacy
from guanxi.graphql.enums import Role
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import decode_global_id, from_global_id, to_global_id
from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Customer, Node


@strawberry.type(description="One entry of the audit trail. Personal values are masked.")
class AuditEntry(Node):
    id: strawberry.ID
    occurred_at: dt.datetime
    action: str = strawberry.field(description="e.g. customer.update, customer.erase, apikey.create")
    object_type: str
    object_id: strawberry.ID | None = strawberry.field(description="global id of the object (Customer:…, User:…)")
    actor: str = strawberry.field(description="who did it: a user, an API key, a rule or a plugin")
    actor_id: strawberry.ID | None
    changes: JSON = strawberry.field(description="changed fields as [old, new] (or the new value); personal values masked")

    @classmethod
    def from_row(cls, r: AuditEvent) -> AuditEntry:
        changes = dict(r.changes)
        actor = str(changes.pop("actor", ""))
        object_type = r.object_type[:1].upper() + r.object_type[1:]
        return cls(
            id=strawberry.ID(to_global_id("AuditEvent", r.id)),
            occurred_at=r.occurred_at,
            action=r.action,
            object_type=r.object_type,
            object_id=strawberry.ID(to_global_id(object_type, r.object_id)) if r.object_id else None,
            actor=actor,
            actor_id=strawberry.ID(to_global_id("User", r.actor_id)) if r.actor_id else None,
            changes=cast(Any, changes),
        )


@strawberry.type(description="An API key (its secret is shown only once, by createApiKey).")
class ApiKey:
    key_id: str = strawberry.field(description="the public part of the key (gx_<keyId>_…), used to revoke it")
    name: str
    role: Role
    user_id: strawberry.ID | None
    created_at: dt.datetime
    created_by: str | None
    last_used_at: dt.datetime | None = strawberry.field(description="updated at most once a minute")
    revoked_at: dt.datetime | None

    @classmethod
    def from_info(cls, k: auth.ApiKeyInfo) -> ApiKey:
        return cls(
            key_id=k.key_id,
            name=k.name,
            role=Role(k.role),
            user_id=strawberry.ID(to_global_id("User", k.user_id)) if k.user_id else None,
            created_at=k.created_at,
            created_by=k.created_by,
            last_used_at=k.last_used_at,
            revoked_at=k.revoked_at,
        )


@strawberry.type
class ApiKeyPayload:
    key: str | None = strawberry.field(default=None, description="the whole key: shown this once, store it now")
    api_key: ApiKey | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EraseCustomerPayload:
    customer: Customer | None = None
    erased: JSON | None = strawberry.field(default=None, description="what was erased, by table (plugins as plugin.kind)")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EraseUserPayload:
    erased: JSON | None = strawberry.field(default=None, description="what was erased, by table")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: Role
    user_id: strawberry.ID | None = strawberry.field(default=None, description="the user the key acts for (required for sales, manager)")


@strawberry.type
class AdminQuery:
    @strawberry.field(description="The audit trail, newest first (admins).")
    async def audit_events(
        self,
        info: Info,
        object_id: strawberry.ID | None = None,
        action: str | None = None,
        before: dt.datetime | None = None,
        first: int | None = None,
    ) -> list[AuditEntry]:
        settings = info.context.rt.settings.graphql
        stmt = select(AuditEvent).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        stmt = stmt.limit(check_page_size(first, settings.default_page_size, settings.max_page_size))
        if object_id is not None:
            stmt = stmt.where(AuditEvent.object_id == _any_uuid(object_id))
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        if before is not None:
            stmt = stmt.where(AuditEvent.occurred_at < before)
        return [AuditEntry.from_row(r) for r in (await info.context.session.scalars(stmt)).all()]

    @strawberry.field(description="The tenant's API keys, revoked ones included (admins).")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        return [ApiKey.from_info(k) for k in await auth.list_api_keys(info.context.session)]

    @strawberry.field(description="Everything held on a staff member as a person (profile, notifications), as JSON (admins).")
    async def export_user_data(self, info: Info, id: strawberry.ID) -> JSON:
        data = await privacy.export_user_data(info.context.session, from_global_id(id, "User"))
        return cast(Any, data)

    @strawberry.field(description="Everything held on a person, core and plugins, as JSON (PIPL / GDPR access; admins, managers).")
    async def export_customer_data(self, info: Info, id: strawberry.ID) -> JSON:
        ctx = info.context
        data = await privacy.export_customer_data(ctx.rt, ctx.session, from_global_id(id, "Customer"))
        return cast(Any, data)


def _any_uuid(global_id: str) -> uuid.UUID:
    """The uuid of a global id of any type (audit entries point at customers, users, tasks…)."""
    return decode_global_id(global_id, field="objectId")[1]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Create an API key; the answer holds the key, shown only this once (admins).")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeyPayload:
        async def run() -> ApiKeyPayload:
            user = from_global_id(input.user_id, "User", field="userId") if input.user_id else None
            async with info.context.transaction() as tx:
                secret = auth.authenticator_of(info.context.rt).secret
                created = await auth.create_api_key(tx, secret, name=input.name, role=input.role.value, user_id=user)
            return ApiKeyPayload(key=created.key, api_key=ApiKey.from_info(created.info))

        return await as_payload(run, ApiKeyPayload)

    @strawberry.mutation(description="Revoke an API key by its key id; it stops working at once in this process (admins).")
    async def revoke_api_key(self, info: Info, key_id: str) -> ApiKeyPayload:
        async def run() -> ApiKeyPayload:
            async with info.context.transaction() as tx:
                revoked = await auth.revoke_api_key(tx, key_id)
            auth.authenticator_of(info.context.rt).forget(key_id)
            return ApiKeyPayload(api_key=ApiKey.from_info(revoked))

        return await as_payload(run, ApiKeyPayload)

    @strawberry.mutation(description="Erase a person's personal data across core and plugins, keeping aggregate counts (admins).")
    async def erase_customer(self, info: Info, id: strawberry.ID) -> EraseCustomerPayload:
        async def run() -> EraseCustomerPayload:
            async with info.context.transaction() as tx:
                counts = await privacy.erase_customer(tx, from_global_id(id, "Customer"))
                from guanxi.core.services.customers import get_customer

                row = await get_customer(tx.session, from_global_id(id, "Customer"))
                customer = Customer.from_row(row, info.context)
            return EraseCustomerPayload(customer=customer, erased=cast(Any, counts))

        return await as_payload(run, EraseCustomerPayload)

    @strawberry.mutation(
        description="Erase a staff member's personal data: notifications and preferences deleted, the user anonymised (admins)."
    )
    async def erase_user_data(self, info: Info, id: strawberry.ID) -> EraseUserPayload:
        async def run() -> EraseUserPayload:
            async with info.context.transaction() as tx:
                counts = await privacy.erase_user_data(tx, from_global_id(id, "User"))
            return EraseUserPayload(erased=cast(Any, counts))

        return await as_payload(run, EraseUserPayload)
