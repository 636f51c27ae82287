"""Audit trail: one AuditEvent per change, written in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any

from guanxi.core.domain.models import AuditEvent
from guanxi.core.runtime import Tx

PERSONAL_FIELDS = frozenset(
    {"display_name", "phones", "emails", "company", "text", "nickname", "external_id", "union_id", "title", "notes", "recipient"}
)


def mask(value: Any) -> Any:
    """Mask a personal value for the audit log: keep its shape, hide its content."""
    if value is None:
        return None
    if isinstance(value, list):
        return [mask(v) for v in value]
    text = str(value)
    if len(text) <= 2:
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 2) + text[-1]


def audit(tx: Tx, action: str, object_type: str, object_id: uuid.UUID | None, changes: dict[str, Any] | None = None) -> None:
    """Record that the transaction's actor did ``action`` to an object. Personal values are masked."""
    safe: dict[str, Any] = {}
    for key, value in (changes or {}).items():
        if key in PERSONAL_FIELDS:
            if isinstance(value, list | tuple) and len(value) == 2 and action.endswith("update"):
                safe[key] = [mask(value[0]), mask(value[1])]
            else:
                safe[key] = mask(value)
        else:
            safe[key] = _jsonable(value)
    tx.session.add(
        AuditEvent(
            actor_id=tx.ctx.actor.user_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            changes={"actor": tx.ctx.actor.name, **safe},
        )
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
