"""The webhook Pigeon calls for every event and delivery report: find the account named in the URL
(and so its tenant), check the signature with its secret, decode, store."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from guanxi import InboundEvent, NotFoundError, ProfileInput, Receipt, verify_signature
from guanxi.core.services.accounts import account_by_key
from guanxi.webhooks import WebhookCall, WebhookTarget, webhook


class Sender(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    avatar_url: str | None = None


class PigeonEvent(msgspec.Struct, kw_only=True):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: Literal["message", "follow", "unfollow", "delivered", "read", "failed"]
    sent_at: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    sender: Sender | None = msgspec.field(default=None, name="from")
    text: str | None = None
    #: The entry point's code a follow came through (e.g. a referral token), if any.
    state: Annotated[str, msgspec.Meta(max_length=30)] | None = None
    #: Receipts: Pigeon's id of the message they report on, and why a message failed.
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    error: str | None = None


KINDS = {"message": "message_in", "follow": "follow", "unfollow": "unfollow"}


async def find_account(call: WebhookCall) -> WebhookTarget:
    account = await account_by_key(call.runtime, "pigeon", call.path_params["account"])
    if account is None or account.secrets is None:  # unknown, or its secrets do not open
        raise NotFoundError("no usable Pigeon account has this key")
    return WebhookTarget(tenant_id=account.tenant_id, settings=account.secrets)


def verify(call: WebhookCall) -> None:
    signature, timestamp = call.header("X-Pigeon-Signature"), call.header("X-Pigeon-Timestamp")
    verify_signature(call.settings.webhook_secret, call.body, signature, timestamp=timestamp, timestamped=True, prefix="sha256=")


def parse(call: WebhookCall) -> InboundEvent | Receipt:
    event = msgspec.json.decode(call.body, type=PigeonEvent)
    if event.type not in KINDS:  # a delivery report on a message Pigeon accepted earlier
        if event.message_id is None:
            raise ValueError(f"a {event.type} report needs `message_id`")
        return Receipt(
            channel="pigeon",
            provider_event_id=event.event_id,
            provider_message_id=event.message_id,
            status=event.type,
            occurred_at=event.sent_at,
            error=event.error,
            unreachable=event.error == "unknown_recipient",
        )
    if event.sender is None:
        raise ValueError(f"a {event.type} event needs `from`")
    payload: dict[str, Any] = {"pigeon_type": event.type} | ({"state": event.state} if event.state else {})
    return InboundEvent(
        channel="pigeon",
        provider_event_id=event.event_id,
        occurred_at=event.sent_at,
        identity=ProfileInput(external_id=event.sender.id, nickname=event.sender.name, avatar_url=event.sender.avatar_url),
        kind=KINDS[event.type],
        text=event.text,
        payload=payload,
    )


pigeon_webhook = webhook("/webhooks/pigeon/{account:str}", plugin="pigeon", tenant=find_account, verify=verify, parse=parse)
