"""Export and erasure of what the plugin holds on a person (PIPL / GDPR)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralReward, ReferralToken
from guanxi.plugins.referral.poster import forget


async def export(session: Any, customer_id: uuid.UUID) -> dict[str, Any] | None:
    a = (await session.execute(select(ReferralAttribution).where(ReferralAttribution.customer_id == customer_id))).scalar_one_or_none()
    tokens = (
        await session.execute(
            select(ReferralToken.token, ReferralCampaign.key)
            .join(ReferralCampaign, ReferralCampaign.id == ReferralToken.campaign_id)
            .where(ReferralToken.inviter_customer_id == customer_id)
        )
    ).all()
    rewards = (await session.execute(select(ReferralReward).where(ReferralReward.customer_id == customer_id))).scalars().all()
    if a is None and not tokens and not rewards:
        return None
    out: dict[str, Any] = {}
    if a is not None:
        out["referred_by"] = {
            "inviter_customer_id": str(a.inviter_customer_id) if a.inviter_customer_id else None,
            "inviter_user_id": str(a.inviter_user_id) if a.inviter_user_id else None,
            "channel": a.channel,
            "external_id": a.external_id,
            "status": a.status,
            "first_touch": {"channel": a.first_channel, "at": a.first_at.isoformat()},
            "last_touch": {"channel": a.last_channel, "at": a.last_at.isoformat()},
        }
    out["tokens"] = [{"token": t, "campaign": k} for t, k in tokens]
    out["rewards"] = [
        {"kind": r.kind, "points": r.points, "code": r.code, "status": r.status, "created_at": r.created_at.isoformat()} for r in rewards
    ]
    return out


async def erase(session: Any, customer_id: uuid.UUID, poster_cache: Path) -> dict[str, int] | None:
    """Blank the personal values and delete the person's cached posters (their name and avatar
    are drawn on them); keep the rows, so the inviter's referral counts and campaign progress stay
    valid (the erased person still counts, anonymously)."""
    result = await session.execute(
        update(ReferralAttribution)
        .where(ReferralAttribution.customer_id == customer_id, ReferralAttribution.external_id.is_not(None))
        .values(external_id=None)
    )
    tokens = (await session.execute(select(ReferralToken.id).where(ReferralToken.inviter_customer_id == customer_id))).scalars().all()
    posters = sum(forget(poster_cache, str(t)) for t in tokens)
    return {"attributions": int(result.rowcount or 0), "posters": posters}
