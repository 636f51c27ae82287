"""Bounces and delivery reports (RFC 3464 delivery status notifications, and the VERP return path
they come back to), read receipts (RFC 8098) and feedback-loop complaints (RFC 5965 ARF reports),
as receipts on the message they report."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.message import Message
from email.utils import parsedate_to_datetime

from guanxi import Receipt
from guanxi.plugins.email import mime
from guanxi.plugins.email.settings import CHANNEL

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def fields(block: str) -> dict[str, str]:
    """``Name: value`` lines (continuations folded) of one DSN or ARF field block, names lower-cased."""
    found: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            found[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            found.setdefault(name, value.strip())
    return found


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/* parts parse into sub-messages
        return "\n\n".join(p.as_string() if isinstance(p, Message) else str(p) for p in payload)
    raw = part.get_payload(decode=True)
    return mime.decode_bytes(raw, part.get_content_charset()) if isinstance(raw, bytes) else str(payload)


def _original_message_id(report: Message) -> str | None:
    for part in report.walk():
        if part.get_content_type() == "message/disposition-notification":
            found = re.search(r"^original-message-id:\s*(<[^>\s]+>)", _part_text(part), re.IGNORECASE | re.MULTILINE)
            if found:
                return found[1].lower()
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            found = re.search(r"^message-id:\s*(<[^>\s]+>)", _part_text(part), re.IGNORECASE | re.MULTILINE)
            if found:
                return found[1].lower()
    return None


def _when(msg: Message) -> dt.datetime:
    try:
        when = parsedate_to_datetime(str(msg.get("Date")))
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return dt.datetime.now(dt.UTC)


def is_report(msg: Message) -> bool:
    return msg.get_content_type() == "multipart/report" or _is_bounce_without_dsn(msg)


def _is_bounce_without_dsn(msg: Message) -> bool:
    sender = (mime.header(msg, "From") or "").lower()
    return "mailer-daemon" in sender or "postmaster" in sender or (msg.get("Return-Path") or "").strip() == "<>"


def receipt(msg: Message, *, verp_message: uuid.UUID | None, domain: str, event_id: str) -> Receipt | None:
    """The receipt a bounce or complaint is, on the message it reports (found by the Message-ID
    quoted in the report, else by the VERP address it came back to); None when it names no
    message of ours, or reports nothing final (a ``delayed`` DSN, a read receipt that was not shown)."""
    param = msg.get_param("report-type") if msg.get_content_type() == "multipart/report" else None
    report_type = param.lower() if isinstance(param, str) else ""
    original = _original_message_id(msg)
    if original is None and verp_message is not None:
        original = f"<{verp_message.hex}@{domain}>"
    if original is None:
        return None
    when = _when(msg)
    if report_type == "feedback-report":
        block = next((_part_text(p) for p in msg.walk() if p.get_content_type() == "message/feedback-report"), "")
        feedback = fields(block).get("feedback-type", "abuse").lower()
        return Receipt(
            channel=CHANNEL,
            provider_event_id=event_id,
            provider_message_id=original,
            status="complained",
            occurred_at=when,
            error=f"feedback-loop complaint ({feedback})",
            provider_code=f"arf:{feedback}",
            withdraw_consent=True,
        )
    if report_type == "disposition-notification":  # RFC 8098: the reader's client says it was shown
        block = next((_part_text(p) for p in msg.walk() if p.get_content_type() == "message/disposition-notification"), "")
        if "displayed" not in fields(block).get("disposition", "").lower():
            return None
        return Receipt(channel=CHANNEL, provider_event_id=event_id, provider_message_id=original, status="read", occurred_at=when)
    status, action, diagnostic = _dsn(msg)
    if action in ("delivered", "relayed", "expanded"):
        return Receipt(channel=CHANNEL, provider_event_id=event_id, provider_message_id=original, status="delivered", occurred_at=when)
    if action == "delayed":
        return None
    if status is None:  # a bounce without a DSN: take the first status code in its text
        text = "\n".join(mime.text_of(p) for p in msg.walk() if p.get_content_maintype() == "text")
        found = _STATUS.search(text)
        status = found[0] if found else "5.0.0"
        diagnostic = diagnostic or next((line.strip() for line in text.splitlines() if found and found[0] in line), None)
    hard = status.startswith("5")
    return Receipt(
        channel=CHANNEL,
        provider_event_id=event_id,
        provider_message_id=original,
        status="bounced",
        occurred_at=when,
        error=f"{status} {'hard' if hard else 'soft'} bounce: {diagnostic or 'no diagnostic'}"[:500],
        provider_code=status,
        unreachable=hard and _mailbox_gone(status),
    )


def _mailbox_gone(status: str) -> bool:
    """5.1.x (bad address, no such mailbox) and 5.2.1 (mailbox disabled): the address is gone.
    Other 5.x.x (policy, content) fail the message but do not condemn the address."""
    return status.startswith("5.1.") or status == "5.2.1"


def _dsn(msg: Message) -> tuple[str | None, str | None, str | None]:
    """(status, action, diagnostic) of the first recipient of a delivery-status part."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = [b for b in re.split(r"\r?\n\s*\r?\n", _part_text(part)) if b.strip()]
        for block in blocks[1:] or blocks:  # the first block is per message, the others per recipient
            found = fields(block)
            status = _STATUS.search(found.get("status", ""))
            if status is None and "action" not in found:
                continue
            diagnostic = found.get("diagnostic-code", "").partition(";")[2].strip() or None
            return (status[0] if status else None), found.get("action", "").lower() or None, diagnostic
    return None, None, None
