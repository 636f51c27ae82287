"""Campaign credit and the reward ledger: qualify an invite, reward the goal, reverse both
when an invitee leaves within the campaign's reversal window, redeem a reward."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import func, select

from guanxi.core.base.errors import ConflictError, NotFoundError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import ReferralProgress
from guanxi.core.domain.models import Task, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.plugins.referral.campaigns import in_window
from guanxi.plugins.referral.closure import rewiring
from guanxi.plugins.referral.models import (
    ReferralAttribution,
    ReferralCampaign,
    ReferralCoupon,
    ReferralCredit,
    ReferralReward,
    ReferralToken,
)

log = logging.getLogger("guanxi.referral")


def _inviter_ids(key: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(customer id, user id) of an inviter key."""
    kind, _, raw = key.partition(":")
    return (uuid.UUID(raw), None) if kind == "c" else (None, uuid.UUID(raw))


def attribution_inviter_key(attribution: ReferralAttribution) -> str:
    if attribution.inviter_customer_id is not None:
        return f"c:{attribution.inviter_customer_id}"
    return f"u:{attribution.inviter_user_id}"


async def _lock_inviter(tx: Tx, campaign_id: uuid.UUID, key: str) -> None:
    """Serialise count-and-reward per (campaign, inviter): on PostgreSQL, lock the inviter's token
    row, so two invitees qualifying at once cannot both see the count reach the goal (SQLite
    already runs one writer at a time)."""
    await tx.session.execute(
        select(ReferralToken.id).where(ReferralToken.campaign_id == campaign_id, ReferralToken.inviter_key == key).with_for_update()
    )


async def qualified_count(tx: Tx, campaign_id: uuid.UUID, key: str) -> int:
    stmt = select(func.count()).where(
        ReferralCredit.campaign_id == campaign_id, ReferralCredit.inviter_key == key, ReferralCredit.reversed_at.is_(None)
    )
    return int((await tx.session.execute(stmt)).scalar_one())


async def _live_reward(tx: Tx, campaign_id: uuid.UUID, key: str) -> ReferralReward | None:
    stmt = select(ReferralReward).where(
        ReferralReward.campaign_id == campaign_id, ReferralReward.inviter_key == key, ReferralReward.status != "reversed"
    )
    return (await tx.session.execute(stmt.limit(1))).scalar_one_or_none()


def _progress(tx: Tx, campaign: ReferralCampaign, key: str, qualified: int, rewarded: bool) -> None:
    customer_id, user_id = _inviter_ids(key)
    tx.emit(
        "guanxi_referral_progress",
        ReferralProgress(
            tenant_id=tx.tenant_id,
            actor=tx.ctx.actor,
            campaign_id=campaign.id,
            campaign_name=campaign.name,
            inviter_customer_id=customer_id,
            inviter_user_id=user_id,
            qualified=qualified,
            goal=campaign.goal,
            rewarded=rewarded,
        ),
    )


async def _grant(tx: Tx, campaign: ReferralCampaign, key: str, invitee: uuid.UUID) -> ReferralReward | None:
    customer_id, user_id = _inviter_ids(key)
    reward = ReferralReward(
        id=new_id(),
        campaign_id=campaign.id,
        inviter_key=key,
        customer_id=customer_id,
        user_id=user_id,
        kind=campaign.reward_kind or "points",
        points=campaign.reward_points if campaign.reward_kind == "points" else 0,
        status="granted",
        created_at=utcnow(),
    )
    if campaign.reward_kind == "coupon":
        coupon = (
            await tx.session.execute(
                select(ReferralCoupon)
                .where(ReferralCoupon.campaign_id == campaign.id, ReferralCoupon.reward_id.is_(None))
                .order_by(ReferralCoupon.code)
                .limit(1)
                .with_for_update(skip_locked=True)  # PostgreSQL: two rewards at once never share a code
            )
        ).scalar_one_or_none()
        if coupon is None:  # the credit stays; the reward is granted at the next credit once codes are added
            log.warning("referral campaign %r has no coupon code left; reward for %s not granted", campaign.key, key)
            return None
        coupon.reward_id = reward.id
        reward.code = coupon.code
    elif campaign.reward_kind == "task":
        # the gift is handed over to the inviter (a customer) or about the invitee (staff inviter)
        title = campaign.reward_title or f"Hand over the {campaign.name} gift"
        task = await create_task(tx, TaskInput(customer_id=customer_id or invitee, title=title, assignee_id=user_id))
        reward.task_id = task.id
    tx.session.add(reward)
    await tx.session.flush()
    audit(tx, "referral.reward.grant", "referral_reward", reward.id, {"campaign": campaign.key, "kind": reward.kind, "inviter": key})
    return reward


