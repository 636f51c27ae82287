"""The scoring plugin's own components, computed in SQL after each interaction."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from tests.plugins.scoring.conftest import NOW, Shop

pytestmark = pytest.mark.plugins("scoring")
DAY = dt.timedelta(days=1)


async def test_engagement_points_decay_with_the_configured_half_life(shop: Shop) -> None:
    """A message 30 days old (the default half-life) counts half of a message today."""
    cid = await shop.customer()
    await shop.interact(cid, "message_in", at=NOW)
    await shop.interact(cid, "message_in", at=NOW - 30 * DAY)
    part = (await shop.parts(cid))[("engagement", "message_in@*")]
    assert part.count == 2 and part.skipped == 0
    assert part.value == pytest.approx(5 + 2.5)
