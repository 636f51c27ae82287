"""Social value: a score component from a customer's referral tree (one query per batch)."""

from __future__ import annotations

import uuid
from typing import Any

from guanxi.core.domain.contracts import ScoreComponent
from guanxi.plugins.referral import graph
from guanxi.plugins.referral.settings import ReferralSettings

COMPONENT = "referral.social"


def _fmt(value: float) -> str:
    return f"{value:g}"


async def components(session: Any, customer_ids: list[uuid.UUID], settings: ReferralSettings) -> list[ScoreComponent]:
    """``direct x direct_weight + indirect x indirect_weight + converted x converted_weight``
    for every customer of the batch with at least one referral."""
    found = await graph.stats_of(session, customer_ids, settings.max_depth, settings.converted_stage)
    out = []
    for customer_id, s in found.items():
        parts = [
            (s.direct, settings.direct_weight, "direct referrals"),
            (s.indirect, settings.indirect_weight, "indirect referrals"),
            (s.converted, settings.converted_weight, f"referrals who reached {settings.converted_stage}"),
        ]
        value = sum(n * w for n, w, _ in parts)
        reasons = [f"{n} {what} x {_fmt(w)}" for n, w, what in parts if n]
        out.append(ScoreComponent(customer_id=customer_id, name=COMPONENT, value=value, reasons=reasons))
    return out
