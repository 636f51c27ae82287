"""Request ids on every HTTP request and WebSocket: the id of a client's ``X-Request-ID`` (when
short and plain) or a new one, kept in :data:`guanxi.core.base.logs.request_id_var` for every log
line of the request and sent back in the ``X-Request-ID`` response header."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from guanxi.core.base.logs import new_request_id, request_id_var, tenant_var


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    """Outermost ASGI middleware: sets the request id (and clears the tenant) for the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                started: Any = {**message, "headers": [*message.get("headers", ()), header]}
                await send(started)
                return
            await send(message)

        rid_token = request_id_var.set(request_id)
        tenant_token = tenant_var.set(None)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            tenant_var.reset(tenant_token)
            request_id_var.reset(rid_token)
