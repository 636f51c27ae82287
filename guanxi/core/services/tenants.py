"""The tenant lifecycle, for the platform operator: list, create, suspend, resume, export and
delete tenants.

Deleting a tenant exports everything it holds first (core's tables and each plugin's, through
``guanxi_export_tenant``; disabled plugins included), then removes every row of the tenant
(plugins' through ``guanxi_purge_tenant``, then core's, then the tenant itself).
:func:`dump_models` and :func:`purge_models` are the helpers plugins use for their tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import delete, func, select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.models import Base, CustomerCount, Tenant, TenantPlugin, TenantScoped, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime
from guanxi.core.services.accounts import forget_accounts
from guanxi.core.services.pipelines import create_tenant as create_tenant_row
from guanxi.core.services.tenant_plugins import check_loaded
from guanxi.core.storage.tenancy import TenantSession, unscoped

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class TenantInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    status: str
    time_zone: str
    currency: str
    locale: str
    created_at: dt.datetime
    suspended_at: dt.datetime | None
    quotas: dict[str, Any] = msgspec.field(default_factory=dict)


def _info(row: Tenant) -> TenantInfo:
    return TenantInfo(
        id=row.id,
        slug=row.slug,
        name=row.name,
        status=row.status,
        time_zone=row.time_zone,
        currency=row.currency,
        locale=row.locale,
        created_at=row.created_at,
        suspended_at=row.suspended_at,
        quotas=dict(row.quotas or {}),
    )


async def list_tenants(runtime: Runtime) -> list[TenantInfo]:
    async with runtime.session(None) as session, unscoped(session):
        return [_info(r) for r in (await session.scalars(select(Tenant).order_by(Tenant.slug))).all()]


async def get_tenant(runtime: Runtime, slug: str) -> TenantInfo:
    async with runtime.session(None) as session, unscoped(session):
        row = (await session.scalars(select(Tenant).where(Tenant.slug == slug))).one_or_none()
    if row is None:
        raise NotFoundError(f"tenant {slug!r} does not exist", field="slug")
    return _info(row)


def check_profile(time_zone: str, currency: str, locale: str) -> None:
    """Refuse a time zone, currency or locale the system could not use, naming the field."""
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown IANA time zone {time_zone!r} (e.g. Asia/Shanghai)", field="timeZone") from None
    if not CURRENCY.match(currency):
        raise ValidationError(f"currency must be an ISO 4217 code of three capital letters (e.g. CNY), not {currency!r}", field="currency")
    if not LOCALE.match(locale) or len(locale) > 35:
        raise ValidationError(f"locale must be a BCP 47 language tag (e.g. zh-CN), not {locale!r}", field="locale")


async def create_tenant(
    runtime: Runtime,
    slug: str,
    name: str,
    *,
    time_zone: str = "Asia/Shanghai",
    currency: str = "CNY",
    locale: str = "zh-CN",
    plugins_enabled: Sequence[str] | None = None,
) -> TenantInfo:
    """Create a tenant with the default pipeline; ``plugins_enabled`` (None: every loaded
    plugin) lists the loaded plugins it enables, the others are disabled for it."""
    if not SLUG.match(slug):
        raise ValidationError("slug must be 2 to 63 characters of a-z, 0-9 and -, starting with a letter or digit", field="slug")
    if not name.strip() or len(name) > 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    check_profile(time_zone, currency, locale)
    for plugin in plugins_enabled or ():
        check_loaded(runtime, plugin, field="plugins")
    async with runtime.session(None) as session, unscoped(session):
        if (await session.scalars(select(Tenant.id).where(Tenant.slug == slug))).first() is not None:
            raise ConflictError(f"tenant {slug!r} exists already", field="slug")
    async with runtime.write_session(None) as session:
        tenant_id = await create_tenant_row(session, slug, name)
        with unscoped(session):
            row = await session.get(Tenant, tenant_id)
            assert row is not None
            row.time_zone, row.currency, row.locale = time_zone, currency, locale
            if plugins_enabled is not None:
                for plugin in runtime.settings.plugins.enabled:
                    if plugin not in plugins_enabled:
                        session.add(TenantPlugin(tenant_id=tenant_id, plugin=plugin, enabled=False, settings={}))
            await session.flush()
            return _info(row)


async def update_profile(
    runtime: Runtime, slug: str, *, name: str | None, time_zone: str | None, currency: str | None, locale: str | None
) -> TenantInfo:
    """Change a tenant's name, time zone, currency or locale (the fields given)."""
    current = await get_tenant(runtime, slug)
    check_profile(time_zone or current.time_zone, currency or current.currency, locale or current.locale)
    if name is not None and (not name.strip() or len(name) > 200):
        raise ValidationError("name must be 1 to 200 characters", field="name")
    async with runtime.write_session(None) as session, unscoped(session):
        row = await session.get(Tenant, current.id)
        assert row is not None
        row.name = name if name is not None else row.name
        row.time_zone, row.currency, row.locale = time_zone or row.time_zone, currency or row.currency, locale or row.locale
        await session.flush()
        return _info(row)


