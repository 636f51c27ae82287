"""Compose one outgoing email: headers, text and HTML parts, attachments from the file store,
RFC 8058 one-click unsubscribe and tracking on marketing mail, and a DKIM signature."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import msgspec

from guanxi import FILE_URL, Attachment, OutboundMessage, PermanentDeliveryError, Runtime
from guanxi.plugins.email import tokens
from guanxi.plugins.email.settings import Mailbox, MailboxSecrets

#: The headers a DKIM signature covers (those present are signed).
SIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """What an email adds to an outbox message (the ``email_drafts`` row; defaults when the
    message came through ``sendMessage``)."""

    mailbox: str | None = None
    subject: str = ""
    html: str | None = None
    marketing: bool = False


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render(template: str, variables: dict[str, Any], *, escape: bool) -> str:
    """``{{ name }}`` replaced by the variable (HTML-escaped when ``escape``); an unknown name is
    replaced by nothing."""

    def value(match: re.Match[str]) -> str:
        found = variables.get(match[1])
        text = "" if found is None else str(found)
        return html.escape(text) if escape else text

    return _VAR.sub(value, template)


_HREF = re.compile(r"""href=(["'])(https?://[^"']+)\1""", re.IGNORECASE)


def track(runtime: Runtime, base_url: str, body: str, tenant_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """Links rewritten through signed click redirects, and an open pixel appended."""

    def rewrite(match: re.Match[str]) -> str:
        target = html.unescape(match[2])
        token = tokens.make(runtime, "click", tenant_id, message_id, extra=target)
        return f'href="{base_url}/email/c/{token}?u={html.escape(quote(target, safe=""))}"'

    pixel = tokens.make(runtime, "open", tenant_id, message_id)
    return _HREF.sub(rewrite, body) + f'<img src="{base_url}/email/o/{pixel}.gif" width="1" height="1" alt="">'


def _attach(runtime: Runtime, msg: EmailMessage, item: Attachment) -> None:
    if not item.url.startswith(FILE_URL):
        raise PermanentDeliveryError(f"email attachments must be files of the file store ({FILE_URL}<key>), not {item.kind} links")
    data = runtime.files.get(item.url.removeprefix(FILE_URL))
    maintype, _, subtype = (item.mime_type or "application/octet-stream").partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=item.name or "attachment")


def compose(
    runtime: Runtime, message: OutboundMessage, draft: Draft, mailbox: Mailbox, secrets: MailboxSecrets, *, base_url: str
) -> tuple[bytes, str, str]:
    """The signed message bytes, the envelope sender (VERP) and the Message-ID."""
    domain = domain_of(mailbox.address)
    message_id = tokens.message_id_header(message.id, domain)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(mailbox.display_name, addr_spec=mailbox.address) if mailbox.display_name else mailbox.address
    msg["To"] = message.recipient
    msg["Subject"] = draft.subject or "(no subject)"
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id
    html_part = draft.html
    if draft.marketing:
        token = tokens.make(runtime, "unsubscribe", message.tenant_id, message.id)
        msg["List-Unsubscribe"] = f"<{base_url}/email/unsubscribe/{token}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if html_part:
            html_part = track(runtime, base_url, html_part, message.tenant_id, message.id)
    msg.set_content(message.text or "", charset="utf-8")
    if html_part:
        msg.add_alternative(html_part, subtype="html", charset="utf-8")
    for item in message.attachments:
        _attach(runtime, msg, item)
    data = msg.as_bytes()
    if secrets.dkim_private_key:
        data = dkim_sign(data, mailbox, secrets)
    sender = tokens.verp_address(runtime, mailbox.bounce_local, mailbox.bounce_domain or domain, message.tenant_id, message.id)
    return data, sender, message_id


def dkim_sign(data: bytes, mailbox: Mailbox, secrets: MailboxSecrets) -> bytes:
    import dkim

    signature = dkim.sign(
        data,
        mailbox.dkim_selector.encode(),
        (mailbox.dkim_domain or domain_of(mailbox.address)).encode(),
        secrets.dkim_private_key.encode(),
        include_headers=[h for h in SIGNED if re.search(rb"^" + h + rb":", data, re.IGNORECASE | re.MULTILINE)],
    )
    return bytes(signature) + data
