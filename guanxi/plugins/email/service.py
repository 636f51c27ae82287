"""Queue an email (``sendEmail``): the subject and the HTML part rendered from templates with the
customer's fields (escaped in HTML), through the outbox (the one consent and channel-policy
check), with what the outbox row does not hold kept beside it; and tell the owner of a customer
who replied."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from guanxi import InboundApplied, InboundEvent, Tx, ValidationError, add_file_ref
from guanxi.core.domain.models import Customer, OutboxMessage
from guanxi.core.queues.outbox import SendRequest, send_message
from guanxi.core.services import accounts
from guanxi.core.services.customers import get_customer
from guanxi.core.services.notifications import NotificationInput, notify
from guanxi.plugins.email.compose import render
from guanxi.plugins.email.inbound import AUTO_REPLY
from guanxi.plugins.email.models import EmailDraft
from guanxi.plugins.email.settings import CHANNEL


class EmailRequest(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    subject: str
    text: str
    idempotency_key: str
    html: str | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    mailbox: str | None = None
    marketing: bool = False


def customer_fields(customer: Customer) -> dict[str, Any]:
    """The customer's fields a template may use: its custom fields (attributes) by key, then
    ``name``, ``company`` and ``email`` (the call's variables win over all of them)."""
    fields: dict[str, Any] = dict(customer.attributes or {})
    return fields | {"name": customer.display_name, "company": customer.company, "email": customer.emails[0] if customer.emails else None}


async def send_email(tx: Tx, req: EmailRequest) -> tuple[OutboxMessage, bool]:
    subject = req.subject.strip()
    if not 0 < len(subject) <= 500 or "\n" in subject or "\r" in subject:
        raise ValidationError("subject must be one line of 1 to 500 characters", field="subject")
    if req.mailbox is not None:
        await accounts.tenant_account(tx.runtime, tx.tenant_id, CHANNEL, req.mailbox)  # NOT_FOUND for another tenant's
    customer = await get_customer(tx.session, req.customer_id)
    variables = customer_fields(customer) | req.variables
    text = render(req.text, variables, escape=False)
    row, created = await send_message(
        tx, SendRequest(customer_id=customer.id, channel=CHANNEL, idempotency_key=req.idempotency_key, text=text)
    )
    if created:
        tx.session.add(
            EmailDraft(
                outbox_id=row.id,
                customer_id=row.customer_id,
                mailbox=req.mailbox or "",  # "": the first mailbox
                subject=render(subject, variables, escape=False),
                html=render(req.html, variables, escape=True) if req.html else None,
                marketing=req.marketing,
            )
        )
        await tx.session.flush()
    return row, created


async def ref_attachments(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    """Reference the stored attachments of an inbound mail from its interaction (in the inbox's
    transaction), so they are exported and erased with the person who sent them."""
    if event.channel != CHANNEL:
        return
    for item in event.payload.get("attachments") or []:
        if isinstance(item, dict) and item.get("key"):
            await add_file_ref(
                tx,
                item["key"],
                "interaction",
                applied.interaction_id,
                size=int(item.get("size") or 0),
                customer_id=applied.customer_id,
                name=item.get("name"),
                media_type=item.get("mime_type"),
            )


async def notify_owner(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    """A customer's reply (not an auto-reply) notifies the customer's owner, once per mail."""
    if event.channel != CHANNEL or event.kind == AUTO_REPLY or event.kind != "message_in" or not applied.new_interaction:
        return
    customer = await get_customer(tx.session, applied.customer_id)
    if customer.owner_id is None:
        return
    subject = event.payload.get("subject") or "(no subject)"
    await notify(
        tx,
        NotificationInput(
            user_id=customer.owner_id,
            kind="email.reply",
            title=f"{customer.display_name or applied.external_id} replied: {subject}"[:300],
            body=(event.text or "")[:1000] or None,
            dedupe_key=f"email-reply:{event.provider_event_id}"[:200],
            link_type="customer",
            link_id=customer.id,
        ),
    )
