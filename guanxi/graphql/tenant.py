"""The caller's tenant: its plugins (which are enabled), for clients that adapt to them, their
management by the tenant's admins, and its channel accounts (a WeCom corp …), whose secrets are
write-only. Who may call each field is declared in :mod:`guanxi.graphql.access`."""

from __future__ import annotations

from typing import Any, cast

import msgspec
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.services import accounts, quotas, tenant_plugins
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import to_global_id


@strawberry.type(description="A channel account of the tenant (a WeCom corp, a Douyin app, a mailbox). Secrets are never shown.")
class ChannelAccount:
    id: strawberry.ID
    channel: str
    key: str = strawberry.field(description="names the account in its webhook URL, e.g. /wecom/callback/<key>")
    provider_id: str = strawberry.field(description="the provider's account id (a WeCom corp id); one tenant per provider account")
    settings: JSON = strawberry.field(description="the public settings")
    secret_fingerprints: JSON = strawberry.field(
        description="each secret field: null when unset, else a keyed fingerprint that changes when the secret changes"
    )
    broken: str | None = strawberry.field(description="why the account cannot be used (its secrets do not open), or null")

    @classmethod
    def from_account(cls, a: accounts.Account) -> ChannelAccount:
        settings = msgspec.to_builtins(a.settings)
        return cls(
            id=strawberry.ID(to_global_id("ChannelAccount", a.id)),
            channel=a.channel,
            key=a.key,
            provider_id=a.provider_id,
            settings=cast(Any, settings),
            secret_fingerprints=cast(Any, dict(a.fingerprints)),
            broken=a.broken,
        )


@strawberry.input(description="Create or update a channel account; secret fields not given are kept.")
class ChannelAccountInput:
    channel: str
    key: str
    settings: JSON | None = strawberry.field(default=None, description="the public settings (required to create); replaces them whole")
    secrets: JSON | None = strawberry.field(
        default=None, description="secret fields to set (a null or empty value clears one); write-only, never read back"
    )


@strawberry.type
class ChannelAccountPayload:
    account: ChannelAccount | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _object(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object", field=field)
    return value


@strawberry.type(description="A plugin the deployment loads, and whether the caller's tenant enables it.")
class TenantPluginState:
    name: str
    enabled: bool


@strawberry.type(description="A plugin's settings as the caller's tenant sees them: what it may override, and how it did.")
class PluginSettings:
    plugin: str
    overridable: list[str] = strawberry.field(description="the settings a tenant may override (empty: none)")
    overrides: JSON = strawberry.field(description="the tenant's overrides (only the keys it set)")
    effective: JSON = strawberry.field(description="the values in force for the tenant, of the overridable settings")


@strawberry.type
class PluginSettingsPayload:
    settings: PluginSettings | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="One of the tenant's limits and its use (limit 0: no limit).")
class QuotaUsage:
    name: str = strawberry.field(description="customers, requests_per_s or messages_per_day[<channel>]")
    limit: int
    used: int
    window: str = strawberry.field(description="what 'used' counts over: all time, the current second, or the tenant's day")


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

    @strawberry.field(description="A loaded plugin's settings for the caller's tenant: overridable keys, overrides, values (admins).")
    async def plugin_settings(self, info: Info, plugin: str) -> PluginSettings:
        keys, overrides, effective = await tenant_plugins.plugin_settings_view(info.context.session, info.context.rt, plugin)
        return PluginSettings(plugin=plugin, overridable=keys, overrides=cast(Any, overrides), effective=cast(Any, effective))

    @strawberry.field(description="The tenant's limits and how much of each it uses.")
    async def quota_usage(self, info: Info) -> list[QuotaUsage]:
        found = await quotas.usage(info.context.rt, info.context.session)
        return [QuotaUsage(name=u.name, limit=u.limit, used=u.used, window=u.window) for u in found]

    @strawberry.field(description="The tenant's channel accounts, of one channel or all (admins).")
    async def channel_accounts(self, info: Info, channel: str | None = None) -> list[ChannelAccount]:
        found = await accounts.tenant_accounts(info.context.rt, info.context.tenant_id, channel, session=info.context.session)
        return [ChannelAccount.from_account(a) for a in found]


@strawberry.type
class TenantMutation:
    @strawberry.mutation(description="Enable or disable a loaded plugin for the caller's tenant; its data is kept (admins).")
    async def set_plugin_enabled(self, info: Info, plugin: str, enabled: bool) -> TenantPluginPayload:
        async def run() -> TenantPluginPayload:
            async with info.context.transaction() as tx:
                await tenant_plugins.set_plugin_enabled(tx, plugin, enabled)
            return TenantPluginPayload(plugin=TenantPluginState(name=plugin, enabled=enabled))

        return await as_payload(run, TenantPluginPayload)

    @strawberry.mutation(
        description="Replace the tenant's overrides of a plugin's settings (null or {}: the deployment's settings again); "
        "refused with the key path of a bad value, the old overrides kept (admins)."
    )
    async def set_plugin_settings(self, info: Info, plugin: str, settings: JSON | None = None) -> PluginSettingsPayload:
        async def run() -> PluginSettingsPayload:
            values = _object(settings, "settings")
            async with info.context.transaction() as tx:
                await tenant_plugins.set_plugin_settings(tx, plugin, values)
            async with info.context.rt.session(info.context.tenant_id) as session:
                keys, overrides, effective = await tenant_plugins.plugin_settings_view(session, info.context.rt, plugin)
            view = PluginSettings(plugin=plugin, overridable=keys, overrides=cast(Any, overrides), effective=cast(Any, effective))
            return PluginSettingsPayload(settings=view)

        return await as_payload(run, PluginSettingsPayload)

    @strawberry.mutation(description="Connect a channel account, or change one; secrets are sealed at rest and never read back (admins).")
    async def save_channel_account(self, info: Info, input: ChannelAccountInput) -> ChannelAccountPayload:
        async def run() -> ChannelAccountPayload:
            settings = _object(input.settings, "settings")
            secrets = _object(input.secrets, "secrets")
            for name, value in (secrets or {}).items():
                if value is not None and not isinstance(value, str):
                    raise ValidationError(f"secret {name!r} must be a string", field=f"secrets.{name}")
            async with info.context.transaction() as tx:
                saved = await accounts.save_account(tx, input.channel, input.key, settings=settings, secrets=secrets)
            return ChannelAccountPayload(account=ChannelAccount.from_account(saved))

        return await as_payload(run, ChannelAccountPayload)

    @strawberry.mutation(description="Remove a channel account: its webhooks answer 404 from then on (admins).")
    async def delete_channel_account(self, info: Info, channel: str, key: str) -> ChannelAccountPayload:
        async def run() -> ChannelAccountPayload:
            async with info.context.transaction() as tx:
                await accounts.delete_account(tx, channel, key)
            return ChannelAccountPayload()

        return await as_payload(run, ChannelAccountPayload)
