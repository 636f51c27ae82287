"""The plugin's part of the GraphQL schema: ``sendEmail`` and ``Customer.email`` (addresses,
their deliverability, suppression). Mailboxes are channel accounts: ``saveChannelAccount(channel:
"email", …)``, ``channelAccounts(channel: "email")``."""

from __future__ import annotations

import datetime as dt
import enum
import imaplib
import uuid
from collections.abc import Sequence
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from guanxi import DeliveryError, ValidationError
from guanxi.core.domain.models import Consent, Identity
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id
from guanxi.graphql.messaging import Message, SendMessagePayload
from guanxi.plugins.email import imap, mailboxes, service
from guanxi.plugins.email.models import EmailAddress
from guanxi.plugins.email.settings import CHANNEL


@strawberry.enum(description="Why an address is not sent to.")
class EmailSuppression(enum.Enum):
    HARD_BOUNCE = strawberry.enum_value("hard_bounce", description="a permanent (5.x.x) bounce")
    SOFT_BOUNCES = strawberry.enum_value("soft_bounces", description="too many temporary (4.x.x) bounces")
    COMPLAINT = strawberry.enum_value("complaint", description="the person reported a message as spam (feedback loop)")
    UNSUBSCRIBED = strawberry.enum_value("unsubscribed", description="the person unsubscribed")


@strawberry.enum(description="Whether email may be sent to an address.")
class EmailAddressStatus(enum.Enum):
    ACTIVE = strawberry.enum_value("active", description="sendable")
    SUPPRESSED = strawberry.enum_value("suppressed", description="suppressed: see `suppression`")


@strawberry.type(description="One of the customer's email addresses (an `email` identity) and its deliverability.")
class CustomerEmailAddress:
    address: str
    status: EmailAddressStatus
    suppression: EmailSuppression | None
    suppressed_at: dt.datetime | None
    soft_bounces: int
    hard_bounces: int
    complaints: int
    last_error: str | None


@strawberry.type(description="The customer as the email channel knows it.")
class CustomerEmail:
    addresses: list[CustomerEmailAddress]
    opted_out: bool = strawberry.field(description="The customer withdrew email consent (unsubscribe, complaint).")


async def _load(info: Info, ids: Sequence[uuid.UUID]) -> list[CustomerEmail | None]:
    """Three queries for every customer on the page: identities, deliverability, consent."""
    execute = info.context.loaders.execute
    wanted = list(ids)
    identities = (
        await execute(
            select(Identity.customer_id, Identity.external_id).where(Identity.customer_id.in_(wanted), Identity.channel == CHANNEL)
        )
    ).all()
    if not identities:
        return [None for _ in ids]
    rows = {r.address: r for r in (await execute(select(EmailAddress).where(EmailAddress.customer_id.in_(wanted)))).scalars()}
    opted = set(
        (
            await execute(
                select(Consent.customer_id).where(
                    Consent.customer_id.in_(wanted), Consent.channel == CHANNEL, Consent.status == "opted_out"
                )
            )
        ).scalars()
    )
    by_customer: dict[uuid.UUID, list[CustomerEmailAddress]] = {}
    for customer_id, address in identities:
        row = rows.get(address)
        by_customer.setdefault(customer_id, []).append(
            CustomerEmailAddress(
                address=address,
                status=EmailAddressStatus.SUPPRESSED if row is not None and row.suppressed else EmailAddressStatus.ACTIVE,
                suppression=EmailSuppression(row.suppressed) if row is not None and row.suppressed else None,
                suppressed_at=row.suppressed_at if row is not None else None,
                soft_bounces=row.soft_bounces if row is not None else 0,
                hard_bounces=row.hard_bounces if row is not None else 0,
                complaints=row.complaints if row is not None else 0,
                last_error=row.last_error if row is not None else None,
            )
        )
    return [
        CustomerEmail(addresses=sorted(by_customer[c], key=lambda a: a.address), opted_out=c in opted) if c in by_customer else None
        for c in ids
    ]


@strawberry.type
class CustomerEmailField:
    @strawberry.field(description="Email addresses, their deliverability and suppression; null when the customer has none.")
    async def email(self, info: Info) -> CustomerEmail | None:
        state = info.context.state
        loader = state.get("email_addresses")
        if loader is None:

            async def load(ids: list[uuid.UUID]) -> list[CustomerEmail | None]:
                return await _load(info, ids)

            loader = state["email_addresses"] = DataLoader(load_fn=load)
        return await loader.load(self.uuid)  # type: ignore[attr-defined]


