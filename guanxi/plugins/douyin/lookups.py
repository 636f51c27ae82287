"""A per-process cache of what every webhook request looks up before it can check a signature:
the app a ``client_key`` names and the tenant whose authorization an event is addressed to.

Entries live ``lookup_cache_s`` seconds (0: no cache). Authorizations are kept per open_id,
including "none" (most open_ids a webhook names are customers'); apps only when found. This
process drops the authorization answers when an account connects, is revoked (``unauthorize``)
or is disconnected, and an app when a signature checked with it fails (a rotated secret is read
afresh for the retry); other processes see such changes within the TTL (a delivery refused
meanwhile is retried by Douyin)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from guanxi.core.runtime import Runtime

K = TypeVar("K")
V = TypeVar("V")

#: entries kept at most per cache; a full cache starts over (it only saves lookups)
MAX_ENTRIES = 10_000


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl_s, value)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


#: (client_key, owning tenant of a tenant's app or None, an open_id) → its authorizations' (tenant, status)
AuthorizationKey = tuple[str, uuid.UUID | None, str]
Authorizations = tuple[tuple[uuid.UUID, str], ...]


@dataclass
class Lookups:
    #: client_key → a tenant's :class:`~guanxi.plugins.douyin.accounts.App`
    apps: TTLCache[str, Any]
    authorizations: TTLCache[AuthorizationKey, Authorizations]


def lookups(runtime: Runtime) -> Lookups:
    """The runtime's caches (created with ``lookup_cache_s`` on first use)."""
    found: Any = runtime.state.get("douyin.lookups")
    if found is None:
        ttl = float(runtime.plugin_settings("douyin").lookup_cache_s)
        found = runtime.state["douyin.lookups"] = Lookups(apps=TTLCache(ttl), authorizations=TTLCache(ttl))
    return found
