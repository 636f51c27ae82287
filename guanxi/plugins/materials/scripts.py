"""Scripts (话术): reply snippets by scene, with ``{{variable}}`` placeholders filled from the
customer, searched by words, sent through core's outbox like any message (consent, channel
capabilities and idempotency apply), and counted per salesperson."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
from sqlalchemy import Select, or_, select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.models import Customer, OutboxMessage, utcnow
from guanxi.core.queues import outbox
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.plugins.materials.models import Script, ScriptUse

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
SCENE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_TEXT = 4000


class ScriptInput(msgspec.Struct, kw_only=True):
    scene: str
    title: str
    text: str


def variables(text: str) -> list[str]:
    """The variable names of ``text``, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(text)))


def _values(customer: Customer) -> dict[str, str]:
    """``name`` and ``company`` from the customer, then every scalar custom field by its key."""
    out = {k: str(v) for k, v in (customer.attributes or {}).items() if isinstance(v, str | int | float) and not isinstance(v, bool)}
    out["name"] = customer.display_name
    if customer.company:
        out["company"] = customer.company
    return out


def render(text: str, customer: Customer) -> str:
    """``text`` with its variables filled.

    :raises ValidationError: naming every variable the customer has no value for.
    """
    values = _values(customer)
    missing = [v for v in variables(text) if v not in values]
    if missing:
        raise ValidationError(f"the customer has no value for {', '.join('{{' + m + '}}' for m in missing)}", field="text")
    return VARIABLE.sub(lambda m: values[m.group(1)], text)


async def create_script(tx: Tx, data: ScriptInput) -> Script:
    if not SCENE.match(data.scene):
        raise ValidationError(f"scene must be lower_snake_case, 1 to 64 characters, not {data.scene[:70]!r}", field="scene")
    if not 0 < len(data.title.strip()) <= 200:
        raise ValidationError("title must be 1 to 200 characters", field="title")
    if not data.text.strip() or len(data.text) > MAX_TEXT:
        raise ValidationError(f"text must be 1 to {MAX_TEXT} characters", field="text")
    row = Script(scene=data.scene, title=data.title.strip(), text=data.text, created_by=tx.ctx.actor.user_id)
    tx.session.add(row)
    await tx.session.flush()
    audit(tx, "script.create", "script", row.id, {"scene": row.scene, "title": row.title})
    return row


def _like(words: str) -> str:
    return "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_stmt(*, scene: str | None = None, search: str | None = None) -> Select[Any]:
    stmt = select(Script)
    if scene is not None:
        stmt = stmt.where(Script.scene == scene)
    for word in (search or "").split():
        pattern = _like(word)
        stmt = stmt.where(or_(Script.title.like(pattern, escape="\\"), Script.text.like(pattern, escape="\\")))
    return stmt.order_by(Script.scene, Script.title, Script.id)


async def get_script(session: Any, script_id: uuid.UUID) -> Script:
    found: Script | None = (await session.execute(select(Script).where(Script.id == script_id))).scalar_one_or_none()
    if found is None:
        raise NotFoundError("script not found")
    return found


async def send_script(
    tx: Tx, script_id: uuid.UUID, customer_id: uuid.UUID, channel: str, idempotency_key: str
) -> tuple[OutboxMessage, bool]:
    """Fill the script for the customer and queue it through core's ``send_message``; the first
    send of an idempotency key counts one use for the caller."""
    script = await get_script(tx.session, script_id)
    customer = await get_customer(tx.session, customer_id)
    text = render(script.text, customer)
    row, created = await outbox.send_message(
        tx, outbox.SendRequest(customer_id=customer.id, channel=channel, idempotency_key=idempotency_key, text=text)
    )
    user = tx.ctx.actor.user_id
    if created and user is not None:
        use = await tx.session.get(ScriptUse, (tx.tenant_id, script.id, user))
        if use is None:
            tx.session.add(ScriptUse(script_id=script.id, user_id=user, count=1, last_used_at=utcnow()))
        else:
            use.count += 1
            use.last_used_at = utcnow()
    return row, created


async def uses_of(session: Any, script_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ScriptUse]]:
    """The uses of every script, most used first (one statement)."""
    out: dict[uuid.UUID, list[ScriptUse]] = {i: [] for i in script_ids}
    if script_ids:
        rows = (
            await session.execute(select(ScriptUse).where(ScriptUse.script_id.in_(script_ids)).order_by(ScriptUse.count.desc()))
        ).scalars()
        for u in rows:
            out[u.script_id].append(u)
    return out
