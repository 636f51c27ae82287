"""Per-runtime objects of the plugin: crypto and API client per corp, the nonce replay cache,
and the background tasks (welcome messages) started by callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import httpx

from guanxi.core.runtime import Runtime
from guanxi.plugins.wecom.client import WecomClient
from guanxi.plugins.wecom.crypto import WecomCrypto
from guanxi.plugins.wecom.settings import CorpSettings, WecomSettings

log = logging.getLogger("guanxi.wecom")
STATE_KEY = "wecom"


class NonceCache:
    """Remembers (signature, nonce) pairs for ``ttl_s``: a replayed request is recognised."""

    def __init__(self, ttl_s: float, max_size: int = 100_000) -> None:
        self.ttl_s, self.max_size = ttl_s, max_size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            _key, at = next(iter(self._seen.items()))
            if now - at < self.ttl_s and len(self._seen) <= self.max_size:
                break
            self._seen.popitem(last=False)

    def seen(self, key: str) -> bool:
        now = time.monotonic()
        self._expire(now)
        return key in self._seen

    def add(self, key: str) -> None:
        self._seen[key] = time.monotonic()


class WecomState:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings: WecomSettings = runtime.plugin_settings("wecom")
        self.nonces = NonceCache(self.settings.nonce_ttl_s)
        self._crypto: dict[tuple[str, str, str], WecomCrypto] = {}
        self._clients: dict[tuple[str, str], WecomClient] = {}
        self._http: httpx.AsyncClient | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        #: (tenant, customer) created by the inbox for a WeCom event, until its arrival is reported.

    def crypto(self, corp: CorpSettings) -> WecomCrypto:
        key = (corp.corp_id, corp.token, corp.encoding_aes_key)  # an account's secrets may change
        found = self._crypto.get(key)
        if found is None:
            found = self._crypto[key] = WecomCrypto(corp.token, corp.encoding_aes_key, corp.corp_id)
        return found

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout_s)
        return self._http

    def client(self, corp: CorpSettings) -> WecomClient | None:
        """The API client of a corp, or None when no secret is configured."""
        return self._client(corp.corp_id, corp.secret)

    def app_client(self, corp: CorpSettings) -> WecomClient | None:
        """The client of the corp's notifying app (``agent_secret``, else ``secret``), or None
        when the corp has no app (``agent_id``) or no secret for it."""
        if corp.agent_id is None:
            return None
        return self._client(corp.corp_id, corp.agent_secret or corp.secret)

    def _client(self, corp_id: str, secret: str) -> WecomClient | None:
        if not secret:
            return None
        key = (corp_id, secret)
        found = self._clients.get(key)
        if found is None:
            found = self._clients[key] = WecomClient(
                corp_id,
                secret,
                base_url=self.settings.api_base_url,
                http=self.http,
                backoff_s=self.settings.backoff_s,
                max_retries=self.settings.max_retries,
            )
        return found

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run work in the background of this process (kept referenced until it ends)."""

        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("wecom %s failed: %s: %s", what, type(exc).__name__, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for the background tasks started so far (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def wecom_state(runtime: Runtime) -> WecomState:
    state = runtime.state.get(STATE_KEY)
    if state is None:
        state = runtime.state[STATE_KEY] = WecomState(runtime)
    return state
