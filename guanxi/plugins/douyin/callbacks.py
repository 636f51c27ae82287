"""Webhook bodies (§D.4–D.6) → what Guanxi stores: core :class:`InboundEvent` for what a person
did (and what the business typed in the app), a :class:`Receipt` for the echo of our own send,
or nothing (account-level and unknown events, kept by :mod:`routes` in ``douyin_events``).

Parsing is tolerant: ``content`` is an object or a JSON string, numbers may be strings, unknown
fields are ignored and optional ones may be missing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import msgspec

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.channels import InboundEvent, ProfileInput, Receipt
from guanxi.core.services.customers import normalize_phone
from guanxi.plugins.douyin.client import number

CHANNEL = "douyin"
#: events about the authorized account itself, not about a customer
ACCOUNT_EVENTS = frozenset({"authorize", "unauthorize", "contract_authorize", "contract_unauthorize"})
LEAD_EVENTS = frozenset({"dial_phone", "website_contact", "personal_tab_contact"})
CUSTOMER_EVENTS = frozenset(
    {"im_receive_msg", "im_send_msg", "im_enter_direct_msg", "new_follow_action", "new_video_digg", "item_comment_reply"} | LEAD_EVENTS
)
#: new_follow_action ``action_type`` → interaction kind (UNCONFIRMED beyond 1 = follow)
FOLLOW_ACTIONS = {1: "follow", 2: "unfollow"}
PHONE_LABELS = ("phone", "mobile", "telephone", "tel", "电话", "手机")


class Envelope(msgspec.Struct, kw_only=True):
    event: str
    client_key: str = ""
    from_user_id: str = ""
    to_user_id: str = ""
    content: Any = None
    log_id: str = ""


def decode(body: bytes) -> Envelope:
    """The envelope of a webhook body; ``ValueError`` (a 400) when it is not one."""
    try:
        env = msgspec.json.decode(body, type=Envelope)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a Douyin event: {exc}") from None
    if not env.event or len(env.event) > 64:
        raise ValueError("`event` must be 1 to 64 characters")
    return env


def content_of(env: Envelope) -> dict[str, Any]:
    """``content`` as a dict, whether it came as an object or a JSON-encoded string."""
    value = env.content
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("`content` is a string that is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("`content` must be an object (or a JSON string of one)")
    return value


def dedupe_key(msg_id: str | None, body: bytes) -> str:
    """The ``Msg-Id`` header (same entity and action ⇒ same id, §D.2), else a digest of the body."""
    if msg_id and len(msg_id) <= 190:
        return f"msg:{msg_id}"
    return "body:" + hashlib.sha1(body).hexdigest()


def timestamp(value: Any) -> dt.datetime:
    """A Douyin time (13-digit milliseconds or 10-digit seconds, maybe a string); now when missing."""
    n = number(value)
    if n is None or n <= 0:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromtimestamp(n / 1000 if n > 10**11 else n, dt.UTC)


def _user(content: dict[str, Any], open_id: str) -> tuple[str | None, str | None, str | None]:
    """Nickname, avatar and union_id (when Douyin gives one) of a user in ``user_infos``."""
    for info in content.get("user_infos") or []:
        if isinstance(info, dict) and info.get("open_id") == open_id:
            return (
                str(info.get("nick_name") or info.get("nickname") or "") or None,
                str(info.get("avatar") or "") or None,
                str(info.get("union_id") or "")[:128] or None,
            )
    return None, None, None


def union_id_of(content: dict[str, Any], open_id: str) -> str | None:
    """The union_id ``user_infos`` gives for ``open_id``, if any."""
    return _user(content, open_id)[2]


def lead_answers(content: dict[str, Any]) -> dict[str, str]:
    """Form answers of a lead: ``card_data[{label, value}]`` (IM lead cards) or the scalar
    fields of a lead event (names UNCONFIRMED, so every scalar field is kept)."""
    answers: dict[str, str] = {}
    for item in content.get("card_data") or []:
        if isinstance(item, dict) and item.get("label"):
            answers[str(item["label"])[:100]] = str(item.get("value") or "")[:1000]
    if not answers:
        skip = {"create_time", "action_time", "user_infos"}
        for key, value in content.items():
            if key not in skip and isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
                answers[str(key)[:100]] = str(value)[:1000]
    return answers


def phone_of(answers: dict[str, str]) -> str | None:
    for label, value in answers.items():
        if any(p in label.lower() for p in PHONE_LABELS) and sum(c.isdigit() for c in value) >= 5 and "*" not in value:
            return value.strip()
    return None


#: the external id of a lead's contact when Douyin named no user: the person is the phone number
LEAD_PHONE_PREFIX = "lead-phone:"


def lead_contact_id(phone: str) -> str | None:
    """``lead-phone:<normalised phone>``, or None when ``phone`` is not a phone number."""
    try:
        return LEAD_PHONE_PREFIX + normalize_phone(phone)
    except ValidationError:
        return None


def _lead_contact(event: str, content: dict[str, Any]) -> str | None:
    """A lead event without a user open_id (a phone call, a website form): the identity is its
    phone number, so core's inbox finds the customer with that phone (contact points) or creates
    one with it; no phone, no person (kept as ignored)."""
    if event not in LEAD_EVENTS:
        return None
    phone = phone_of(lead_answers(content))
    return lead_contact_id(phone) if phone else None


def to_stored(
    env: Envelope, content: dict[str, Any], *, key: str, account: str, customer: str, client_key: str, echo_status: str
) -> InboundEvent | Receipt | None:
    """One customer event as core stores it. ``account`` is the authorized business open_id the
    event is addressed to, ``customer`` the other party's open_id; None when the event names no
    other party (kept as ignored by the caller)."""
    event = env.event
    at = timestamp(content.get("create_time") or content.get("action_time"))
    payload: dict[str, Any] = {"event": event, "account_open_id": account}
    if env.log_id:
        payload["log_id"] = env.log_id[:100]
    if event == "im_send_msg" and content.get("source") and content.get("source") == client_key:
        message_id = str(content.get("server_message_id") or "")
        if not message_id:
            return None
        return Receipt(channel=CHANNEL, provider_message_id=message_id, status=echo_status, occurred_at=at, provider_event_id=key)
    if not customer:
        customer = _lead_contact(event, content) or ""
        if not customer:
            return None
    nickname, avatar, union_id = _user(content, customer)
    profile: dict[str, Any] = {"account_open_id": account}
    kind, text, phone = "", None, None
    if event in ("im_receive_msg", "im_send_msg"):
        message_type = str(content.get("message_type") or "other")
        payload |= {
            "conversation_id": str(content.get("conversation_short_id") or ""),
            "server_message_id": str(content.get("server_message_id") or ""),
            "message_type": message_type,
        }
        for name in ("scene_type", "item_id", "resource_type"):
            if content.get(name) not in (None, ""):
                payload[name] = content[name]
        text = str(content.get("text") or "") or None
        if message_type == "retain_consult_card":
            answers = lead_answers(content)
            payload |= {"lead_type": "im_card", "answers": answers, "card_id": str(content.get("card_id") or "")}
            profile["lead_answers"] = answers
            kind, phone = "lead", phone_of(answers)
        else:
            kind = "message_in" if event == "im_receive_msg" else "message_out"
    elif event == "im_enter_direct_msg":
        kind = "chat_entered"
        for name in ("scene_type", "objectId", "data-im-extra"):
            if content.get(name) not in (None, ""):
                payload[name] = content[name]
        if isinstance(content.get("ad_info"), dict):
            payload["ad_info"] = content["ad_info"]
    elif event == "new_follow_action":
        action = number(content.get("action_type"))
        kind = FOLLOW_ACTIONS.get(action or 0, "follow_action")
        payload["action_type"] = action
    elif event == "new_video_digg":
        kind = "like"
        payload["item_id"] = str(content.get("item_id") or "")
    elif event == "item_comment_reply":
        kind = "comment"
        text = str(content.get("content") or "") or None
        payload |= {
            "comment_id": str(content.get("comment_id") or ""),
            "item_id": str(content.get("reply_to_item_id") or content.get("item_id") or ""),
            "reply_to_comment_id": str(content.get("reply_to_comment_id") or "") or None,
            "digg_count": number(content.get("digg_count"), 0),
        }
    elif event in LEAD_EVENTS:
        answers = lead_answers(content)
        payload |= {"lead_type": event, "answers": answers}
        profile["lead_answers"] = answers
        kind, phone = "lead", phone_of(answers)
    else:
        return None
    if kind == "lead":
        payload["phone"] = phone
    return InboundEvent(
        channel=CHANNEL,
        provider_event_id=key,
        occurred_at=at,
        identity=ProfileInput(external_id=customer, union_id=union_id, nickname=nickname, avatar_url=avatar, phone=phone, profile=profile),
        kind=kind,
        direction="out" if event == "im_send_msg" else "in",
        text=text,
        payload=payload,
    )
