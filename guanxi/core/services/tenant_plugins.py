"""A tenant's choices about the plugins the deployment loads: which it enables, and (see
:func:`set_plugin_settings`) the settings it overrides.

Rows live in ``tenant_plugins``, read through the tenant chokepoint like every tenant-owned row;
no row means the default (enabled, the deployment's settings), so a single-company deployment
needs none. Each process keeps what it read for ``plugins.tenant_cache_s`` seconds
(:meth:`guanxi.core.runtime.Runtime.tenant_plugins`); the process that changes a choice forgets
its copy at commit, the others read the new rows when their copy expires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import TenantPlugin, utcnow
from guanxi.core.runtime import Runtime, Tx, apply_overrides
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import TenantSession


def check_loaded(runtime: Runtime, plugin: str, *, field: str = "plugin") -> None:
    """Refuse a plugin name the deployment does not load, naming it and the ones it does."""
    loaded = runtime.settings.plugins.enabled
    if plugin not in loaded:
        known = ", ".join(loaded) or "none"
        raise ValidationError(f"plugin {plugin!r} is not installed on this deployment (installed: {known})", field=field)


async def _row(tx: Tx, plugin: str) -> TenantPlugin:
    row = await tx.session.get(TenantPlugin, (tx.tenant_id, plugin))
    if row is None:
        row = TenantPlugin(plugin=plugin, enabled=True, settings={})
        tx.session.add(row)
    return row


async def set_plugin_enabled(tx: Tx, plugin: str, enabled: bool) -> None:
    """Enable or disable a loaded plugin for the transaction's tenant, audited. Its data is
    kept either way (only the tenant's purge removes it)."""
    check_loaded(tx.runtime, plugin)
    row = await _row(tx, plugin)
    if row.enabled != enabled:
        audit(tx, "tenant.plugin_" + ("enable" if enabled else "disable"), "tenant", tx.tenant_id, {"plugin": plugin})
    row.enabled = enabled
    row.updated_at = utcnow()
    tenant_id, runtime = tx.tenant_id, tx.runtime
    tx.after_commit(lambda: runtime.forget_tenant(tenant_id))


async def plugin_choices(session: TenantSession, runtime: Runtime) -> list[tuple[str, bool]]:
    """Every loaded plugin with whether the session's tenant enables it, in load order."""
    rows = {r.plugin: r for r in (await session.execute(select(TenantPlugin))).scalars().all()}
    return [(name, rows[name].enabled if name in rows else True) for name in runtime.settings.plugins.enabled]


def _key_path(exc: msgspec.ValidationError) -> str:
    match = re.search(r"at `\$(\.[^`]*|\[[^`]*)?`", str(exc))
    return "settings" + (match.group(1) or "") if match else "settings"


async def set_plugin_settings(tx: Tx, plugin: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Replace the tenant's setting overrides of a plugin (None or {}: back to the deployment's
    settings), audited. Only the keys of the plugin's ``guanxi_tenant_settings`` struct may be
    given; the values are validated against it and the merged settings against the whole config
    struct. Refused with the key path at fault (``settings.engagement.half_life_days``); the old
    overrides are kept then. Returns the stored overrides."""
    runtime = tx.runtime
    check_loaded(runtime, plugin)
    struct = runtime.tenant_settings_types.get(plugin)
    if struct is None:
        raise ValidationError(f"plugin {plugin!r} has no settings a tenant may change", field="plugin")
    values = dict(overrides or {})
    allowed = struct.__struct_fields__
    for key in values:
        if key not in allowed:
            raise ValidationError(
                f"settings.{key} cannot be changed by a tenant (tenant settings of {plugin}: {', '.join(allowed)})", field=f"settings.{key}"
            )
    try:
        typed = msgspec.convert(values, struct)
        base = runtime.plugin_settings(plugin)
        merged = msgspec.structs.replace(base, **{k: getattr(typed, k) for k in values})
        msgspec.convert(msgspec.to_builtins(merged), type(base))  # the whole section's own checks (__post_init__)
    except msgspec.ValidationError as exc:
        path = _key_path(exc)
        raise ValidationError(f"invalid {path}: {str(exc).split(' - at ', maxsplit=1)[0]}", field=path) from None
    except ValueError as exc:  # the section's own check (__post_init__) of the merged settings
        raise ValidationError(f"invalid settings: {exc}", field="settings") from None
    stored = {k: v for k, v in msgspec.to_builtins(typed).items() if k in values}
    row = await _row(tx, plugin)
    changed = sorted(set(stored) ^ set(row.settings) | {k for k in stored if row.settings.get(k) != stored[k]})
    row.settings = stored
    row.updated_at = utcnow()
    audit(tx, "tenant.plugin_settings", "tenant", tx.tenant_id, {"plugin": plugin, "changed": changed})
    tenant_id = tx.tenant_id
    tx.after_commit(lambda: runtime.forget_tenant(tenant_id))
    return stored


async def plugin_settings_view(session: TenantSession, runtime: Runtime, plugin: str) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(the keys a tenant may override, its overrides, the effective values of those keys)."""
    check_loaded(runtime, plugin)
    struct = runtime.tenant_settings_types.get(plugin)
    if struct is None:
        return [], {}, {}
    row = await session.get(TenantPlugin, (session.tenant_id, plugin))
    overrides = dict(row.settings) if row is not None and row.settings else {}
    effective = apply_overrides(runtime.plugin_settings(plugin), struct, overrides)
    values = msgspec.to_builtins(effective)
    return list(struct.__struct_fields__), overrides, {k: values[k] for k in struct.__struct_fields__}
