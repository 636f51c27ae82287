"""Referral data follows a merge: the survivor takes the merged customer's place in the graph."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CursorResult, delete, insert, select, update

from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.merge_undo import row_json, row_values
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.referral import closure
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCredit, ReferralReward


async def _rowcount(tx: Tx, stmt: Any) -> int:
    result: CursorResult[Any] = await tx.session.execute(stmt)  # type: ignore[assignment]
    return int(result.rowcount or 0)


async def _children(session: Any, inviter: uuid.UUID) -> list[uuid.UUID]:
    A = ReferralAttribution  # noqa: N806 - a table alias
    return list((await session.execute(select(A.customer_id).where(A.inviter_customer_id == inviter))).scalars())


async def follow_merge(tx: Tx, survivor: uuid.UUID, merged: uuid.UUID) -> dict[str, int]:
    """Move the merged customer's referral rows to the survivor.

    * people the merged customer brought in are now the survivor's referrals;
    * the merged customer's own attribution moves to the survivor unless the survivor has one
      (one attribution per person: the survivor's is kept);
    * an attribution that would make the survivor their own inviter or ancestor is dropped (a
      self-referral: the survivor was brought in through the merged customer's own tree, or the
      merged customer through the survivor's);
    * credits and rewards earned as an inviter move with the person.

    The closure follows in the same transaction: the survivor, the merged customer and the
    merged customer's invitees are cut from their ancestors and hung under their new inviters."""
    A = ReferralAttribution  # noqa: N806 - a table alias
    s = tx.session
    children = await _children(s, merged)
    # decided on the graph before the merge: which own attribution would close a loop
    survivor_under_merged = await closure.is_ancestor(s, merged, survivor)
    own = (await s.execute(select(A.inviter_customer_id, A.status).where(A.customer_id == merged))).first()
    merged_inviter = own[0] if own is not None and own[1] == "active" else None
    merged_own_loops = merged_inviter is not None and (merged_inviter == survivor or await closure.is_ancestor(s, survivor, merged_inviter))
    async with closure.rewiring(s, [*children, merged, survivor]):
        moved = await _rowcount(tx, update(A).where(A.inviter_customer_id == merged).values(inviter_customer_id=survivor))
        dropped = await _rowcount(tx, delete(A).where(A.customer_id == survivor, A.inviter_customer_id == survivor))
        if survivor_under_merged:  # the survivor's inviter sits in the merged customer's tree
            dropped += await _rowcount(tx, delete(A).where(A.customer_id == survivor, A.status == "active"))
        has_own = (await s.execute(select(A.customer_id).where(A.customer_id == survivor))).first() is not None
        if has_own or merged_own_loops:
            dropped += int(merged_own_loops and not has_own)
            await s.execute(delete(A).where(A.customer_id == merged))
        else:
            await s.execute(update(A).where(A.customer_id == merged).values(customer_id=survivor))
    old, new = f"c:{merged}", f"c:{survivor}"
    await s.execute(update(ReferralCredit).where(ReferralCredit.inviter_key == old).values(inviter_key=new))
    await s.execute(update(ReferralReward).where(ReferralReward.customer_id == merged).values(customer_id=survivor, inviter_key=new))
    counted = set((await s.execute(select(ReferralCredit.campaign_id).where(ReferralCredit.customer_id == survivor))).scalars())
    credits = (await s.execute(select(ReferralCredit).where(ReferralCredit.customer_id == merged))).scalars().all()
    for credit in credits:  # an invitee counts once per campaign
        if credit.campaign_id in counted:
            await s.delete(credit)
        else:
            await s.execute(
                update(ReferralCredit)
                .where(ReferralCredit.campaign_id == credit.campaign_id, ReferralCredit.customer_id == merged)
                .values(customer_id=survivor)
            )
    result = {"referrals": moved, "self_referrals_dropped": dropped}
    audit(tx, "referral.merge", "customer", survivor, {"merged": str(merged), **result})
    return result


async def merge_record(session: TenantSession, survivor: uuid.UUID, merged: uuid.UUID) -> dict[str, Any] | None:
    """What :func:`follow_merge` will change in the graph, kept by core with the merge: the
    merged customer's invitees and both customers' own attributions (as rows)."""
    A = ReferralAttribution  # noqa: N806 - a table alias
    children = await _children(session, merged)
    rows = {r.customer_id: row_json(r) for r in (await session.execute(select(A).where(A.customer_id.in_([survivor, merged])))).scalars()}
    if not children and merged not in rows:
        return None
    return {"children": [str(c) for c in children], "survivor_own": rows.get(survivor), "merged_own": rows.get(merged)}


async def merge_undone(session: TenantSession, survivor: uuid.UUID, merged: uuid.UUID, record: dict[str, Any]) -> dict[str, int]:
    """Give the merged customer back its invitees and its own attribution, and the survivor the
    attribution it had before (the closure follows, in the undo's transaction). Credits and
    rewards earned as an inviter stay with the survivor."""
    A = ReferralAttribution  # noqa: N806 - a table alias
    children = [uuid.UUID(c) for c in record.get("children", [])]
    before_survivor, before_merged = record.get("survivor_own"), record.get("merged_own")
    async with closure.rewiring(session, [*children, merged, survivor]):
        given = 0
        for start in range(0, len(children), 500):
            result: Any = await session.execute(
                update(A)
                .where(A.customer_id.in_(children[start : start + 500]), A.inviter_customer_id == survivor)
                .values(inviter_customer_id=merged)
            )
            given += int(result.rowcount or 0)
        now = (await session.execute(select(A).where(A.customer_id == survivor))).scalar_one_or_none()
        kept = (
            now is not None
            and before_survivor is not None
            and str(now.first_token_id) == before_survivor["first_token_id"]
            and now.first_at == row_values(A, before_survivor)["first_at"]
        )
        if now is not None and not kept:  # the merged customer's attribution, moved to the survivor
            await session.execute(delete(A).where(A.customer_id == survivor))
        restore = [(merged, before_merged)] + ([] if kept else [(survivor, before_survivor)])
        for customer, before in restore:
            if before is not None:
                await session.execute(delete(A).where(A.customer_id == customer))
                await session.execute(insert(A), [{**row_values(A, before), "tenant_id": session.tenant_id}])
    return {"referrals": given}
