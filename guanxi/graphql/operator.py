"""The platform operator's GraphQL endpoint (``/operator/graphql``): list, create, update,
suspend, resume and delete tenants, and give a new tenant its first API key.

A schema of its own, apart from the tenants' one: an operator key (``gxop_…``, see
:func:`guanxi.core.auth.create_operator_key`) is accepted here and nowhere else, and a tenant's
credentials are refused here (403). Nothing in it reads a tenant's customers or messages.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar, cast

import strawberry
from graphql import ExecutionResult
from litestar import Request
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.litestar import BaseContext, make_graphql_controller
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core import auth
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import tenants as lifecycle
from guanxi.graphql.enums import TenantStatus
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.extensions import shape_error

log = logging.getLogger("guanxi.operator")
PRINCIPAL_KEY = "guanxi.operator"


class OperatorContext(BaseContext, kw_only=True):
    runtime: Any
    principal: Any


@strawberry.type(description="A tenant (company) of the deployment.")
class Tenant:
    id: strawberry.ID
    slug: str
    name: str
    status: TenantStatus
    time_zone: str
    currency: str
    locale: str
    created_at: dt.datetime
    suspended_at: dt.datetime | None
    enabled_plugins: list[str]
    quotas: JSON = strawberry.field(description="the tenant's own limits (the others are the deployment's [quotas])")


async def _tenant(runtime: Runtime, info: lifecycle.TenantInfo) -> Tenant:
    disabled = await runtime.disabled_plugins(info.id)
    return Tenant(
        id=strawberry.ID(str(info.id)),
        slug=info.slug,
        name=info.name,
        status=TenantStatus(info.status),
        time_zone=info.time_zone,
        currency=info.currency,
        locale=info.locale,
        created_at=info.created_at,
        suspended_at=info.suspended_at,
        enabled_plugins=[p for p in runtime.enabled_plugins if p not in disabled],
        quotas=cast(Any, dict(info.quotas)),
    )


@strawberry.input
class CreateTenantInput:
    slug: str
    name: str
    time_zone: str = "Asia/Shanghai"
    currency: str = "CNY"
    locale: str = "zh-CN"
    plugins: list[str] | None = strawberry.field(default=None, description="the loaded plugins it enables (null: all of them)")


@strawberry.input
class UpdateTenantInput:
    name: str | None = None
    time_zone: str | None = None
    currency: str | None = None
    locale: str | None = None


@strawberry.type
class TenantPayload:
    tenant: Tenant | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteTenantPayload:
    export_path: str | None = strawberry.field(default=None, description="where the tenant's export was written (on the server)")
    deleted_rows: int | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TenantKeyPayload:
    key: str | None = strawberry.field(default=None, description="the whole key, shown this once: hand it to the tenant's admin")
    errors: list[UserError] = strawberry.field(default_factory=list)


def _rt(info: Info) -> Runtime:
    runtime: Runtime = info.context.runtime
    return runtime


@strawberry.type
class OperatorQuery:
    @strawberry.field(description="Every tenant of the deployment.")
    async def tenants(self, info: Info) -> list[Tenant]:
        return [await _tenant(_rt(info), t) for t in await lifecycle.list_tenants(_rt(info))]

    @strawberry.field(description="One tenant by slug, or null.")
    async def tenant(self, info: Info, slug: str) -> Tenant | None:
        found = [t for t in await lifecycle.list_tenants(_rt(info)) if t.slug == slug]
        return await _tenant(_rt(info), found[0]) if found else None


@strawberry.type
class OperatorMutation:
    @strawberry.mutation(description="Create a tenant with the default pipeline and the plugins it enables.")
    async def create_tenant(self, info: Info, input: CreateTenantInput) -> TenantPayload:
        async def run() -> TenantPayload:
            created = await lifecycle.create_tenant(
                _rt(info),
                input.slug,
                input.name,
                time_zone=input.time_zone,
                currency=input.currency,
                locale=input.locale,
                plugins_enabled=input.plugins,
            )
            log.info("%s created tenant %s", info.context.principal, created.slug)
            return TenantPayload(tenant=await _tenant(_rt(info), created))

        return await as_payload(run, TenantPayload)

    @strawberry.mutation(description="Change a tenant's name, time zone, currency or locale (the fields given).")
    async def update_tenant(self, info: Info, slug: str, input: UpdateTenantInput) -> TenantPayload:
        async def run() -> TenantPayload:
            updated = await lifecycle.update_profile(
                _rt(info), slug, name=input.name, time_zone=input.time_zone, currency=input.currency, locale=input.locale
            )
            return TenantPayload(tenant=await _tenant(_rt(info), updated))

        return await as_payload(run, TenantPayload)

    @strawberry.mutation(description="Suspend a tenant: its credentials get 403, its webhooks are stored but wait, its messages wait.")
    async def suspend_tenant(self, info: Info, slug: str) -> TenantPayload:
        async def run() -> TenantPayload:
            changed = await lifecycle.set_suspended(_rt(info), slug, True)
            log.info("%s suspended tenant %s", info.context.principal, slug)
            return TenantPayload(tenant=await _tenant(_rt(info), changed))

        return await as_payload(run, TenantPayload)

    @strawberry.mutation(description="Resume a suspended tenant: what waited is processed.")
    async def resume_tenant(self, info: Info, slug: str) -> TenantPayload:
        async def run() -> TenantPayload:
            changed = await lifecycle.set_suspended(_rt(info), slug, False)
            log.info("%s resumed tenant %s", info.context.principal, slug)
            return TenantPayload(tenant=await _tenant(_rt(info), changed))

        return await as_payload(run, TenantPayload)

    @strawberry.mutation(
        description="Export a tenant's data to the server's export folder, then remove every row of it. confirm must repeat the slug."
    )
    async def delete_tenant(self, info: Info, slug: str, confirm: str) -> DeleteTenantPayload:
        async def run() -> DeleteTenantPayload:
            if confirm != slug:
                from guanxi.core.base.errors import ValidationError

                raise ValidationError("confirm must repeat the tenant's slug", field="confirm")
            rt = _rt(info)
            path, counts = await lifecycle.delete_tenant(rt, slug, rt.settings.server.export_dir)
            auth.authenticator_of(rt).forget()  # its keys are gone (other processes: 403 until their cache expires)
            log.info("%s deleted tenant %s (export %s)", info.context.principal, slug, path)
            return DeleteTenantPayload(export_path=str(path), deleted_rows=sum(counts.values()))

        return await as_payload(run, DeleteTenantPayload)

    @strawberry.mutation(
        description="Set a tenant's own limits: customers, requests_per_s, messages_per_day ({channel: n, '*': n}); "
        "0 is no limit, null goes back to the deployment's."
    )
    async def set_tenant_quotas(self, info: Info, slug: str, quotas: JSON) -> TenantPayload:
        async def run() -> TenantPayload:
            if not isinstance(quotas, dict):
                from guanxi.core.base.errors import ValidationError

                raise ValidationError("quotas must be a JSON object", field="quotas")
            changed = await lifecycle.set_quotas(_rt(info), slug, quotas)
            log.info("%s set the quotas of tenant %s: %s", info.context.principal, slug, sorted(quotas))
            return TenantPayload(tenant=await _tenant(_rt(info), changed))

        return await as_payload(run, TenantPayload)

    @strawberry.mutation(description="Give a tenant an API key (its first admin key, to hand over); the key is shown once.")
    async def create_tenant_api_key(self, info: Info, slug: str, name: str, role: str = "admin") -> TenantKeyPayload:
        async def run() -> TenantKeyPayload:
            rt = _rt(info)
            tenant = await lifecycle.get_tenant(rt, slug)
            actor = Actor(kind="system", name=str(info.context.principal))
            async with rt.transaction(RequestContext(tenant_id=tenant.id, actor=actor)) as tx:
                created = await auth.create_api_key(tx, auth.authenticator_of(rt).secret, name=name, role=role)
            return TenantKeyPayload(key=created.key)

        return await as_payload(run, TenantKeyPayload)


class OperatorAuthMiddleware(ASGIMiddleware):
    """Only operator keys pass; a tenant's credentials are refused with 403."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        from guanxi.security import _header, _refuse

        try:
            principal = await auth.authenticate_operator(
                self.runtime, auth.authenticator_of(self.runtime).secret, _header(scope, b"authorization")
            )
        except auth.AuthenticationError as exc:
            status = 403 if exc.code == "FORBIDDEN" else 401
            await _refuse(send, status, exc.code, str(exc))
            return
        scope_any: Any = scope
        scope_any[PRINCIPAL_KEY] = principal
        await next_app(scope, receive, send)


def operator_controller(runtime: Runtime, path: str = "/operator/graphql") -> Any:
    schema = strawberry.Schema(query=OperatorQuery, mutation=OperatorMutation)

    async def context_getter(request: Request[Any, Any, Any]) -> OperatorContext:
        return OperatorContext(runtime=runtime, principal=request.scope.get(PRINCIPAL_KEY))

    base = make_graphql_controller(schema, path=path, graphql_ide=None, context_getter=context_getter)

    class OperatorController(base):  # type: ignore[valid-type,misc]
        dependencies: ClassVar[dict[str, Any]] = dict(base.dependencies)
        middleware: ClassVar[list[Any]] = [OperatorAuthMiddleware(runtime)]

        async def process_result(self, request: Request[Any, Any, Any], result: ExecutionResult) -> GraphQLHTTPResponse:
            if result.errors:
                result.errors = [shape_error(e) for e in result.errors]
            return process_result(result)

    return OperatorController
