"""The base webhook route of channel plugins: find the tenant, check the signature, parse, store.

A channel plugin describes its webhook with three small functions and gets a Litestar route
handler to return from ``guanxi_routes``::

    from guanxi import InboundEvent, verify_signature
    from guanxi.webhooks import WebhookCall, webhook

    def verify(call: WebhookCall) -> None:
        verify_signature(call.settings.webhook_secret, call.body, call.header("X-Pigeon-Signature"),
                         timestamp=call.header("X-Pigeon-Timestamp"), timestamped=True, prefix="sha256=")

    def parse(call: WebhookCall) -> InboundEvent | Receipt | list[InboundEvent | Receipt]:
        event = msgspec.json.decode(call.body, type=PigeonEvent)
        return ...

    pigeon_webhook = webhook("/webhooks/pigeon", plugin="pigeon", verify=verify, parse=parse)

For every request the route, in this order:

1. **finds the tenant** (and the settings to verify with) with the ``tenant`` step: by default
   :func:`configured_tenant`, the plugin settings' ``tenant`` slug, or the configured tenant. A
   plugin whose webhooks carry their account in the URL or the payload passes its own step
   (``async def step(call) -> WebhookTarget``); an unknown one answers 404;
2. **verifies** the request (``verify(call)``; a :class:`~guanxi.SignatureError` answers 401 and
   nothing is parsed or stored);
3. **parses** the body into zero or more :class:`~guanxi.InboundEvent` and
   :class:`~guanxi.Receipt` (``parse(call)``; a ``msgspec`` decode or validation error, a Guanxi
   ``ValidationError`` or a ``ValueError`` answers 400 with the reason, and nothing is stored);
4. **stores** each in the durable inbox (:func:`guanxi.ingest`; a retried delivery with the
   same provider event id is acknowledged as a duplicate) and answers 200 at once with
   ``{"ok": true, "stored": n, "duplicates": d}``, or what ``answer(call, results)`` returns.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.handlers import HTTPRouteHandler

from guanxi.core.base.errors import ConfigError, NotFoundError, ValidationError
from guanxi.core.domain.channels import InboundEvent, Receipt
from guanxi.core.domain.providers import SignatureError
from guanxi.core.queues.inbox import IngestResult, ingest
from guanxi.core.runtime import Runtime


@dataclass(frozen=True)
class WebhookTarget:
    """Whom a webhook request is for: the tenant whose inbox stores it, and the settings (secrets)
    to verify it with."""

    tenant_id: uuid.UUID
    settings: Any


@dataclass
class WebhookCall:
    """One request to a channel webhook, as the steps of :func:`webhook` see it."""

    runtime: Runtime
    #: The plugin's name (its config section).
    plugin: str
    #: The raw body, exactly as received: sign and parse these bytes.
    body: bytes
    #: Request headers (lower-case names; use :meth:`header` for any case).
    headers: Mapping[str, str]
    #: Query parameters (the first value of each).
    query: Mapping[str, str]
    #: Path parameters of the route (e.g. ``{"account": "a1"}`` for ``/webhooks/x/{account:str}``).
    path_params: Mapping[str, Any]
    #: The tenant the ``tenant`` step found (set before ``verify`` and ``parse`` run).
    tenant_id: uuid.UUID | None = None
    #: The settings the ``tenant`` step chose (by default the plugin's own settings).
    settings: Any = None
    #: Anything a step wants to hand to a later one.
    state: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A header's value, None when it is missing."""
        return self.headers.get(name.lower())


#: The ``tenant`` step: find whom a request is for (from the URL, the payload or the config).
TenantStep = Callable[[WebhookCall], Awaitable[WebhookTarget]]
Parsed = InboundEvent | Receipt | Sequence[InboundEvent | Receipt] | None


async def configured_tenant(call: WebhookCall) -> WebhookTarget:
    """The default ``tenant`` step: the tenant named by the plugin settings' ``tenant`` slug when
    the settings have one and it is set, else the configured tenant (``tenant`` in guanxi.toml),
    with the plugin's own settings."""
    settings = _plugin_settings(call.runtime, call.plugin)
    slug = getattr(settings, "tenant", None) or None
    return WebhookTarget(tenant_id=await call.runtime.tenant_id(slug), settings=settings)


def _plugin_settings(runtime: Runtime, plugin: str) -> Any:
    try:
        return runtime.plugin_settings(plugin)
    except (ConfigError, KeyError):
        return None


def webhook(
    path: str,
    *,
    plugin: str,
    verify: Callable[[WebhookCall], None],
    parse: Callable[[WebhookCall], Parsed | Awaitable[Parsed]],
    tenant: TenantStep = configured_tenant,
    answer: Callable[[WebhookCall, list[IngestResult]], Any] | None = None,
    name: str | None = None,
) -> HTTPRouteHandler:
    """A ``POST`` route handler for a channel's webhook (see the module docstring).

    :param path: the route, e.g. ``"/webhooks/pigeon"`` or ``"/webhooks/pigeon/{account:str}"``.
    :param plugin: the plugin's name; its settings are ``call.settings`` by default.
    :param verify: raises :class:`~guanxi.SignatureError` when the request is not authentic
        (use :func:`guanxi.verify_signature`).
    :param parse: returns the events and receipts in the body (one, a list, or None/[] for a
        request that carries nothing to store, such as a ping); it may be ``async`` (a plugin
        that also records something of its own for the request).
    :param tenant: the step that finds the tenant (default :func:`configured_tenant`).
    :param answer: builds the 200 response body from the ingest results (default
        ``{"ok": true, "stored": n, "duplicates": d}``), for providers that expect a given answer.
    :param name: the route's name (default ``"<plugin>_webhook:<path>"``, unique per route).
    """

    async def handle(request: Request[Any, Any, Any]) -> Any:
        runtime: Runtime = request.app.state.runtime
        call = WebhookCall(
            runtime=runtime,
            plugin=plugin,
            body=await request.body(),
            headers={k.lower(): v for k, v in request.headers.items()},
            query={k: v for k, v in request.query_params.items()},
            path_params=dict(request.path_params),
        )
        try:
            target = await tenant(call)
        except NotFoundError as exc:
            raise NotFoundException(str(exc)) from None
        call.tenant_id, call.settings = target.tenant_id, target.settings
        try:
            verify(call)
        except SignatureError as exc:
            raise NotAuthorizedException(f"{plugin} webhook: {exc}") from None
        try:
            found = parse(call)
            parsed: Parsed = await found if inspect.isawaitable(found) else found
            events = [] if parsed is None else [parsed] if isinstance(parsed, InboundEvent | Receipt) else list(parsed)
            results = [await ingest(runtime, target.tenant_id, event) for event in events]
        except (msgspec.DecodeError, ValidationError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=f"malformed {plugin} webhook: {exc}") from None
        if answer is not None:
            return answer(call, results)
        return {"ok": True, "stored": sum(not r.duplicate for r in results), "duplicates": sum(r.duplicate for r in results)}

    route_name = name or f"{plugin}_webhook:{path}"
    handle.__name__ = handle.__qualname__ = f"{plugin}_webhook"
    return post(path, status_code=200, name=route_name, operation_id=route_name)(handle)


__all__ = ["TenantStep", "WebhookCall", "WebhookTarget", "configured_tenant", "webhook"]
