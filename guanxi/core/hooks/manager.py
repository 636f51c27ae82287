"""The plugin manager: built by a factory from the configuration, never a module global.

Builtin and third-party plugins are found the same way, through entry points in the group
``guanxi``. Only enabled plugins are imported; installed but disabled ones are blocked by name so
nothing can register them later. A hook implementation whose name matches no hook spec fails
start-up (pluggy's ``check_pending``), which catches misspelled hook names.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from guanxi.core.base import tracing
from guanxi.core.base.config import PluginSettings
from guanxi.core.base.errors import PluginError
from guanxi.core.hooks import specs as hookspecs

ENTRY_POINT_GROUP = "guanxi"
log = logging.getLogger("guanxi.plugins")
hookimpl = pluggy.HookimplMarker("guanxi")


def installed_plugins() -> dict[str, EntryPoint]:
    """Every plugin installed in this environment, by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def make_plugin_manager(
    settings: PluginSettings,
    *,
    extra: Mapping[str, object] | None = None,
    core: Mapping[str, object] | None = None,
) -> pluggy.PluginManager:
    """Build a plugin manager holding exactly the enabled plugins.

    :param settings: the ``[plugins]`` section (enabled names, tracing).
    :param extra: plugins given as objects rather than entry points, by name (tests and
        embedding applications). They are registered only if enabled, like entry points.
    :param core: core's own plugins (the runtime passes the real-time publisher): always
        registered, never blocked, never listed in ``plugins.enabled``.
    :raises PluginError: an enabled plugin is not installed, fails to import, or implements a
        hook that does not exist.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name, plugin in (core or {}).items():
        pm.register(plugin, name=name)
    extra = dict(extra or {})
    installed = installed_plugins()
    enabled = list(settings.enabled)
    for name in sorted((set(installed) | set(extra)) - set(enabled)):
        pm.set_blocked(name)
    for name in enabled:
        if name in extra:
            pm.register(extra[name], name=name)
        elif name in installed:
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
            except Exception as exc:  # an import error inside the plugin
                raise PluginError(f"plugin {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
        else:
            known = ", ".join(sorted(set(installed) | set(extra))) or "none"
            raise PluginError(f"plugin {name!r} is enabled in `$.plugins.enabled` but not installed (installed plugins: {known})")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        culprit = pm.get_name(exc.plugin) if exc.plugin is not None else None
        raise PluginError(f"plugin {culprit or exc.plugin!r}: {exc}") from None
    if settings.trace:
        # pluggy's tracing covers hooks called the pluggy way; the helpers below log each
        # implementation they call on the same logger at debug level.
        pm.trace.root.setwriter(lambda msg: log.debug("%s", msg.rstrip()))
        pm.enable_tracing()
    return pm


def plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin)
    if name is None:
        raise PluginError(f"plugin object {plugin!r} is not registered")
    return name


def _impls(hook: pluggy.HookCaller, *, reverse: bool = False) -> list[Any]:
    """Plain implementations in pluggy's call order (``tryfirst`` first, then last registered
    first, ``trylast`` last); ``reverse`` for shut-down. Wrappers are not included."""
    impls = [i for i in reversed(hook.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]
    return impls[::-1] if reverse else impls


def _call(hook: pluggy.HookCaller, impl: Any, kwargs: dict[str, Any]) -> Any:
    args = {k: v for k, v in kwargs.items() if k in impl.argnames}
    log.debug("%s -> %s", hook.name, impl.plugin_name)
    return impl.function(**args)


def per_plugin(hook: pluggy.HookCaller, **kwargs: Any) -> list[tuple[str, Any]]:
    """Contribution hooks whose results must be attributed: call each implementation and return
    (plugin name, result) pairs in pluggy's call order, skipping None results."""
    out = []
    for impl in _impls(hook):
        result = _call(hook, impl, kwargs)
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


async def call_first(hook: pluggy.HookCaller, *, accept: Callable[[Any], Awaitable[bool]] | None = None, **kwargs: Any) -> Any:
    """Decision hooks: call implementations one at a time in pluggy's order, await each answer,
    and return the first that is not None (and that ``accept`` approves, if given; a refused
    answer is logged and the next plugin is asked)."""
    for impl in _impls(hook):
        result = _call(hook, impl, kwargs)
        if inspect.isawaitable(result):
            result = await result
        log.debug("%s: plugin %r answered %r", hook.name, impl.plugin_name, result)
        if result is None:
            continue
        if accept is not None and not await accept(result):
            log.warning("%s: plugin %r answered %r, which is not valid here; asking the next plugin", hook.name, impl.plugin_name, result)
            continue
        return result
    return None


async def fire(hook: pluggy.HookCaller, **kwargs: Any) -> None:
    """Event hooks: call every implementation in pluggy's order and await the async ones. Each
    implementation is isolated: a failure is logged with the plugin's name and neither
    propagates (the change has committed) nor stops the implementations after it."""
    for impl in _impls(hook):
        try:
            with tracing.span(f"guanxi.hook {hook.name}", plugin=impl.plugin_name):
                result = _call(hook, impl, kwargs)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("plugin %r failed in %s", impl.plugin_name, hook.name)


async def collect(hook: pluggy.HookCaller, **kwargs: Any) -> list[tuple[str, Any]]:
    """Collection hooks: call every implementation in pluggy's order, await the async ones, and
    return (plugin name, answer) pairs for the answers that are not None. Errors propagate (the
    caller's transaction or request fails: a partial export or erasure must not pass as whole)."""
    out = []
    for impl in _impls(hook):
        result = _call(hook, impl, kwargs)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


async def collect_each(hook: pluggy.HookCaller, per_plugin: Mapping[str, Mapping[str, Any]], **kwargs: Any) -> list[tuple[str, Any]]:
    """Like :func:`collect`, but only for the plugins named in ``per_plugin``, each called with
    its own extra arguments (e.g. the record it answered earlier). Errors propagate."""
    out = []
    for impl in _impls(hook):
        own = per_plugin.get(impl.plugin_name)
        if own is None:
            continue
        result = _call(hook, impl, {**kwargs, **own})
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


async def call_all(hook: pluggy.HookCaller, *, reverse: bool = False, **kwargs: Any) -> list[Any]:
    """Start-up and shut-down hooks: call every implementation in pluggy's order (``reverse``
    for shut-down), awaiting async ones; errors propagate (a plugin that cannot start stops the
    application)."""
    out = []
    for impl in _impls(hook, reverse=reverse):
        with tracing.span(f"guanxi.hook {hook.name}", plugin=impl.plugin_name):
            result = _call(hook, impl, kwargs)
            out.append(await result if inspect.isawaitable(result) else result)
    return out
