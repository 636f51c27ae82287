"""Guanxi core: customers, interactions and stages, tenancy, the queues and the hook specs.

Core imports no API, CLI or plugin code, and its subpackages are layered (import-linter checks
both, see pyproject.toml and docs/architecture.md):

    auth, queues, migrate      access control; the durable inbox and outbox; migrations
    services                   the domain operations (customers, identities, pipelines, ...)
    runtime                    the object that holds configuration, database and plugins
    realtime                   the broker behind GraphQL subscriptions (core's own plugin)
    hooks                      hook specs and the plugin manager
    storage                    engines, sessions, the tenant chokepoint, row-level security
    domain                     tables, events, channel and plugin contracts, roles
    base                       errors, ids, request context, configuration, logging

Modules moved by the restructuring keep their old import paths for one release, with a
``DeprecationWarning`` (see ``MOVED`` below); plugins should import from ``guanxi``,
``guanxi.models`` and ``guanxi.testing``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module path -> new module path (removed in the release after 0.2)
MOVED: dict[str, str] = {
    "guanxi.core.errors": "guanxi.core.base.errors",
    "guanxi.core.ids": "guanxi.core.base.ids",
    "guanxi.core.context": "guanxi.core.base.context",
    "guanxi.core.logs": "guanxi.core.base.logs",
    "guanxi.core.config": "guanxi.core.base.config",
    "guanxi.core.models": "guanxi.core.domain.models",
    "guanxi.core.events": "guanxi.core.domain.events",
    "guanxi.core.contracts": "guanxi.core.domain.contracts",
    "guanxi.core.channels": "guanxi.core.domain.channels",
    "guanxi.core.access": "guanxi.core.domain.access",
    "guanxi.core.db": "guanxi.core.storage.db",
    "guanxi.core.tenancy": "guanxi.core.storage.tenancy",
    "guanxi.core.rls": "guanxi.core.storage.rls",
    "guanxi.core.hookspecs": "guanxi.core.hooks.specs",
    "guanxi.core.plugins": "guanxi.core.hooks.manager",
    "guanxi.core.broker": "guanxi.core.realtime.broker",
    "guanxi.core.queue": "guanxi.core.queues.queue",
    "guanxi.core.inbox": "guanxi.core.queues.inbox",
    "guanxi.core.outbox": "guanxi.core.queues.outbox",
    "guanxi.core.queries": "guanxi.core.services.queries",
    "guanxi.core.demo": "guanxi.demo.generator",
    "guanxi.core.importer": "guanxi.importer.csv_import",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Serves an old module path as the new module object itself (same classes, same state)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; import plugin names from guanxi, guanxi.models or guanxi.testing",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed; undo the import system's overwrite of its spec."""
        module.__spec__ = self.spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new))


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