async def set_suspended(runtime: Runtime, slug: str, suspended: bool) -> TenantInfo:
    """Suspend a tenant (its credentials get 403, its webhooks are stored but not processed,
    its messages wait) or resume it (everything waiting is processed)."""
    current = await get_tenant(runtime, slug)
    async with runtime.write_session(None) as session, unscoped(session):
        row = await session.get(Tenant, current.id)
        assert row is not None
        if suspended and row.status != "suspended":
            row.status, row.suspended_at = "suspended", utcnow()
        elif not suspended:
            row.status, row.suspended_at = "active", None
        await session.flush()
        info = _info(row)
    runtime.forget_tenant(current.id)
    return info


async def set_quotas(runtime: Runtime, slug: str, values: dict[str, Any]) -> TenantInfo:
    """Set the tenant's own limits (the keys given; a null value: back to the deployment's)."""
    from guanxi.core.services.quotas import check_overrides

    current = await get_tenant(runtime, slug)
    checked = check_overrides(values)
    async with runtime.write_session(None) as session, unscoped(session):
        row = await session.get(Tenant, current.id)
        assert row is not None
        merged = {k: v for k, v in dict(row.quotas or {}).items() if k not in values} | checked
        row.quotas = merged
        await session.flush()
        info = _info(row)
    runtime.forget_tenant(current.id)
    return info


# -- export and purge -------------------------------------------------------------------------------


def _ordered(models: Iterable[Any]) -> list[Any]:
    """Models in the order of the tables' foreign-key dependencies (referenced tables first)."""
    by_table = {m.__table__.name: m for m in models}
    return [by_table[t.name] for t in Base.metadata.sorted_tables if t.name in by_table]


def core_models() -> list[Any]:
    """Core's tenant-owned tables, referenced ones first (not ``customer_counts``: derived from
    ``customers`` by triggers, neither exported nor reported; :func:`purge_tenant` removes it)."""
    found = [
        m.class_
        for m in Base.registry.mappers
        if issubclass(m.class_, TenantScoped) and m.class_.__module__ == "guanxi.core.domain.models" and m.class_ is not CustomerCount
    ]
    return _ordered(found)


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value, builtin_types=()) if not isinstance(value, str | int | float | bool | type(None)) else value


async def dump_models(session: TenantSession, models: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """Every row of these tables of the session's tenant, by table name, as JSON values."""
    out: dict[str, list[dict[str, Any]]] = {}
    for model in _ordered(models):
        table = model.__table__
        rows = (await session.execute(select(model))).scalars().all()
        out[table.name] = [{c.key: _plain(getattr(r, c.key)) for c in model.__mapper__.column_attrs} for r in rows]
    return out


async def purge_models(session: TenantSession, models: Iterable[Any]) -> dict[str, int]:
    """Delete every row of these tables of the session's tenant, referencing tables first;
    returns the rows deleted by table."""
    counts: dict[str, int] = {}
    for model in reversed(_ordered(models)):
        result: Any = await session.execute(delete(model))
        counts[model.__table__.name] = int(result.rowcount or 0)
    return counts


async def export_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Everything the tenant holds: its row, core's tables and each loaded plugin's export
    (``guanxi_export_tenant``, called for disabled plugins too)."""
    async with runtime.session(None) as session, unscoped(session):
        row = await session.get(Tenant, tenant_id)
    if row is None:
        raise NotFoundError("tenant not found")
    async with runtime.session(tenant_id) as session:
        core = await dump_models(session, core_models())
        sections = await plugins.collect(runtime.pm.hook.guanxi_export_tenant, runtime=runtime, session=session)
    return {
        "exportedAt": utcnow().isoformat(),
        "tenant": msgspec.to_builtins(_info(row)),
        "core": core,
        "plugins": dict(sections),
    }


async def purge_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, int]:
    """Remove every row of the tenant, in one transaction: the plugins' (``guanxi_purge_tenant``,
    disabled plugins included), core's, and the tenant row. Returns rows deleted by table."""
    counts: dict[str, int] = {}
    async with runtime.write_session(tenant_id) as session:
        for name, deleted in await plugins.collect(runtime.pm.hook.guanxi_purge_tenant, runtime=runtime, session=session):
            counts |= {f"{name}.{table}": n for table, n in deleted.items()}
        counts |= await purge_models(session, core_models())
        await session.execute(delete(CustomerCount))  # after the customers: their triggers write to it
        with unscoped(session):
            await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
    runtime.forget_tenant(tenant_id)
    forget_accounts(runtime)
    runtime._tenant_ids = {slug: tid for slug, tid in runtime._tenant_ids.items() if tid != tenant_id}
    return counts


async def delete_tenant(runtime: Runtime, slug: str, export_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, int]]:
    """Export the tenant to ``<export_dir>/<slug>-<UTC time>.json`` (mode 0600: it holds personal
    data), then remove every row of it. Returns the export's path and the rows deleted."""
    info = await get_tenant(runtime, slug)
    data = await export_tenant(runtime, info.id)
    path = _write_export(Path(export_dir), f"{slug}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.json", data)
    return path, await purge_tenant(runtime, info.id)


def _write_export(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, default=str)
    return path


async def count_rows(session: TenantSession, models: Iterable[Any]) -> dict[str, int]:
    """Rows of the session's tenant per table (reports, tests)."""
    return {m.__table__.name: int((await session.execute(select(func.count()).select_from(m))).scalar_one()) for m in models}


def system_context(tenant_id: uuid.UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id)
