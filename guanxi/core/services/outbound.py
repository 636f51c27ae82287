"""The one check every outbound message passes, and its trace on the timeline.

``sendMessage`` (the outbox), a channel plugin's own sends (WeCom mass sends, welcome messages)
and any other path that writes to a customer call :func:`screen_outbound` first: the channel must
be enabled and able to send what is asked (text, attachments, length), and each customer must
exist, must not have opted out of the channel (``NO_CONSENT``), must have an account on it that
no delivery report marked unreachable, and
(for a reply, not for a broadcast) must be inside the channel's messaging window. Whatever is
sent then lands on the customer's timeline through :func:`record_outbound`, an outbound
interaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import desc, func, select

from guanxi.core.base.errors import GuanxiError, NotFoundError, ValidationError
from guanxi.core.domain.channels import CapabilityError
from guanxi.core.domain.models import Consent, Customer, Identity, Interaction, utcnow
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import interactions
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession


class ConsentError(GuanxiError):
    """The customer opted out of the channel."""

    code = "NO_CONSENT"


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """A customer who may be sent to, with the account to send to (the most recent one)."""

    customer_id: uuid.UUID
    identity_id: uuid.UUID
    external_id: str


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A customer who may not be sent to, and why (``code`` as in the API's errors)."""

    customer_id: uuid.UUID
    code: str
    reason: str
    field: str | None = None

    def error(self) -> GuanxiError:
        """The error ``sendMessage`` raises for this refusal."""
        kind = _ERRORS.get(self.code, ValidationError)
        return kind(self.reason, field=self.field)


_ERRORS: dict[str, type[GuanxiError]] = {"NO_CONSENT": ConsentError, "CHANNEL_CAPABILITY": CapabilityError, "NOT_FOUND": NotFoundError}


class Screening(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`screen_outbound`: who may be sent to, and who not with why."""

    allowed: list[Recipient]
    refused: list[Refusal]


async def screen_outbound(
    runtime: Runtime,
    session: TenantSession,
    channel: str,
    customer_ids: Sequence[uuid.UUID],
    *,
    text: str | None,
    attachments: bool = False,
    window: bool = True,
) -> Screening:
    """Check an outbound message to some customers against consent and the channel's policy.

    Raises (for everyone) when the channel is not enabled (``CHANNEL_CAPABILITY``), its plugin is
    disabled for the tenant (``PLUGIN_DISABLED``), cannot send
    text or attachments, or the text is longer than the channel takes (``VALIDATION``, field
    ``text``). Per customer, refuses one that does not exist (``NOT_FOUND``), opted out of the
    channel (``NO_CONSENT``), has no account on it or only one a receipt marked unreachable
    (``VALIDATION``, field ``channel``) or, with
    ``window`` (a reply; a broadcast passes ``False``), whose messaging window has closed
    (``CHANNEL_CAPABILITY``). A merged customer's id stands for the survivor; each customer
    appears once. A fixed number of statements, whatever the number of customers."""
    adapter = await runtime.tenant_channel(session.tenant_id, channel)  # PLUGIN_DISABLED for the tenant
    if adapter is None:
        known = ", ".join(sorted(runtime.channels)) or "none"
        raise CapabilityError(f"no channel {channel!r} is enabled (channels: {known})")
    caps = adapter.capabilities
    if text is not None and not caps.send_text:
        raise CapabilityError(f"channel {channel!r} cannot send text")
    if attachments and not caps.send_media:
        raise CapabilityError(f"channel {channel!r} cannot send attachments")
    if text is not None and caps.max_text_length is not None and len(text) > caps.max_text_length:
        raise ValidationError(f"text is {len(text)} characters; channel {channel!r} takes at most {caps.max_text_length}", field="text")

    refused: list[Refusal] = []
    found = {c.id: c for c in (await session.execute(select(Customer).where(Customer.id.in_(set(customer_ids))))).scalars()}
    targets: list[uuid.UUID] = []
    for cid in dict.fromkeys(customer_ids):
        customer = found.get(cid)
        if customer is not None and customer.merged_into_id is not None:
            try:
                customer = await get_customer(session, cid)
            except NotFoundError:
                customer = None
        if customer is None:
            refused.append(Refusal(customer_id=cid, code="NOT_FOUND", reason=f"customer {cid} not found"))
        elif customer.id not in targets:
            targets.append(customer.id)
    if not targets:
        return Screening(allowed=[], refused=refused)

    no_consent = select(Consent.customer_id).where(
        Consent.customer_id.in_(targets), Consent.channel == channel, Consent.status == "opted_out"
    )
    opted_out = set((await session.execute(no_consent)).scalars())
    latest: dict[uuid.UUID, Any] = {}
    for row in await session.execute(
        select(Identity.customer_id, Identity.id, Identity.external_id, Identity.unreachable_at)
        .where(Identity.customer_id.in_(targets), Identity.channel == channel)
        .order_by(desc(Identity.updated_at))
    ):
        latest.setdefault(row.customer_id, row)
    last_in: dict[uuid.UUID, dt.datetime] = {}
    if window and caps.messaging_window_s is not None:
        rows = await session.execute(
            select(Interaction.customer_id, func.max(Interaction.occurred_at))
            .where(Interaction.customer_id.in_(targets), Interaction.channel == channel, Interaction.direction == "in")
            .group_by(Interaction.customer_id)
        )
        last_in = {cid: at for cid, at in rows.all()}

    allowed: list[Recipient] = []
    for cid in targets:
        identity = latest.get(cid)
        if cid in opted_out:
            refused.append(Refusal(customer_id=cid, code="NO_CONSENT", reason=f"the customer opted out of {channel}; nothing was sent"))
        elif identity is None:
            reason = f"the customer has no {channel} account to send to"
            refused.append(Refusal(customer_id=cid, code="VALIDATION", reason=reason, field="channel"))
        elif identity.unreachable_at is not None:
            reason = (
                f"the customer's {channel} account is unreachable since {identity.unreachable_at.isoformat()} "
                "(a delivery report said so); it becomes reachable again when it writes in"
            )
            refused.append(Refusal(customer_id=cid, code="VALIDATION", reason=reason, field="channel"))
        elif (
            window
            and caps.messaging_window_s is not None
            and (cid not in last_in or utcnow() - last_in[cid] > dt.timedelta(seconds=caps.messaging_window_s))
        ):
            reason = f"the {channel} messaging window ({caps.messaging_window_s} s after the customer's last message) is closed"
            refused.append(Refusal(customer_id=cid, code="CHANNEL_CAPABILITY", reason=reason))
        else:
            allowed.append(Recipient(customer_id=cid, identity_id=identity.id, external_id=identity.external_id))
    return Screening(allowed=allowed, refused=refused)


async def record_outbound(
    tx: Tx,
    recipient: Recipient,
    channel: str,
    *,
    text: str | None,
    dedupe_key: str,
    kind: str = "message_out",
    payload: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> Interaction:
    """Put an outbound message on the customer's timeline (an ``out`` interaction; recording the
    same ``dedupe_key`` twice records it once)."""
    interaction, _ = await interactions.record_interaction(
        tx,
        interactions.InteractionInput(
            customer_id=recipient.customer_id,
            identity_id=recipient.identity_id,
            channel=channel,
            kind=kind,
            direction="out",
            text=text,
            payload=dict(payload or {}),
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
        ),
    )
    return interaction
