"""Referral data follows a merge: the survivor takes the merged customer's place in the graph."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CursorResult, delete, select, update

from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCredit, ReferralReward


async def _rowcount(tx: Tx, stmt: Any) -> int:
    result: CursorResult[Any] = await tx.session.execute(stmt)  # type: ignore[assignment]
    return int(result.rowcount or 0)


async def follow_merge(tx: Tx, survivor: uuid.UUID, merged: uuid.UUID) -> dict[str, int]:
    """Move the merged customer's referral rows to the survivor.

    * people the merged customer brought in are now the survivor's referrals;
    * the merged customer's own attribution moves to the survivor unless the survivor has one
      (one attribution per person: the survivor's is kept);
    * an attribution that would make the survivor their own inviter is dropped (self-referral);
    * credits and rewards earned as an inviter move with the person."""
    A = ReferralAttribution  # noqa: N806 - a table alias
    moved = await _rowcount(tx, update(A).where(A.inviter_customer_id == merged).values(inviter_customer_id=survivor))
    dropped = await _rowcount(tx, delete(A).where(A.customer_id == survivor, A.inviter_customer_id == survivor))
    has_own = (await tx.session.execute(select(A.customer_id).where(A.customer_id == survivor))).first() is not None
    if has_own:
        await tx.session.execute(delete(A).where(A.customer_id == merged))
    else:
        await tx.session.execute(update(A).where(A.customer_id == merged).values(customer_id=survivor))
    old, new = f"c:{merged}", f"c:{survivor}"
    await tx.session.execute(update(ReferralCredit).where(ReferralCredit.inviter_key == old).values(inviter_key=new))
    await tx.session.execute(
        update(ReferralReward).where(ReferralReward.customer_id == merged).values(customer_id=survivor, inviter_key=new)
    )
    counted = set((await tx.session.execute(select(ReferralCredit.campaign_id).where(ReferralCredit.customer_id == survivor))).scalars())
    credits = (await tx.session.execute(select(ReferralCredit).where(ReferralCredit.customer_id == merged))).scalars().all()
    for credit in credits:  # an invitee counts once per campaign
        if credit.campaign_id in counted:
            await tx.session.delete(credit)
        else:
            await tx.session.execute(
                update(ReferralCredit)
                .where(ReferralCredit.campaign_id == credit.campaign_id, ReferralCredit.customer_id == merged)
                .values(customer_id=survivor)
            )
    result = {"referrals": moved, "self_referrals_dropped": dropped}
    audit(tx, "referral.merge", "customer", survivor, {"merged": str(merged), **result})
    return result
