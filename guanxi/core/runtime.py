"""The running application's state: settings, plugins, database. One per process (or per test)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pluggy
from sqlalchemy import select

from guanxi.core.base import tracing
from guanxi.core.base.config import CoreSettings, decode_plugin_section, load_settings
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError, NotFoundError, PluginError
from guanxi.core.domain.channels import Channel, StaffChannel
from guanxi.core.domain.contracts import JobKind
from guanxi.core.domain.events import Event
from guanxi.core.domain.models import Tenant
from guanxi.core.hooks import manager as plugin_mod
from guanxi.core.realtime import publisher
from guanxi.core.storage.db import WRITE, create_engine, create_sessionmaker, sqlite_writer
from guanxi.core.storage.files import LocalFileStore
from guanxi.core.storage.tenancy import TenantSession, unscoped

log = logging.getLogger("guanxi")


class Tx:
    """One unit of work: a tenant-scoped session plus the events to fire after it commits."""

    def __init__(self, runtime: Runtime, session: TenantSession, ctx: RequestContext) -> None:
        self.runtime = runtime
        self.session = session
        self.ctx = ctx
        self._events: list[tuple[str, Event, Any]] = []
        self._callbacks: list[Callable[[], None]] = []

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.ctx.tenant_id

    def emit(self, hook_name: str, event: Event) -> None:
        """Queue an event hook call; it runs only if the transaction commits (in the trace of
        the work that emitted it, when tracing is on)."""
        self._events.append((hook_name, event, tracing.capture()))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run a plain callback once the transaction has committed (before the event hooks)."""
        self._callbacks.append(callback)

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

    async def flush_events(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        events, self._events = self._events, []
        for name, event, trace_context in events:
            with tracing.attached(trace_context):
                await plugin_mod.fire(getattr(self.runtime.pm.hook, name), runtime=self.runtime, event=event)


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
        self.engine = create_engine(settings.database)
        self.sessionmaker = create_sessionmaker(self.engine, row_level_security=settings.database.row_level_security)
        self._tenant_ids: dict[str, uuid.UUID] = {}
        self.state: dict[str, Any] = {}  # a place for plugins to keep per-runtime objects
        self._channels: dict[str, Channel] | None = None
        self._staff_channels: dict[str, StaffChannel] | None = None
        #: the plugin that offers each staff channel (for per-tenant plugin checks)
        self.staff_channel_owners: dict[str, str] = {}
        self._job_kinds: dict[str, tuple[str, JobKind]] | None = None

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

    def plugin_settings(self, name: str) -> Any:
        """The decoded config section of an enabled plugin (its ``guanxi_config_schema`` type)."""
        try:
            return self._plugin_settings[name]
        except KeyError:
            raise ConfigError(f"plugin {name!r} has no settings (not enabled, or it declares no schema)") from None

    @property
    def files(self) -> LocalFileStore:
        """The core file store (``[files]``): where plugins keep uploaded bytes, by content hash."""
        store = self.state.get("files")
        if store is None:
            store = self.state["files"] = LocalFileStore(self.settings.files.root, self.settings.files.max_bytes)
        assert isinstance(store, LocalFileStore)
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
            self._channels = found
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

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.tracing.enabled:
            tracing.configure(self.settings.tracing, self.engine)
        await plugin_mod.call_all(self.pm.hook.guanxi_startup, runtime=self)

    async def stop(self) -> None:
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
        BEGIN, so it waits for other writers instead of failing). Commits on success."""
        async with sqlite_writer(self.engine), self.session(tenant_id, owners) as session, session.begin():
            await session.connection(execution_options={WRITE: True})
            yield session

    @asynccontextmanager
    async def transaction(self, ctx: RequestContext) -> AsyncIterator[Tx]:
        """Run a unit of work: commit on success, roll back on error, then fire queued events."""
        async with self.write_session(ctx.tenant_id, ctx.owners) as session:
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
