"""Owner from a salesperson's poster (issue 20 item 4): a customer who arrives through a staff
inviter's token (the ``state`` of their poster's link or QR code on any channel) belongs to that
staff member. The answer goes through core's ``guanxi_assign_owner`` like WeCom's: only for a
customer created without an owner, and a rule of another plugin that answers first (``tryfirst``)
says otherwise."""

from __future__ import annotations

import uuid

from guanxi.core.domain.contracts import Arrival
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.referral.campaigns import token_by_value
from guanxi.plugins.referral.tokens import is_token


async def poster_owner(session: TenantSession, arrival: Arrival | None) -> uuid.UUID | None:
    """The staff inviter of the token the arrival carries; None for no token, a token of another
    tenant (the session's tenant filter finds none) or a customer's token (a customer's
    invitee gets no owner from this rule)."""
    state = arrival.payload.get("state") if arrival is not None else None
    if not isinstance(state, str) or not is_token(state):
        return None
    token = await token_by_value(session, state)
    return token.inviter_user_id if token is not None else None
