"""The append-only interaction timeline."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base.errors import ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import InteractionRecorded
from guanxi.core.domain.models import Interaction, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import ALL_OWNERS

DIRECTIONS = frozenset({"in", "out", "internal"})
#: Kinds core knows; plugins may record others (lower_snake_case).
KNOWN_KINDS = frozenset(
    {
        "message_in",
        "message_out",
        "comment",
        "follow",
        "unfollow",
        "scan",
        "email_open",
        "click",
        "purchase",
        "note",
        "call",
        "visit",
        "meeting",
        "contract",
        "payment",
        "form",
    }
)


class InteractionInput(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    channel: str
    kind: str
    direction: str = "in"
    occurred_at: dt.datetime | None = None
    text: str | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    dedupe_key: str | None = None
    identity_id: uuid.UUID | None = None


def _validate(data: InteractionInput) -> None:
    if data.direction not in DIRECTIONS:
        raise ValidationError(f"direction must be one of {sorted(DIRECTIONS)}, not {data.direction!r}", field="direction")
    for name in ("channel", "kind"):
        value = getattr(data, name)
        if not value or not value.replace("_", "").isalnum() or not value.islower() or len(value) > 32:
            raise ValidationError(f"{name} must be lower_snake_case, 1 to 32 characters, not {value!r}", field=name)
    if data.dedupe_key is not None and not 0 < len(data.dedupe_key) <= 200:
        raise ValidationError("dedupe key must be 1 to 200 characters", field="dedupeKey")
    if data.occurred_at is not None and data.occurred_at.tzinfo is None:
        raise ValidationError("occurredAt must carry a time zone", field="occurredAt")


async def unrecorded_keys(tx: Tx, keys: list[str]) -> set[str]:
    """Those of ``keys`` (dedupe keys) no interaction of the tenant carries yet: one statement."""
    if not keys:
        return set()
    stmt = select(Interaction.dedupe_key).where(Interaction.dedupe_key.in_(keys)).execution_options(**{ALL_OWNERS: True})
    return set(keys) - set((await tx.session.execute(stmt)).scalars())


async def record_interaction(tx: Tx, data: InteractionInput, *, unrecorded: bool = False) -> tuple[Interaction, bool]:
    """Append an interaction. Returns ``(interaction, created)``: with a ``dedupe_key`` already
    recorded, the existing row comes back with ``created=False`` and no event fires.

    ``unrecorded``: the caller found the dedupe key unused in this transaction
    (:func:`unrecorded_keys`), so the row is added to the session and inserted at its next flush,
    with the other rows of a batch in one statement (a writer that recorded the key meanwhile
    makes that flush fail on the unique key, and the caller's transaction with it)."""
    _validate(data)
    session = tx.session
    customer = await get_customer(session, data.customer_id)
    occurred = (data.occurred_at or utcnow()).astimezone(dt.UTC)
    row = Interaction(
        id=new_id(),
        customer_id=customer.id,
        identity_id=data.identity_id,
        channel=data.channel,
        kind=data.kind,
        direction=data.direction,
        occurred_at=occurred,
        recorded_at=utcnow(),
        text=data.text,
        payload=dict(data.payload),
        dedupe_key=data.dedupe_key,
        actor_id=tx.ctx.actor.user_id,
    )
    if data.dedupe_key is None or unrecorded:
        session.add(row)
        if not unrecorded:
            await session.flush()
    else:
        # One statement: a replay (or a concurrent writer with the same key) inserts nothing.
        insert = pg_insert if tx.runtime.engine.dialect.name == "postgresql" else sqlite_insert
        values = {c.key: getattr(row, c.key) for c in Interaction.__mapper__.column_attrs if c.key != "tenant_id"}
        stmt = insert(Interaction).values(tenant_id=tx.tenant_id, **values).on_conflict_do_nothing().returning(Interaction.id)
        if (await session.execute(stmt)).scalar_one_or_none() is None:
            existing = (await session.execute(select(Interaction).where(Interaction.dedupe_key == data.dedupe_key))).scalar_one()
            return existing, False
    if customer.last_interaction_at is None or occurred > customer.last_interaction_at:
        customer.last_interaction_at = occurred
    if tx.ctx.actor.kind in ("user", "apikey"):
        # recorded by a person or an API client (channel traffic is traced by the inbox instead)
        audit(tx, "interaction.record", "customer", customer.id, {"channel": row.channel, "kind": row.kind, "text": row.text})
    tx.emit(
        "guanxi_interaction_recorded",
        InteractionRecorded(
            tenant_id=tx.tenant_id,
            actor=tx.ctx.actor,
            interaction_id=row.id,
            customer_id=customer.id,
            channel=row.channel,
            kind=row.kind,
            direction=row.direction,
            occurred_at=occurred,
            text=row.text,
            payload=row.payload,
        ),
    )
    return row, True
