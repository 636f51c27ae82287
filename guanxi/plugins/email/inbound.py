"""One raw RFC 5322 message received by a mailbox, as what it is for Guanxi: a reply (an inbound
interaction, threaded to the message it answers), an auto-reply (marked, not engagement), or a
bounce or complaint (a receipt on the message it reports). Attachments go to the core file
store; the event carries their keys, never their bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from guanxi import InboundEvent, ProfileInput, Receipt, Runtime, ValidationError
from guanxi.plugins.email import bounces, mime, tokens
from guanxi.plugins.email.compose import domain_of
from guanxi.plugins.email.settings import CHANNEL, Mailbox

#: The interaction kind of an automatic answer (Auto-Submitted, out-of-office): on the timeline,
#: not counted as engagement.
AUTO_REPLY = "auto_reply"
_MSGID = re.compile(r"<[^<>\s]+>")


def event_id(msg: Message, raw: bytes) -> str:
    """The dedupe key of a message: its Message-ID (the same however often it is forwarded), or
    a hash of its bytes when it has none."""
    found = _MSGID.search(str(msg.get("Message-ID") or ""))
    key = found[0] if found else "sha256:" + hashlib.sha256(raw).hexdigest()
    return f"mail:{key}" if len(key) <= 190 else "mail:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def is_auto_reply(msg: Message) -> bool:
    """RFC 3834 ``Auto-Submitted`` other than ``no``, and the headers vacation responders use."""
    auto = (msg.get("Auto-Submitted") or "no").strip().lower()
    precedence = (msg.get("Precedence") or "").strip().lower()
    return (
        auto != "no"
        or precedence in ("auto_reply", "bulk", "junk")
        or any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"))
    )


def _when(msg: Message) -> dt.datetime:
    try:
        when = parsedate_to_datetime(str(msg.get("Date")))
    except (TypeError, ValueError):
        return dt.datetime.now(dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _body_and_files(runtime: Runtime, msg: Message) -> tuple[str | None, list[dict[str, Any]]]:
    text: str | None = None
    html: str | None = None
    files: list[dict[str, Any]] = []
    parts = msg.walk() if msg.is_multipart() else iter([msg])
    for part in parts:
        if part.is_multipart():
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        kind = part.get_content_type()
        if disposition == "attachment" or filename or not kind.startswith("text/"):
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes) or not data:
                continue
            name = mime.decode_bytes(filename.encode("utf-8", "surrogateescape"), None) if filename else None
            entry: dict[str, Any] = {"name": name, "mime_type": kind, "size": len(data)}
            try:
                entry["key"] = runtime.files.put(data)
            except ValidationError as exc:  # larger than the file store takes: noted, not stored
                entry["skipped"] = str(exc)
            files.append(entry)
        elif kind == "text/plain" and text is None:
            text = mime.text_of(part)
        elif kind == "text/html" and html is None:
            html = mime.text_of(part)
    if text is None and html is not None:
        text = mime.html_to_text(html)
    return (text.strip() if text else None), files


def thread(msg: Message) -> dict[str, Any]:
    """Threading headers, and the outbox message the mail answers (ours by its Message-ID)."""
    in_reply_to = mime.header(msg, "In-Reply-To")
    references = _MSGID.findall(mime.header(msg, "References") or "")
    answered = tokens.outbox_ids(in_reply_to) or tokens.outbox_ids(" ".join(reversed(references)))
    info: dict[str, Any] = {"in_reply_to": in_reply_to, "references": references}
    info["thread"] = references[0] if references else (in_reply_to or event_id(msg, b"")[5:])
    if answered:
        info["reply_to_outbox_id"] = str(answered[0])
    return info


def parse(
    runtime: Runtime, raw: bytes, mailbox: Mailbox, *, tenant_id: Any, envelope_to: str | None = None
) -> InboundEvent | Receipt | None:
    """The event or receipt one raw message is; ``envelope_to`` is the address it was delivered
    to (a VERP bounce address), when the forwarder says."""
    if not raw.strip():
        raise ValueError("the body is empty, not an RFC 5322 message")
    msg = mime.parse(raw)
    if not msg.keys():
        raise ValueError("no header fields: not an RFC 5322 message")
    key = event_id(msg, raw)
    domain = domain_of(mailbox.address)
    recipients = [envelope_to] if envelope_to else []
    recipients += mime.addresses(msg, "Delivered-To", "X-Original-To", "To")
    verp = next((m for r in recipients if (m := tokens.read_verp(runtime, r, tenant_id)) is not None), None)
    if verp is not None or bounces.is_report(msg):
        found = bounces.receipt(msg, verp_message=verp, domain=domain, event_id=key)
        if found is not None or verp is not None or msg.get_content_type() == "multipart/report":
            return found  # a report (or a bounce to a VERP address) is never a customer's message
    sender, name = mime.address(mime.header(msg, "From"))
    if "@" not in sender:
        raise ValueError("the message has no From address")
    text, files = _body_and_files(runtime, msg)
    auto = is_auto_reply(msg)
    payload: dict[str, Any] = {
        "subject": mime.header(msg, "Subject"),
        "message_id": own[0] if (own := _MSGID.search(str(msg.get("Message-ID") or ""))) else None,
        "mailbox": mailbox.address,
        "attachments": files,
        "auto_submitted": auto,
        **thread(msg),
    }
    if msg.defects:
        payload["defects"] = sorted({type(d).__name__ for d in msg.defects})
    return InboundEvent(
        channel=CHANNEL,
        provider_event_id=key,
        occurred_at=_when(msg),
        identity=ProfileInput(external_id=sender, nickname=name, email=sender),
        kind=AUTO_REPLY if auto else "message_in",
        text=text,
        payload=payload,
    )
