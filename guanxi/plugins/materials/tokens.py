"""Radar tokens: the share's id and an HMAC of it, under a key derived from the server secret.

A token is 43 URL-safe characters: 16 bytes of share id and 16 bytes of HMAC-SHA256 (truncated),
base64url without padding. Whoever changes one character gets a token that does not verify: the
route answers 404 and records nothing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

PURPOSE = b"guanxi.materials.radar.v1"
TOKEN_LEN = 43


def derive_key(server_secret: bytes) -> bytes:
    """The radar key: HMAC(server secret, purpose), so it signs nothing else the secret signs."""
    return hmac.new(server_secret, PURPOSE, hashlib.sha256).digest()


def sign(key: bytes, share_id: uuid.UUID) -> str:
    mac = hmac.new(key, share_id.bytes, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(share_id.bytes + mac).decode().rstrip("=")


def verify(key: bytes, token: str) -> uuid.UUID | None:
    """The share id of a genuine token, None for anything else."""
    if len(token) != TOKEN_LEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32 or not hmac.compare_digest(sign(key, uuid.UUID(bytes=raw[:16])), token):
        return None
    return uuid.UUID(bytes=raw[:16])
