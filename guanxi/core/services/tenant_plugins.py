"""A tenant's choices about the plugins the deployment loads: which it enables, and (see
:func:`set_plugin_settings`) the settings it overrides.

Rows live in ``tenant_plugins``, read through the tenant chokepoint like every tenant-owned row;
no row means the default (enabled, the deployment's settings), so a single-company deployment
needs none. Each process keeps what it read for ``plugins.tenant_cache_s`` seconds
(:meth:`guanxi.core.runtime.Runtime.tenant_plugins`); the process that changes a choice forgets
its copy at commit, the others read the new rows when their copy expires.
"""

from __future__ import annotations

from sqlalchemy import select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import TenantPlugin, utcnow
from guanxi.core.runtime import Runtime, Tx
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