async def credit(tx: Tx, campaign: ReferralCampaign, invitee: uuid.UUID, key: str, at: dt.datetime) -> bool:
    """Count ``invitee`` as a qualified invite of ``key`` in ``campaign`` (once), reward the
    goal, and emit the progress. Returns whether a credit was written."""
    if not in_window(campaign, at) or campaign.goal <= 0:
        return False
    if await tx.session.get(ReferralCredit, (tx.tenant_id, campaign.id, invitee)) is not None:
        return False
    await _lock_inviter(tx, campaign.id, key)
    tx.session.add(ReferralCredit(campaign_id=campaign.id, customer_id=invitee, inviter_key=key, qualified_at=at))
    await tx.session.flush()
    qualified = await qualified_count(tx, campaign.id, key)
    reward = await _live_reward(tx, campaign.id, key)
    if reward is None and qualified >= campaign.goal:
        reward = await _grant(tx, campaign, key, invitee)
    _progress(tx, campaign, key, qualified, reward is not None)
    return True


async def reverse(tx: Tx, attribution: ReferralAttribution, at: dt.datetime) -> bool:
    """The invitee left: if within the campaign's reversal window, mark the attribution ``left``,
    reverse the credit, and reverse the reward if the count fell below the goal and the reward
    was not redeemed yet. Returns whether anything was reversed."""
    campaign = await tx.session.get(ReferralCampaign, (tx.tenant_id, attribution.campaign_id))
    if campaign is None or attribution.status != "active":
        return False
    if at - attribution.first_at > dt.timedelta(days=campaign.reversal_days):
        return False
    async with rewiring(tx.session, [attribution.customer_id]):  # no longer a referral: the edge goes
        attribution.status, attribution.left_at = "left", at
    audit(tx, "referral.attribution.left", "customer", attribution.customer_id, {"campaign": campaign.key})
    credit_row = await tx.session.get(ReferralCredit, (tx.tenant_id, campaign.id, attribution.customer_id))
    if credit_row is None or credit_row.reversed_at is not None:
        return True
    key = credit_row.inviter_key
    await _lock_inviter(tx, campaign.id, key)
    credit_row.reversed_at = at
    await tx.session.flush()
    qualified = await qualified_count(tx, campaign.id, key)
    reward = await _live_reward(tx, campaign.id, key)
    if reward is not None and reward.status == "granted" and qualified < campaign.goal:
        reward.status, reward.reversed_at = "reversed", at
        if reward.code is not None:  # the code goes back to the pool
            coupon = await tx.session.get(ReferralCoupon, (tx.tenant_id, campaign.id, reward.code))
            if coupon is not None:
                coupon.reward_id = None
        if reward.task_id is not None:  # no gift to hand over any more
            task = await tx.session.get(Task, (tx.tenant_id, reward.task_id))
            if task is not None and task.done_at is None:
                task.done_at = at
                task.notes = ((task.notes or "") + "\nCancelled: the referral reward was reversed.").strip()
        audit(tx, "referral.reward.reverse", "referral_reward", reward.id, {"campaign": campaign.key})
        reward = None
    _progress(tx, campaign, key, qualified, reward is not None)
    return True


async def redeem(tx: Tx, reward_id: uuid.UUID) -> ReferralReward:
    """Mark a granted reward handed over; a redeemed reward is no longer reversed."""
    reward = await tx.session.get(ReferralReward, (tx.tenant_id, reward_id))
    if reward is None:
        raise NotFoundError(f"referral reward {reward_id} not found", field="id")
    if reward.status == "reversed":
        raise ConflictError("this reward was reversed: the invitee left", field="id")
    if reward.status == "granted":
        reward.status, reward.redeemed_at = "redeemed", utcnow()
        audit(tx, "referral.reward.redeem", "referral_reward", reward.id)
    return reward
