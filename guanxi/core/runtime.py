"""The running application's state: settings, plugins, database. One per process (or per test)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import msgspec
import pluggy
from sqlalchemy import select

from guanxi.core.base import tracing
from guanxi.core.base.config import CoreSettings, decode_plugin_section, load_settings
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError, NotFoundError, PluginDisabledError, PluginError
from guanxi.core.domain.channels import Channel, StaffChannel
from guanxi.core.domain.contracts import JobKind
from guanxi.core.domain.events import Event
from guanxi.core.domain.models import Tenant, TenantPlugin
from guanxi.core.hooks import manager as plugin_mod
from guanxi.core.realtime import publisher
from guanxi.core.storage.db import BOOKKEEPING, WRITE, busy_as_error, create_engine, create_sessionmaker, sqlite_writer
from guanxi.core.storage.files import FileStore, LocalFileStore, S3FileStore
from guanxi.core.storage.tenancy import TENANT_KEY, TenantSession, unscoped

log = logging.getLogger("guanxi")


class Tx:
    """One unit of work: a tenant-scoped session plus the events to fire after it commits."""

    def __init__(self, runtime: Runtime, session: TenantSession, ctx: RequestContext) -> None:
        self.runtime = runtime
        self.session = session
        self.ctx = ctx
        self._events: list[tuple[str, Event, Any]] = []
        self._callbacks: list[Callable[[], Awaitable[None] | None]] = []

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.ctx.tenant_id

    def emit(self, hook_name: str, event: Event) -> None:
        """Queue an event hook call; it runs only if the transaction commits (in the trace of
        the work that emitted it, when tracing is on)."""
        self._events.append((hook_name, event, tracing.capture()))

    def after_commit(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run a callback once the transaction has committed (before the event hooks); an
        ``async def`` one is awaited."""
        self._callbacks.append(callback)

    @contextmanager
    def holding_events(self) -> Iterator[list[tuple[str, Event, Any]]]:
        """Take the events queued inside the block out of the queue, into the yielded list, to be
        queued later with :meth:`release_events` (a batch that prepares the work of several
        items at once queues each item's events when the item itself is applied)."""
        mark = len(self._events)
        held: list[tuple[str, Event, Any]] = []
        try:
            yield held
        finally:
            held.extend(self._events[mark:])
            del self._events[mark:]

    def release_events(self, held: list[tuple[str, Event, Any]]) -> None:
        """Queue events taken out by :meth:`holding_events`."""
        self._events.extend(held)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: on error, its changes and the events it queued are undone, and
        the error propagates; the outer transaction goes on."""
        events, callbacks = len(self._events), len(self._callbacks)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self._events[events:]
            del self._callbacks[callbacks:]
            raise

    async def hooks(self) -> TenantHooks:
        """The hooks of the plugins this transaction's tenant enabled (see :meth:`Runtime.hooks`)."""
        return await self.runtime.hooks(self.tenant_id, session=self.session)

    async def flush_events(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            if inspect.isawaitable(result := callback()):
                await result
        events, self._events = self._events, []
        if not events:
            return
        hooks = await self.runtime.hooks(self.tenant_id)
        for name, event, trace_context in events:
            with tracing.attached(trace_context):
                await plugin_mod.fire(getattr(hooks, name), runtime=self.runtime, event=event)


class TenantPlugins(msgspec.Struct, frozen=True, kw_only=True):
    """What one tenant chose about the loaded plugins: those it disabled, and its setting
    overrides by plugin (only the keys it overrides)."""

    disabled: frozenset[str] = frozenset()
    overrides: Mapping[str, Mapping[str, Any]] = msgspec.field(default_factory=dict)
    #: the operator suspended the tenant (or it no longer exists)
    suspended: bool = False
    #: the operator's quota overrides of the tenant (``tenants.quotas``)
    quotas: Mapping[str, Any] = msgspec.field(default_factory=dict)
    #: the tenant's IANA time zone (its days, for daily quotas)
    time_zone: str = "UTC"


class TenantHooks:
    """``pm.hook`` for one tenant: each hook caller leaves out the plugins the tenant disabled
    (pluggy's ``subset_hook_caller``). Core's own plugins are never left out."""

    def __init__(self, pm: pluggy.PluginManager, disabled: frozenset[str]) -> None:
        self._pm = pm
        self._remove = [p for p in (pm.get_plugin(name) for name in sorted(disabled)) if p is not None]

    def __getattr__(self, name: str) -> pluggy.HookCaller:
        if not self._remove:
            return getattr(self._pm.hook, name)
        return self._pm.subset_hook_caller(name, remove_plugins=self._remove)


class Runtime:
    """Settings, plugin manager and database of a running Guanxi."""

    def __init__(
        self,
        settings: CoreSettings,
        pm: pluggy.PluginManager,
        plugin_settings: Mapping[str, Any],
        source: str = "<defaults>",
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.source = source
        self._plugin_settings = dict(plugin_settings)
        #: plugin -> the struct of the settings a tenant may override (``guanxi_tenant_settings``)
        self.tenant_settings_types: dict[str, type[msgspec.Struct]] = _tenant_settings_types(pm, self._plugin_settings)
        self._merged_settings: dict[tuple[uuid.UUID, str], tuple[TenantPlugins, Any]] = {}
        self.engine = create_engine(settings.database)
        self.sessionmaker = create_sessionmaker(self.engine, row_level_security=settings.database.row_level_security)
        self._tenant_ids: dict[str, uuid.UUID] = {}
        self.state: dict[str, Any] = {}  # a place for plugins to keep per-runtime objects
        self._channels: dict[str, Channel] | None = None
        self._staff_channels: dict[str, StaffChannel] | None = None
        #: the plugin that offers each staff channel (for per-tenant plugin checks)
        self.staff_channel_owners: dict[str, str] = {}
        self._job_kinds: dict[str, tuple[str, JobKind]] | None = None
        self._channel_owners: dict[str, str] = {}
        #: tenant id -> (monotonic expiry, its plugin choices); see :meth:`tenant_plugins`
        self._tenant_plugins: dict[uuid.UUID, tuple[float, TenantPlugins]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        extra_plugins: Mapping[str, object] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Runtime:
        """Load the config (file + environment), build the plugin manager, decode plugin
        sections. Every configuration error surfaces here, at start, with its key path."""
        core, sections, source = load_settings(path, environ)
        if overrides:
            import msgspec

            core = msgspec.structs.replace(core, **overrides)
        pm = plugin_mod.make_plugin_manager(core.plugins, extra=extra_plugins, core={publisher.NAME: publisher})
        decoded: dict[str, Any] = {}
        schemas = dict(plugin_mod.per_plugin(pm.hook.guanxi_config_schema))
        for name in core.plugins.enabled:
            schema = schemas.get(name)
            if schema is None:
                if name in sections:
                    where = f"$.plugins.{name}"
                    raise ConfigError(f"{source.label(where)}: invalid config at `{where}`: plugin {name!r} takes no settings")
                continue
            decoded[name] = decode_plugin_section(name, schema, sections.get(name), source)
        return cls(core, pm, decoded, source)

    def plugin_settings(self, name: str, tenant_id: uuid.UUID | None = None) -> Any:
        """The decoded config section of an enabled plugin (its ``guanxi_config_schema`` type);
        with ``tenant_id``, with that tenant's overrides applied (the keys its
        ``guanxi_tenant_settings`` struct allows). The tenant's overrides are those core read for
        the current request or transaction (``runtime.transaction`` and every GraphQL request
        read them, at most ``plugins.tenant_cache_s`` old); work outside both calls
        ``await runtime.tenant_plugins(tenant_id)`` first."""
        try:
            base = self._plugin_settings[name]
        except KeyError:
            raise ConfigError(f"plugin {name!r} has no settings (not enabled, or it declares no schema)") from None
        if tenant_id is None:
            return base
        cached = self._tenant_plugins.get(tenant_id)
        if cached is None:
            raise ConfigError(f"the settings of tenant {tenant_id} are not loaded: await runtime.tenant_plugins(tenant_id) first")
        state = cached[1]
        overrides = state.overrides.get(name)
        if not overrides:
            return base
        merged = self._merged_settings.get((tenant_id, name))
        if merged is None or merged[0] is not state:
            merged = (state, apply_overrides(base, self.tenant_settings_types.get(name), overrides))
            self._merged_settings[(tenant_id, name)] = merged
        return merged[1]

    @property
    def files(self) -> FileStore:
        """The core file store (``[files]``): where plugins keep uploaded bytes, by content hash
        (a local directory, or an S3-compatible bucket)."""
        store: FileStore | None = self.state.get("files")
        if store is None:
            settings = self.settings.files
            local = settings.backend == "local"
            store = LocalFileStore(settings.root, settings.max_bytes) if local else S3FileStore.from_settings(settings)
            self.state["files"] = store
        return store

    @property
    def enabled_plugins(self) -> list[str]:
        return list(self.settings.plugins.enabled)

    @property
    def channels(self) -> dict[str, Channel]:
        """Channel adapters of the enabled plugins, by channel name (collected once)."""
        if self._channels is None:
            found: dict[str, Channel] = {}
            owners: dict[str, str] = {}
            for plugin, adapters in plugin_mod.per_plugin(self.pm.hook.guanxi_channels, runtime=self):
                for adapter in adapters:
                    if not isinstance(adapter, Channel):
                        raise PluginError(f"plugin {plugin!r}: guanxi_channels must return Channel instances, not {type(adapter).__name__}")
                    if adapter.name in found:
                        raise PluginError(f"channel {adapter.name!r} is offered by both {owners[adapter.name]} and {plugin}")
                    found[adapter.name], owners[adapter.name] = adapter, plugin
            self._channels, self._channel_owners = found, owners
        return self._channels

    @property
    def staff_channels(self) -> dict[str, StaffChannel]:
        """Staff notification channels of the enabled plugins, by name (collected once)."""
        if self._staff_channels is None:
            found: dict[str, StaffChannel] = {}
            owners: dict[str, str] = {}
            for plugin, adapters in plugin_mod.per_plugin(self.pm.hook.guanxi_staff_channels, runtime=self):
                for adapter in adapters:
                    if not isinstance(adapter, StaffChannel):
                        raise PluginError(
                            f"plugin {plugin!r}: guanxi_staff_channels must return StaffChannel instances, not {type(adapter).__name__}"
                        )
                    if adapter.name in found:
                        raise PluginError(f"staff channel {adapter.name!r} is offered by both {owners[adapter.name]} and {plugin}")
                    found[adapter.name], owners[adapter.name] = adapter, plugin
            self._staff_channels, self.staff_channel_owners = found, owners
        return self._staff_channels

    def job_kinds(self, core: Mapping[str, JobKind]) -> dict[str, tuple[str, JobKind]]:
        """Scheduled job kinds by name, with their owner (``core`` or a plugin's name): core's
        own (given by the scheduler, which sits above the runtime) and the enabled plugins'
        (``guanxi_job_kinds``), collected once."""
        if self._job_kinds is None:
            found: dict[str, tuple[str, JobKind]] = {name: ("core", kind) for name, kind in core.items()}
            for plugin, kinds in plugin_mod.per_plugin(self.pm.hook.guanxi_job_kinds, runtime=self):
                for kind in kinds:
                    if not isinstance(kind, JobKind):
                        raise PluginError(f"plugin {plugin!r}: guanxi_job_kinds must return JobKind instances, not {type(kind).__name__}")
                    if kind.name in found:
                        raise PluginError(f"job kind {kind.name!r} is offered by both {found[kind.name][0]} and {plugin}")
                    found[kind.name] = (plugin, kind)
            self._job_kinds = found
        return self._job_kinds

    def channel_plugin(self, channel: str) -> str | None:
        """The plugin that offers a channel (None: no loaded plugin does)."""
        _ = self.channels
        return self._channel_owners.get(channel)

    async def tenant_channel(self, tenant_id: uuid.UUID, channel: str) -> Channel | None:
        """A channel's adapter for work of one tenant: None when no loaded plugin offers it;
        :class:`PluginDisabledError` when the tenant disabled the plugin that does."""
        adapter = self.channels.get(channel)
        owner = self._channel_owners.get(channel)
        if adapter is not None and owner is not None:
            await self.require_plugin(owner, tenant_id)
        return adapter

    # -- tenant plugins -------------------------------------------------------------------------

    async def tenant_plugins(self, tenant_id: uuid.UUID, *, session: TenantSession | None = None) -> TenantPlugins:
        """The tenant's plugin choices (``tenant_plugins`` rows), read at most once every
        ``plugins.tenant_cache_s`` seconds per process: a change made in another process applies
        here within that time; one made in this process applies at once (:meth:`forget_tenant`)."""
        now = time.monotonic()
        cached = self._tenant_plugins.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        bookkeeping = {BOOKKEEPING: True}  # a cache refresh: left out of statement counts
        tenant_of = select(Tenant.status, Tenant.quotas, Tenant.time_zone).where(Tenant.id == tenant_id).execution_options(**bookkeeping)
        choices = select(TenantPlugin).execution_options(**bookkeeping)
        if session is not None and session.sync_session.info.get(TENANT_KEY) == tenant_id:
            rows = (await session.execute(choices)).scalars().all()
            tenant = (await session.execute(tenant_of)).first()
        else:
            async with self.session(tenant_id) as own:
                rows = (await own.execute(choices)).scalars().all()
                tenant = (await own.execute(tenant_of)).first()
        loaded = set(self.settings.plugins.enabled)
        state = TenantPlugins(
            disabled=frozenset(r.plugin for r in rows if not r.enabled and r.plugin in loaded),
            overrides={r.plugin: dict(r.settings) for r in rows if r.settings and r.plugin in loaded},
            suspended=tenant is None or tenant.status != "active",
            quotas=dict(tenant.quotas or {}) if tenant is not None else {},
            time_zone=tenant.time_zone if tenant is not None else "UTC",
        )
        self._tenant_plugins[tenant_id] = (now + self.settings.plugins.tenant_cache_s, state)
        return state

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        """Expire this process's copy of a tenant's plugin choices (after changing them): the next
        :meth:`tenant_plugins` reads them again (a synchronous reader meanwhile sees the copy)."""
        cached = self._tenant_plugins.get(tenant_id)
        if cached is not None:
            self._tenant_plugins[tenant_id] = (0.0, cached[1])

    async def tenant_suspended(self, tenant_id: uuid.UUID) -> bool:
        """Has the operator suspended this tenant (or deleted it)? Read like the plugin choices."""
        return (await self.tenant_plugins(tenant_id)).suspended

    async def disabled_plugins(self, tenant_id: uuid.UUID) -> frozenset[str]:
        """The loaded plugins this tenant has disabled (empty for most deployments)."""
        return (await self.tenant_plugins(tenant_id)).disabled

    async def plugin_enabled(self, name: str, tenant_id: uuid.UUID) -> bool:
        """Is plugin ``name`` loaded by the deployment and enabled for this tenant? The one
        question every per-tenant piece of work asks (routes, loops, schedulers, channels)."""
        return name in self.settings.plugins.enabled and name not in await self.disabled_plugins(tenant_id)

    async def require_plugin(self, name: str, tenant_id: uuid.UUID) -> None:
        """Raise :class:`PluginDisabledError` unless ``name`` is enabled for the tenant (a plugin's
        route calls it once it knows the tenant, and answers 404)."""
        if not await self.plugin_enabled(name, tenant_id):
            raise PluginDisabledError(name)

    async def hooks(self, tenant_id: uuid.UUID, *, session: TenantSession | None = None) -> TenantHooks:
        """The hooks to call for work of one tenant: like ``pm.hook`` without the plugins the
        tenant disabled. Event, decision and contribution hooks of per-tenant work go through it;
        the export and erasure hooks do not (personal-data rights do not lapse)."""
        return TenantHooks(self.pm, (await self.tenant_plugins(tenant_id, session=session)).disabled)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.tracing.enabled:
            tracing.configure(self.settings.tracing, self.engine)
        await plugin_mod.call_all(self.pm.hook.guanxi_startup, runtime=self)

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run best-effort work beside the request that asked for it (bookkeeping such as an
        API key's ``last_used_at``): the caller does not wait for it, its failure is logged in
        one line, and :meth:`stop` waits for it before closing the database."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task %s failed: %s", task.get_name(), task.exception())

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for the background work started with :meth:`spawn` (up to ``timeout_s``)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    async def stop(self) -> None:
        await self.drain()
        try:
            await plugin_mod.call_all(self.pm.hook.guanxi_shutdown, reverse=True, runtime=self)
            for adapter in (self._channels or {}).values():
                await adapter.aclose()
            for staff in (self._staff_channels or {}).values():
                await staff.aclose()
        finally:
            await self.engine.dispose()

    # -- database -------------------------------------------------------------------------------

    def session(self, tenant_id: uuid.UUID | None, owners: frozenset[uuid.UUID] | None = None) -> TenantSession:
        """A new session scoped to one tenant (use ``async with``)."""
        return self.sessionmaker().for_tenant(tenant_id).for_owners(owners)

    @asynccontextmanager
    async def write_session(self, tenant_id: uuid.UUID | None, owners: frozenset[uuid.UUID] | None = None) -> AsyncIterator[TenantSession]:
        """A session in a transaction that will write (on SQLite it takes the write lock at
        BEGIN, so it waits for other writers, up to ``database.busy_timeout_ms``, instead of
        failing). Commits on success. A write that does not get the lock in time raises
        :class:`~guanxi.core.base.errors.BusyError` (``BUSY``, retryable), never a raw
        "database is locked"."""
        async with busy_as_error(), sqlite_writer(self.engine), self.session(tenant_id, owners) as session, session.begin():
            await session.connection(execution_options={WRITE: True})
            yield session

    @asynccontextmanager
    async def transaction(self, ctx: RequestContext) -> AsyncIterator[Tx]:
        """Run a unit of work: commit on success, roll back on error, then fire queued events.
        The tenant's plugin choices are read first (if this process's copy expired), so
        ``plugin_settings(name, tx.tenant_id)`` and ``tx.hooks()`` answer for it."""
        async with self.write_session(ctx.tenant_id, ctx.owners) as session:
            await self.tenant_plugins(ctx.tenant_id, session=session)
            tx = Tx(self, session, ctx)
            yield tx
        await tx.flush_events()

    async def tenant_id(self, slug: str | None = None) -> uuid.UUID:
        """The id of the tenant with this slug (default: the configured ``tenant``)."""
        slug = slug or self.settings.tenant
        cached = self._tenant_ids.get(slug)
        if cached is not None:
            return cached
        async with self.session(None) as session, unscoped(session):
            tid = (await session.execute(select(Tenant.id).where(Tenant.slug == slug))).scalar_one_or_none()
        if tid is None:
            raise NotFoundError(f"tenant {slug!r} does not exist (run `guanxi demo` or `guanxi tenant create`)")
        self._tenant_ids[slug] = tid
        return tid


def _tenant_settings_types(pm: pluggy.PluginManager, decoded: Mapping[str, Any]) -> dict[str, type[msgspec.Struct]]:
    """Each plugin's ``guanxi_tenant_settings`` struct, checked against its config struct: every
    field must be a field of the config section (a tenant overrides settings, it adds none)."""
    found: dict[str, type[msgspec.Struct]] = {}
    for name, struct in plugin_mod.per_plugin(pm.hook.guanxi_tenant_settings):
        base = decoded.get(name)
        if base is None:
            raise PluginError(f"plugin {name!r}: guanxi_tenant_settings needs a config section (guanxi_config_schema)")
        unknown = [f for f in struct.__struct_fields__ if f not in type(base).__struct_fields__]
        if unknown:
            raise PluginError(f"plugin {name!r}: tenant settings {unknown} are not fields of its config section")
        found[name] = struct
    return found


def apply_overrides(base: Any, struct: type[msgspec.Struct] | None, overrides: Mapping[str, Any]) -> Any:
    """The config section ``base`` with a tenant's overrides (stored as JSON) put over it."""
    if struct is None:
        return base  # the plugin no longer lets tenants override anything: the deployment's settings
    typed = msgspec.convert(dict(overrides), struct)
    values = {k: getattr(typed, k) for k in overrides if k in struct.__struct_fields__}
    return msgspec.structs.replace(base, **values)
