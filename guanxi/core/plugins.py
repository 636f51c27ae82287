"""The plugin manager: built by a factory from the configuration, never a module global.

Builtin and third-party plugins are found the same way, through entry points in the group
``guanxi``. Only enabled plugins are imported; installed but disabled ones are blocked by name so
nothing can register them later. A hook implementation whose name matches no hook spec fails
start-up (pluggy's ``check_pending``), which catches misspelled hook names.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from guanxi.core import hookspecs
from guanxi.core.config import PluginSettings
from guanxi.core.errors import PluginError

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
) -> pluggy.PluginManager:
    """Build a plugin manager holding exactly the enabled plugins.

    :param settings: the ``[plugins]`` section (enabled names, tracing).
    :param extra: plugins given as objects rather than entry points, by name (tests and
        embedding applications). They are registered only if enabled, like entry points.
    :raises PluginError: an enabled plugin is not installed, fails to import, or implements a
        hook that does not exist.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
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
        raise PluginError(f"plugin {exc.plugin!r}: {exc}") from None
    if settings.trace:
        pm.trace.root.setwriter(lambda msg: log.debug("%s", msg.rstrip()))
        pm.enable_tracing()
    return pm


def plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin)
    if name is None:
        raise PluginError(f"plugin object {plugin!r} is not registered")
    return name


def per_plugin(hook: pluggy.HookCaller, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call each implementation of a contribution hook; return (plugin name, result) pairs
    in pluggy's call order, skipping None results."""
    out = []
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {k: v for k, v in kwargs.items() if k in impl.argnames}
        result = impl.function(**args)
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


async def call_first(hook: pluggy.HookCaller, **kwargs: Any) -> Any:
    """Decision hooks: call implementations one at a time (pluggy order), await each answer,
    return the first that is not None."""
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {k: v for k, v in kwargs.items() if k in impl.argnames}
        result = impl.function(**args)
        if inspect.isawaitable(result):
            result = await result
        log.debug("%s: plugin %r answered %r", hook.name, impl.plugin_name, result)
        if result is not None:
            return result
    return None


async def fire(hook: pluggy.HookCaller, **kwargs: Any) -> None:
    """Event hooks: a normal pluggy call (so wrappers and tracing apply), then every awaitable
    result is awaited on its own. A failure is logged with the hook's name and never propagates:
    the change has committed. As in pluggy, an exception in a synchronous implementation ends
    the call for the implementations after it; async implementations are isolated."""
    try:
        results = hook(**kwargs)
    except Exception:
        log.exception("an implementation of %s failed", hook.name)
        return
    for result in results:
        if inspect.isawaitable(result):
            try:
                await result
            except Exception:
                log.exception("an async implementation of %s failed", hook.name)


async def call_all(hook: pluggy.HookCaller, **kwargs: Any) -> list[Any]:
    """Start-up and shut-down hooks: a normal pluggy call, then every awaitable result is awaited
    in order; errors propagate (a plugin that cannot start stops the application)."""
    out = []
    for result in hook(**kwargs):
        out.append(await result if inspect.isawaitable(result) else result)
    return out
