"""The webhook Pigeon calls for every event: check the signature, decode, store, answer."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException, NotAuthorizedException

from guanxi import InboundEvent, ProfileInput, Runtime, ValidationError, ingest
from guanxi_pigeon.settings import PigeonSettings

MAX_SKEW_S = 300


class Sender(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    avatar_url: str | None = None


class PigeonEvent(msgspec.Struct, kw_only=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: Literal["message", "follow", "unfollow"]
    sent_at: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    sender: Sender = msgspec.field(name="from")
    text: str | None = None
    #: The entry point's code a follow came through (e.g. a referral token), if any.
    state: Annotated[str, msgspec.Meta(max_length=30)] | None = None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str | None, given: str | None, body: bytes) -> None:
    if not secret or not timestamp or not given:
        raise NotAuthorizedException("missing Pigeon signature")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
        raise NotAuthorizedException("stale or invalid X-Pigeon-Timestamp")
    if not hmac.compare_digest(signature(secret, timestamp, body), given):
        raise NotAuthorizedException("bad Pigeon signature")


KINDS = {"message": "message_in", "follow": "follow", "unfollow": "unfollow"}


def to_inbound(event: PigeonEvent) -> InboundEvent:
    payload: dict[str, Any] = {"pigeon_type": event.type}
    if event.state:
        payload["state"] = event.state
    return InboundEvent(
        channel="pigeon",
        provider_event_id=event.event_id,
        occurred_at=event.sent_at,
        identity=ProfileInput(external_id=event.sender.id, nickname=event.sender.name, avatar_url=event.sender.avatar_url),
        kind=KINDS[event.type],
        text=event.text,
        payload=payload,
    )


@post("/webhooks/pigeon", status_code=200)
async def pigeon_webhook(request: Request[Any, Any, Any]) -> dict[str, bool]:
    runtime: Runtime = request.app.state.runtime
    settings: PigeonSettings = runtime.plugin_settings("pigeon")
    body = await request.body()
    verify(settings.webhook_secret, request.headers.get("X-Pigeon-Timestamp"), request.headers.get("X-Pigeon-Signature"), body)
    try:
        event = msgspec.json.decode(body, type=PigeonEvent)
        result = await ingest(runtime, await runtime.tenant_id(settings.tenant or None), to_inbound(event))
    except (msgspec.DecodeError, ValidationError) as exc:
        raise HTTPException(status_code=400, detail=f"malformed Pigeon event: {exc}") from None
    return {"ok": True, "duplicate": result.duplicate}
