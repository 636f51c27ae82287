"""HTTP side of access control: authenticate every GraphQL request, limit its rate.

One middleware on the GraphQL route (HTTP and WebSocket) turns the ``Authorization`` header into
the request's :class:`~guanxi.core.base.context.RequestContext` (see :mod:`guanxi.core.auth`) and keeps
it in the ASGI scope, where the GraphQL context getter finds it. Without valid credentials the
answer is 401, GraphiQL and introspection included, except in dev mode (``server.dev``, loopback
hosts only), where an anonymous caller may load GraphiQL and run introspection, and nothing else.

A WebSocket may authenticate in its ``connection_init`` payload instead (``{"Authorization":
"Bearer …"}``), since browsers cannot set headers on a WebSocket.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import Any

import msgspec
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from guanxi.core.auth import AuthenticationError, authenticator_of
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import NotFoundError
from guanxi.core.base.logs import tenant_var
from guanxi.core.runtime import Runtime
from guanxi.core.services import quotas

log = logging.getLogger("guanxi.security")

SCOPE_KEY = "guanxi.context"
PRINCIPAL_KEY = "guanxi.principal"
#: the caller of a dev-mode request without credentials: may introspect, sees no customer
DEV_ANONYMOUS = Actor(kind="system", name="anonymous (dev mode)", roles=())


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second sustained, ``burst`` at once.
    Remembers at most ``max_callers`` callers (the least recently seen are forgotten)."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str, now: float | None = None) -> float:
        """Take one token; return 0 when allowed, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[caller] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return wait


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = msgspec.json.encode({"errors": [{"message": message, "extensions": {"code": code}}]})
    start: Any = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
    }
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)


class GraphQLAuthMiddleware(ASGIMiddleware):
    """Authenticates and rate-limits the GraphQL route (installed on its controller only)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.limiter = RateLimiter(runtime.settings.auth.rate_per_s, runtime.settings.auth.rate_burst)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        authorization = _header(scope, b"authorization")
        websocket = str(scope["type"]) == "websocket"
        try:
            if authorization is None and (websocket or self.runtime.settings.server.dev):
                # a WebSocket may authenticate in connection_init; dev mode may introspect
                context, principal = await self._anonymous(websocket)
            else:
                context, principal = await authenticator_of(self.runtime).authenticate(authorization)
        except AuthenticationError as exc:
            log.info("refused a GraphQL request from %s: %s", (scope.get("client") or ("?",))[0], exc)
            if websocket:
                await send({"type": "websocket.close", "code": 4401, "reason": "Unauthorized"})
                return
            await _refuse(send, 401, exc.code, str(exc), [(b"www-authenticate", b'Bearer realm="guanxi"')])
            return
        if context is not None and principal is not None and await self.runtime.tenant_suspended(context.tenant_id):
            log.info("refused a GraphQL request of suspended tenant %s", context.tenant_id)
            if websocket:
                await send({"type": "websocket.close", "code": 4403, "reason": "Tenant suspended"})
                return
            await _refuse(send, 403, "TENANT_SUSPENDED", "this tenant is suspended by the platform operator")
            return
        if context is not None and principal is not None:
            over = await quotas.count_request(self.runtime, context.tenant_id)
            if over is not None:
                if websocket:
                    await send({"type": "websocket.close", "code": 4429, "reason": "Quota exceeded"})
                    return
                await _refuse(send, 429, "QUOTA_EXCEEDED", over, [(b"retry-after", b"1")])
                return
        if principal is not None:
            wait = self.limiter.take(principal)
            if wait > 0:
                if websocket:
                    await send({"type": "websocket.close", "code": 4429, "reason": "Too many requests"})
                    return
                retry = str(max(1, math.ceil(wait))).encode()
                await _refuse(send, 429, "RATE_LIMITED", "too many requests for this key; retry later", [(b"retry-after", retry)])
                return
        if context is not None:
            tenant_var.set(str(context.tenant_id))  # on every log line of the request
        scope_any: Any = scope
        scope_any[SCOPE_KEY] = context
        scope_any[PRINCIPAL_KEY] = principal
        await next_app(scope, receive, send)

    async def _anonymous(self, websocket: bool) -> tuple[RequestContext | None, str | None]:
        if websocket:
            return None, None
        try:
            tenant_id = await self.runtime.tenant_id()
        except NotFoundError as exc:
            raise AuthenticationError(f"dev mode: {exc}") from None
        return RequestContext(tenant_id=tenant_id, actor=DEV_ANONYMOUS, owners=frozenset()), None
