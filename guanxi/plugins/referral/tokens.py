"""Attribution tokens: short, unguessable, one per (campaign, inviter)."""

from __future__ import annotations

import re
import secrets
import uuid

TOKEN_BYTES = 16  # 128 random bits
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,30}$")


def new_token() -> str:
    """22 URL-safe characters (128 random bits): fits WeCom's 30-character ``state``."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: str | None) -> bool:
    return value is not None and TOKEN_RE.match(value) is not None


def inviter_key(*, user_id: uuid.UUID | None = None, customer_id: uuid.UUID | None = None) -> str:
    """``u:<id>`` for a staff inviter, ``c:<id>`` for a customer inviter."""
    if (user_id is None) == (customer_id is None):
        raise ValueError("an inviter is exactly one of a staff user or a customer")
    return f"u:{user_id}" if user_id is not None else f"c:{customer_id}"
