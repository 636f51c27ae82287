"""What a customer event does beyond core's inbox, in the inbox's transaction: a private message
opens (or moves) the reply window of its conversation; a lead puts its form answers on the
customer's attributes (``douyin_lead``) and its phone number among the customer's phones."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base.context import Actor
from guanxi.core.domain.channels import InboundEvent
from guanxi.core.domain.events import InboundApplied
from guanxi.core.domain.models import Customer
from guanxi.core.runtime import Tx
from guanxi.core.services import customers
from guanxi.plugins.douyin.callbacks import CHANNEL
from guanxi.plugins.douyin.models import DouyinConversation

ACTOR = Actor(kind="system", name="douyin")


def _insert(tx: Tx) -> Any:
    return pg_insert if tx.runtime.engine.dialect.name == "postgresql" else sqlite_insert


async def on_inbound(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    if event.channel != CHANNEL:
        return
    payload = event.payload
    if (
        event.kind in ("message_in", "lead")
        and event.direction == "in"
        and payload.get("conversation_id")
        and payload.get("server_message_id")
    ):
        await _open_window(tx, event, applied)
    if event.kind == "lead":
        await _apply_lead(tx, applied, payload)


async def _open_window(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    """The latest message wins: a late retry of an older one does not move the window back."""
    values = {
        "customer_id": applied.customer_id,
        "conversation_id": str(event.payload["conversation_id"])[:200],
        "server_message_id": str(event.payload["server_message_id"])[:200],
        "last_in_at": event.occurred_at,
    }
    stmt = _insert(tx)(DouyinConversation).values(
        tenant_id=tx.tenant_id, account_open_id=str(event.payload["account_open_id"]), open_id=applied.external_id, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "account_open_id", "open_id"], set_=values, where=DouyinConversation.last_in_at < event.occurred_at
    )
    await tx.session.execute(stmt)


async def _apply_lead(tx: Tx, applied: InboundApplied, payload: dict[str, Any]) -> None:
    customer = await tx.session.get(Customer, (tx.tenant_id, applied.customer_id))
    if customer is None:
        return
    answers = payload.get("answers") or {}
    patch = customers.CustomerPatch(attributes={"douyin_lead": {**answers, "lead_type": payload.get("lead_type")}})
    phone = payload.get("phone")
    if phone and phone not in (customer.phones or []):
        patch.phones = [*(customer.phones or []), str(phone)]
    await customers.update_customer(tx, customer.id, patch)
