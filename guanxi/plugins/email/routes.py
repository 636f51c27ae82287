"""HTTP routes: raw mail forwarded by a provider (signed, the one route with a raised body limit),
one-click unsubscribe (RFC 8058), the open pixel and click redirects (signed tokens, so no open
redirect)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from guanxi import Actor, InboundEvent, NotFoundError, ProfileInput, RequestContext, Runtime, ingest, verify_signature
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.services import accounts
from guanxi.core.services.consent import set_consent
from guanxi.plugins.email import inbound, tokens
from guanxi.plugins.email.settings import CHANNEL, EmailSettings
from guanxi.plugins.email.suppression import suppress
from guanxi.webhooks import WebhookCall, WebhookTarget, webhook

ACTOR = Actor(kind="system", name="email")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
#: User agents of privacy proxies and link scanners: their opens and clicks are flagged, not counted.
MACHINE = re.compile(
    r"GoogleImageProxy|YahooMailProxy|Barracuda|Mimecast|Proofpoint|SafeLinks|bot\b|crawler|spider|scanner|curl/|python-|Go-http-client",
    re.IGNORECASE,
)


async def find_mailbox(call: WebhookCall) -> WebhookTarget:
    account = await accounts.account_by_key(call.runtime, CHANNEL, call.path_params["mailbox"])
    if account is None or account.secrets is None:
        raise NotFoundError("no usable mailbox has this key")
    call.state["mailbox"] = account.settings
    return WebhookTarget(tenant_id=account.tenant_id, settings=account.secrets)


def verify(call: WebhookCall) -> None:
    signature, timestamp = call.header("X-Guanxi-Signature"), call.header("X-Guanxi-Timestamp")
    verify_signature(call.settings.inbound_secret, call.body, signature, timestamp=timestamp, timestamped=True, prefix="sha256=")


async def parse(call: WebhookCall) -> Any:
    """Parse off the event loop: MIME decoding and storing a 25 MB attachment (a file write or
    an S3 upload) block, and other requests are answered meanwhile."""
    return await asyncio.to_thread(
        inbound.parse, call.runtime, call.body, call.state["mailbox"], tenant_id=call.tenant_id, envelope_to=call.header("X-Envelope-To")
    )


def raw_mail_route(settings: EmailSettings) -> HTTPRouteHandler:
    handler = webhook("/webhooks/email/{mailbox:str}/raw", plugin=CHANNEL, tenant=find_mailbox, verify=verify, parse=parse)
    handler.request_max_body_size = settings.max_raw_bytes  # raw mail (25 MB attachments) here only
    return handler


async def _message(runtime: Runtime, ref: tokens.Ref) -> OutboxMessage | None:
    async with runtime.session(ref.tenant_id) as session:
        row = await session.get(OutboxMessage, (ref.tenant_id, ref.message_id))
    return row if row is not None and row.channel == CHANNEL else None


async def _unsubscribe(runtime: Runtime, token: FromPath[str]) -> OutboxMessage:
    ref = tokens.read(runtime, "unsubscribe", token)
    row = None if ref is None else await _message(runtime, ref)
    if ref is None or row is None:
        raise HTTPException(status_code=404, detail="this unsubscribe link is not valid")
    return row


_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<form method="post"><p>Stop receiving these emails at {address}?</p>
<input type="hidden" name="List-Unsubscribe" value="One-Click"><button>Unsubscribe</button></form>"""


@get("/email/unsubscribe/{token:str}", media_type="text/html", name="email_unsubscribe_page")
async def unsubscribe_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """A page that asks; GET never unsubscribes (link scanners follow links)."""
    import html

    row = await _unsubscribe(request.app.state.runtime, token)
    return Response(_PAGE.format(address=html.escape(row.recipient)), media_type="text/html")


@post("/email/unsubscribe/{token:str}", status_code=200, media_type="text/plain", name="email_unsubscribe")
async def unsubscribe(request: Request[Any, Any, Any], token: FromPath[str]) -> str:
    """RFC 8058 one-click: withdraw the customer's email consent (again is the same)."""
    runtime: Runtime = request.app.state.runtime
    row = await _unsubscribe(runtime, token)
    async with runtime.transaction(RequestContext(tenant_id=row.tenant_id, actor=ACTOR)) as tx:
        await set_consent(tx, row.customer_id, CHANNEL, "opted_out", source="unsubscribe")
        await suppress(tx, row.customer_id, row.recipient, "unsubscribed")
    return "You are unsubscribed."


async def _track(request: Request[Any, Any, Any], row: OutboxMessage, kind: str, key: str, payload: dict[str, Any]) -> None:
    agent = request.headers.get("user-agent", "")
    machine = bool(MACHINE.search(agent)) or not agent
    event = InboundEvent(
        channel=CHANNEL,
        provider_event_id=f"{'machine-' if machine else ''}{key}",
        occurred_at=dt.datetime.now(dt.UTC),
        identity=ProfileInput(external_id=row.recipient),
        kind=f"email_machine_{kind}" if machine else ("email_open" if kind == "open" else "click"),
        payload={"outbox_id": str(row.id), "machine": machine, "user_agent": agent[:200], **payload},
    )
    await ingest(request.app.state.runtime, row.tenant_id, event)


@get("/email/o/{token:str}", media_type="image/gif", name="email_open")
async def open_pixel(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    """The open pixel: the first open of a message by a person counts; machine fetches are flagged."""
    runtime: Runtime = request.app.state.runtime
    ref = tokens.read(runtime, "open", token.removesuffix(".gif"))
    row = None if ref is None else await _message(runtime, ref)
    if row is not None:
        await _track(request, row, "open", f"open:{row.id}", {})
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@get("/email/c/{token:str}", name="email_click")
async def click(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """A click: recorded, then redirected to the URL the token was signed for (any other: 400)."""
    runtime: Runtime = request.app.state.runtime
    target = request.query_params.get("u", "")
    ref = tokens.read(runtime, "click", token, extra=target)
    row = None if ref is None else await _message(runtime, ref)
    if row is None or not target.startswith(("http://", "https://")):
        raise HTTPException(status_code=400, detail="this link is not valid")
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    await _track(request, row, "click", f"click:{row.id}:{digest}", {"url": target})
    return Response("", status_code=302, headers={"Location": target})


def routes(settings: EmailSettings) -> list[Any]:
    return [raw_mail_route(settings), unsubscribe_page, unsubscribe, open_pixel, click]


__all__ = ["routes"]
