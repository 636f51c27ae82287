"""Attribution: who brought a new contact, with the anti-fraud rules.

Rules, in order (a refused arrival is logged on ``guanxi.referral`` with its reason):

* ``unknown_token``: the state is not a token of this tenant.
* ``self``: the inviter is the person arriving, or shares a union id, phone or email with them.
* ``not_new``: an existing customer arriving with a token is not a referral (unless they already
  have an attribution: then it is a later touch).
* ``duplicate_person``: another customer with the same union id, phone or email already has an
  attribution (one attribution per person across channels).
* ``cycle``: the invitee is already an ancestor of the inviter.
* ``cooldown``: a later touch within ``cooldown_hours`` of the last change is ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import msgspec
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from guanxi.core.base.errors import NotFoundError
from guanxi.core.domain.events import ContactArrived
from guanxi.core.domain.models import ContactPoint, Identity
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.plugins.referral import closure, graph, ledger
from guanxi.plugins.referral.campaigns import token_by_value
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralToken
from guanxi.plugins.referral.settings import ReferralSettings
from guanxi.plugins.referral.tokens import is_token

log = logging.getLogger("guanxi.referral")


async def same_person(tx: Tx, customer_id: uuid.UUID) -> set[uuid.UUID]:
    """Other customers that share a union id, a phone or an email with this one."""
    mine_cp, other_cp = aliased(ContactPoint), aliased(ContactPoint)
    by_contact = (
        select(other_cp.customer_id)
        .join(mine_cp, and_(mine_cp.kind == other_cp.kind, mine_cp.value == other_cp.value))
        .where(mine_cp.customer_id == customer_id, other_cp.customer_id != customer_id)
    )
    mine_id, other_id = aliased(Identity), aliased(Identity)
    by_union = (
        select(other_id.customer_id)
        .join(mine_id, mine_id.union_id == other_id.union_id)
        .where(mine_id.customer_id == customer_id, mine_id.union_id.is_not(None), other_id.customer_id != customer_id)
    )
    rows = await tx.session.execute(by_contact.union(by_union))
    return set(rows.scalars())


class Arrival(msgspec.Struct, frozen=True, kw_only=True):
    """What attribution reads of an arrival: a channel's ``ContactArrived``, or one built from
    ``guanxi_customer_referred`` (a forwarded link of another plugin) with the referrer's token."""

    customer_id: uuid.UUID
    channel: str
    external_id: str
    state: str | None
    new_customer: bool
    occurred_at: dt.datetime


async def _refuse(tx: Tx, event: ContactArrived | Arrival, reason: str) -> str:
    log.info("referral: arrival of %s on %s with state %r refused: %s", event.customer_id, event.channel, event.state, reason)
    audit(tx, "referral.attribution.refuse", "customer", event.customer_id, {"reason": reason, "channel": event.channel})
    return reason


async def attribute(tx: Tx, event: ContactArrived | Arrival, settings: ReferralSettings) -> str:
    """Record (or refuse) the attribution of a contact that arrived with ``event.state``.
    Returns ``attributed``, ``touched`` (a later touch on an existing attribution) or the reason
    of the refusal."""
    if not is_token(event.state):
        return "no_token"
    assert event.state is not None
    token: ReferralToken | None = await token_by_value(tx.session, event.state)
    if token is None:
        return await _refuse(tx, event, "unknown_token")
    try:
        invitee = (await get_customer(tx.session, event.customer_id)).id
    except NotFoundError:
        return "no_customer"
    inviter_customer = token.inviter_customer_id
    if inviter_customer is not None:  # a token minted before its customer was merged: the survivor invites
        try:
            inviter_customer = (await get_customer(tx.session, inviter_customer)).id
        except NotFoundError:
            return await _refuse(tx, event, "unknown_token")
    inviter = f"c:{inviter_customer}" if inviter_customer is not None else token.inviter_key
    twins = await same_person(tx, invitee)
    if inviter_customer is not None and (inviter_customer == invitee or inviter_customer in twins):
        return await _refuse(tx, event, "self")
    campaign = await tx.session.get(ReferralCampaign, (tx.tenant_id, token.campaign_id))
    assert campaign is not None
    at = event.occurred_at
    existing = await tx.session.get(ReferralAttribution, (tx.tenant_id, invitee))
    if existing is None:
        if not event.new_customer:
            return await _refuse(tx, event, "not_new")
        if (
            twins
            and (
                await tx.session.execute(select(ReferralAttribution.customer_id).where(ReferralAttribution.customer_id.in_(twins)))
            ).first()
        ):
            return await _refuse(tx, event, "duplicate_person")
        if inviter_customer is not None and await graph.would_cycle(tx.session, invitee, inviter_customer):
            return await _refuse(tx, event, "cycle")
        attribution = ReferralAttribution(
            customer_id=invitee,
            inviter_customer_id=inviter_customer,
            inviter_user_id=token.inviter_user_id,
            campaign_id=campaign.id,
            channel=event.channel,
            external_id=event.external_id,
            status="active",
            first_token_id=token.id,
            first_channel=event.channel,
            first_at=at,
            last_token_id=token.id,
            last_channel=event.channel,
            last_at=at,
            changed_at=at,
        )
        try:
            async with tx.savepoint():
                tx.session.add(attribution)
                await tx.session.flush()
                if inviter_customer is not None:
                    await closure.attach(tx.session, inviter_customer, invitee)
        except IntegrityError:  # the same person arrived twice at once: the other arrival won
            return "concurrent"
        audit(
            tx,
            "referral.attribute",
            "customer",
            invitee,
            {"campaign": campaign.key, "inviter": inviter, "channel": event.channel},
        )
        if campaign.qualify_stage is None:
            await ledger.credit(tx, campaign, invitee, ledger.attribution_inviter_key(attribution), at)
        return "attributed"
    if existing.status != "active":
        return await _refuse(tx, event, "left")
    if at - existing.changed_at < dt.timedelta(hours=settings.cooldown_hours):
        return await _refuse(tx, event, "cooldown")
    if (
        settings.attribution_model == "last_touch"
        and inviter_customer is not None
        and await graph.would_cycle(tx.session, invitee, inviter_customer)
    ):
        return await _refuse(tx, event, "cycle")
    existing.last_token_id, existing.last_channel, existing.last_at, existing.changed_at = token.id, event.channel, at, at
    if settings.attribution_model == "last_touch":
        async with closure.rewiring(tx.session, [invitee]):  # the invitee's subtree moves with them
            existing.inviter_customer_id, existing.inviter_user_id = inviter_customer, token.inviter_user_id
            existing.campaign_id, existing.channel = campaign.id, event.channel
    audit(
        tx,
        "referral.touch",
        "customer",
        invitee,
        {"campaign": campaign.key, "inviter": inviter, "model": settings.attribution_model},
    )
    return "touched"


async def on_stage(tx: Tx, customer_id: uuid.UUID, stage_key: str, at: dt.datetime) -> bool:
    """An invitee reached a stage: credit the inviter in a campaign that qualifies on it."""
    attribution = await tx.session.get(ReferralAttribution, (tx.tenant_id, customer_id))
    if attribution is None or attribution.status != "active":
        return False
    campaign = await tx.session.get(ReferralCampaign, (tx.tenant_id, attribution.campaign_id))
    if campaign is None or campaign.qualify_stage != stage_key:
        return False
    return await ledger.credit(tx, campaign, customer_id, ledger.attribution_inviter_key(attribution), at)
