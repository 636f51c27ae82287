"""Per-runtime objects of the plugin: one HTTP client, one API client per app (so the client
token cache is shared by every caller of the app), and one lock per authorization (token
refreshes are single flight)."""

from __future__ import annotations

import asyncio

import httpx

from guanxi.core.runtime import Runtime
from guanxi.plugins.douyin.accounts import CHANNEL, App
from guanxi.plugins.douyin.client import DouyinClient
from guanxi.plugins.douyin.settings import DouyinSettings


class DouyinState:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings: DouyinSettings = runtime.plugin_settings(CHANNEL)
        self._http: httpx.AsyncClient | None = None
        self._clients: dict[tuple[str, str], DouyinClient] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout_s)
        return self._http

    def client(self, app: App) -> DouyinClient:
        key = (app.client_key, app.client_secret)  # an account's secret may change
        found = self._clients.get(key)
        if found is None:
            found = self._clients[key] = DouyinClient(
                app.client_key, app.client_secret, base_url=self.settings.api_base_url, http=self.http
            )
        return found

    def lock(self, tenant_id: object, open_id: str) -> asyncio.Lock:
        key = (str(tenant_id), open_id)
        found = self._locks.get(key)
        if found is None:
            found = self._locks[key] = asyncio.Lock()
        return found

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def douyin_state(runtime: Runtime) -> DouyinState:
    state = runtime.state.get(CHANNEL)
    if state is None:
        state = runtime.state[CHANNEL] = DouyinState(runtime)
    return state
