"""The running application's state: settings, plugins, database. One per process (or per test)."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pluggy
from sqlalchemy import select

from guanxi.core.base.config import CoreSettings, decode_plugin_section, load_settings
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError, NotFoundError, PluginError
from guanxi.core.domain.channels import Channel
from guanxi.core.domain.events import Event
from guanxi.core.domain.models import Tenant
from guanxi.core.hooks import manager as plugin_mod
from guanxi.core.realtime import publisher
from guanxi.core.storage.db import WRITE, busy_as_error, create_engine, create_sessionmaker, sqlite_writer
from guanxi.core.storage.tenancy import TenantSession, unscoped

log = logging.getLogger("guanxi")


class Tx:
    """One unit of work: a tenant-scoped session plus the events to fire after it commits."""

    def __init__(self, runtime: Runtime, session: TenantSession, ctx: RequestContext) -> None:
        self.runtime = runtime
        self.session = session
        self.ctx = ctx
        self._events: list[tuple[str, Event]] = []
        self._callbacks: list[Callable[[], None]] = []

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.ctx.tenant_id

    def emit(self, hook_name: str, event: Event) -> None:
        """Queue an event hook call; it runs only if the transaction commits."""
        self._events.append((hook_name, event))

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
        for name, event in events:
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
                    raise ConfigError(f"{source}: invalid config at `$.plugins.{name}`: plugin {name!r} takes no settings")
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

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
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
