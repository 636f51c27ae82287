"""The caller's tenant: its plugins (which are enabled), for clients that adapt to them, and
their management by the tenant's admins. Who may call each field is declared in
:mod:`guanxi.graphql.access`."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from guanxi.core.services import tenant_plugins
from guanxi.graphql.errors import UserError, as_payload


@strawberry.type(description="A plugin the deployment loads, and whether the caller's tenant enables it.")
class TenantPluginState:
    name: str
    enabled: bool


@strawberry.type
class TenantPluginPayload:
    plugin: TenantPluginState | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TenantQuery:
    @strawberry.field(
        description="The plugins enabled for the caller's tenant, in load order: fields of other plugins are refused with PLUGIN_DISABLED."
    )
    async def enabled_plugins(self, info: Info) -> list[str]:
        rt = info.context.rt
        disabled = await rt.disabled_plugins(info.context.tenant_id)
        return [name for name in rt.enabled_plugins if name not in disabled]

    @strawberry.field(description="Every plugin the deployment loads, with whether the caller's tenant enables it (admins).")
    async def tenant_plugins(self, info: Info) -> list[TenantPluginState]:
        choices = await tenant_plugins.plugin_choices(info.context.session, info.context.rt)
        return [TenantPluginState(name=name, enabled=enabled) for name, enabled in choices]


@strawberry.type
class TenantMutation:
    @strawberry.mutation(description="Enable or disable a loaded plugin for the caller's tenant; its data is kept (admins).")
    async def set_plugin_enabled(self, info: Info, plugin: str, enabled: bool) -> TenantPluginPayload:
        async def run() -> TenantPluginPayload:
            async with info.context.transaction() as tx:
                await tenant_plugins.set_plugin_enabled(tx, plugin, enabled)
            return TenantPluginPayload(plugin=TenantPluginState(name=plugin, enabled=enabled))

        return await as_payload(run, TenantPluginPayload)
