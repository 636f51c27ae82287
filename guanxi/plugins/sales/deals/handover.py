"""Open deals in a staff handover: the departing salesperson's open deals on the handed-over
customers go to the receiver, or stay unowned when the customers go back to a pool. Won and lost
deals keep their owner (they are that salesperson's results)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from guanxi.core.domain.contracts import StaffHandover
from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Tx
from guanxi.plugins.sales.deals.models import SalesDeal


async def hand_over_deals(tx: Tx, handover: StaffHandover) -> dict[str, int]:
    """Reassign (or unown) the open deals; ``{"open_deals": n}`` for the handover result."""
    if not handover.customer_ids:
        return {"open_deals": 0}
    stmt = (
        update(SalesDeal)
        .where(
            SalesDeal.owner_id == handover.from_user_id,
            SalesDeal.status == "open",
            SalesDeal.customer_id.in_(handover.customer_ids),
        )
        .values(owner_id=handover.to_user_id, updated_at=utcnow())
    )
    result: Any = await tx.session.execute(stmt)
    return {"open_deals": int(result.rowcount or 0)}