def _variables(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("variables must be a JSON object", field="variables")
    return {str(k): v for k, v in value.items()}


@strawberry.type
class EmailPollPayload:
    stored: int = strawberry.field(default=0, description="Messages stored in the inbox by this poll.")
    duplicates: int = strawberry.field(default=0, description="Messages the inbox had already (by Message-ID).")
    last_uid: int = strawberry.field(default=0, description="The highest IMAP UID read so far.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.enum(description="How a mailbox receives mail from its IMAP folder.")
class EmailReceiving(enum.Enum):
    OFF = strawberry.enum_value("off", description="not from IMAP (no IMAP host, or `pollEmailMailbox` never switched it on)")
    POLLING = strawberry.enum_value("polling", description="polled every minute (the server offers no IDLE, or IDLE is reconnecting)")
    IDLE = strawberry.enum_value("idle", description="a worker holds an IMAP IDLE connection: new mail is read as it arrives")


@strawberry.enum(description="Whether a mailbox works.")
class EmailMailboxStatus(enum.Enum):
    OK = strawberry.enum_value("ok", description="its last SMTP login, poll and IDLE connection worked")
    FAILING = strawberry.enum_value("failing", description="something failed: see `lastError`")


@strawberry.type(description="One of the tenant's mailboxes (an `email` channel account) and how it receives.")
class EmailMailbox:
    key: str
    address: str
    receiving: EmailReceiving
    status: EmailMailboxStatus
    last_error: str | None = strawberry.field(
        description="The newest error of its SMTP login, IMAP poll or IDLE connection (never a secret)."
    )
    last_uid: int | None = strawberry.field(description="The highest IMAP UID of its folder stored in the inbox.")
    polled_at: dt.datetime | None = strawberry.field(description="When its folder was last read.")

    @classmethod
    def of(cls, s: mailboxes.MailboxStatus) -> EmailMailbox:
        return cls(
            key=s.key,
            address=s.address,
            receiving=EmailReceiving(s.receiving),
            status=EmailMailboxStatus.FAILING if s.failing else EmailMailboxStatus.OK,
            last_error=s.last_error,
            last_uid=s.last_uid,
            polled_at=s.polled_at,
        )


@strawberry.type
class EmailQuery:
    @strawberry.field(description="The tenant's mailboxes: how each receives, and what last went wrong with it.")
    async def email_mailboxes(self, info: Info) -> list[EmailMailbox]:
        return [EmailMailbox.of(s) for s in await mailboxes.statuses(info.context.rt, info.context.ctx.tenant_id)]


@strawberry.type
class EmailMutation:
    @strawberry.mutation(
        description="Queue an email to a customer through the outbox (consent and suppression checked). `{{ name }}` in "
        "`subject`, `text` and `html` is the customer's field or a variable (escaped in HTML). Marketing mail carries "
        "one-click unsubscribe and open/click tracking."
    )
    async def send_email(
        self,
        info: Info,
        customer_id: strawberry.ID,
        subject: str,
        text: str,
        idempotency_key: str,
        html: str | None = None,
        variables: strawberry.scalars.JSON | None = None,
        mailbox: str | None = None,
        marketing: bool = False,
    ) -> SendMessagePayload:
        async def run() -> SendMessagePayload:
            request = service.EmailRequest(
                customer_id=from_global_id(customer_id, "Customer", field="customerId"),
                subject=subject,
                text=text,
                html=html,
                variables=_variables(variables),
                idempotency_key=idempotency_key,
                mailbox=mailbox,
                marketing=marketing,
            )
            async with info.context.transaction() as tx:
                row, created = await service.send_email(tx, request)
            return SendMessagePayload(message=Message.from_model(row), created=created)

        return await as_payload(run, SendMessagePayload)

    @strawberry.mutation(
        description="Read a mailbox's IMAP folder into the inbox now, and switch receiving on: a worker keeps an IMAP IDLE "
        "connection where the server offers IDLE, and it is polled every minute otherwise."
    )
    async def poll_email_mailbox(self, info: Info, mailbox: str) -> EmailPollPayload:
        async def run() -> EmailPollPayload:
            runtime, tenant_id = info.context.rt, info.context.ctx.tenant_id
            try:
                result = await imap.poll(runtime, tenant_id, mailbox)
            except (OSError, imaplib.IMAP4.error) as exc:
                raise DeliveryError(f"the IMAP server failed: {imap.error_text(exc)}"[:300]) from None
            await imap.schedule(runtime, tenant_id, mailbox)
            return EmailPollPayload(stored=result.stored, duplicates=result.duplicates, last_uid=result.last_uid)

        return await as_payload(run, EmailPollPayload)


def contribution() -> GraphQLContribution:
    return GraphQLContribution(query=EmailQuery, mutation=EmailMutation, extend={"Customer": CustomerEmailField})
