"""Decrypted callback XML → what Guanxi stores: a core :class:`InboundEvent` for events about
one customer, or a :class:`WecomEvent` row for corp-level ones (tags, customer groups).

XML is parsed with the standard library after refusing any DTD or entity declaration, so no
entity expansion (billion laughs, external entities) can happen."""

from __future__ import annotations

import datetime as dt
import hashlib
import xml.etree.ElementTree as ET

from guanxi.core.domain.channels import InboundEvent, ProfileInput

CHANNEL = "wecom"
MAX_BODY = 64 * 1024

#: ChangeType of ``change_external_contact`` → interaction kind (documented in docs/plugins/wecom.md).
CONTACT_KINDS = {
    "add_external_contact": "contact_added",
    "add_half_external_contact": "contact_added",
    "edit_external_contact": "contact_edited",
    "del_external_contact": "contact_removed",
    "del_follow_user": "contact_removed",
    "transfer_fail": "transfer_failed",
}
#: ChangeType → the relation's status afterwards (None: unchanged).
FOLLOW_STATUS = {
    "add_external_contact": "active",
    "add_half_external_contact": "half",
    "del_external_contact": "removed_by_staff",
    "del_follow_user": "removed_staff",
}
CORP_EVENTS = frozenset({"change_external_tag", "change_external_chat"})


class CallbackError(Exception):
    """The callback body is not what WeCom sends (the reason is safe to answer)."""


def parse_xml(data: str | bytes) -> dict[str, str]:
    """The children of the root ``<xml>`` element as a flat dict (repeated children such as
    ``MemChangeList/Item`` are joined with commas)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_BODY:
        raise CallbackError("body too large")
    upper = raw.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise CallbackError("DTDs and entities are not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        raise CallbackError("body is not well-formed XML") from None
    if root.tag != "xml":
        raise CallbackError("root element must be <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if len(child):
            fields[child.tag] = ",".join((item.text or "").strip() for item in child)
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


def dedupe_key(corp_id: str, fields: dict[str, str]) -> str:
    """``sha1(corp|Event|ChangeType|UserID|ExternalUserID|CreateTime|Id|ChatId)`` (PROTOCOLS.md §A.8):
    FromUserName is always ``sys`` for these events, so the vendor's key would collide."""
    parts = [corp_id] + [fields.get(name, "") for name in ("Event", "ChangeType", "UserID", "ExternalUserID", "CreateTime", "Id", "ChatId")]
    parts.append(fields.get("UpdateDetail", "") + fields.get("CurMemVer", ""))
    return hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()


def created_at(fields: dict[str, str]) -> dt.datetime:
    value = fields.get("CreateTime", "")
    if not value.isdigit():
        raise CallbackError("CreateTime is missing or not a number")
    return dt.datetime.fromtimestamp(int(value), dt.UTC)


def to_inbound(corp_id: str, fields: dict[str, str]) -> InboundEvent:
    """A ``change_external_contact`` event as a core inbound event. The payload keeps what the
    plugin's follow-up needs (staff UserID, State, WelcomeCode is NOT kept: it is a credential)."""
    change = fields.get("ChangeType", "")
    kind = CONTACT_KINDS.get(change)
    if kind is None:
        raise CallbackError(f"unknown change_external_contact ChangeType {change[:40]!r}")
    external = fields.get("ExternalUserID", "")
    if not external or len(external) > 128:
        raise CallbackError("ExternalUserID is missing")
    userid = fields.get("UserID", "")
    if not userid:
        raise CallbackError("UserID is missing")
    state = fields.get("State") or None
    profile: dict[str, str] = {"corp_id": corp_id}
    if state and change in ("add_external_contact", "add_half_external_contact"):
        profile["state"] = state  # the acquisition channel, kept on the identity
    payload: dict[str, str | bool] = {"corp_id": corp_id, "change_type": change, "userid": userid, "external_userid": external}
    if state:
        payload["state"] = state
    if change == "add_half_external_contact":
        payload["half"] = True
    for name, key in (("Source", "source"), ("FailReason", "fail_reason")):
        if fields.get(name):
            payload[key] = fields[name]
    return InboundEvent(
        channel=CHANNEL,
        provider_event_id=dedupe_key(corp_id, fields),
        occurred_at=created_at(fields),
        identity=ProfileInput(external_id=external, profile=profile),
        kind=kind,
        direction="in",
        payload=payload,
    )
