"""Opaque, stable global ids: ``base64url("<Type>:<uuid>")`` without padding."""

from __future__ import annotations

import base64
import binascii
import uuid

from guanxi.core.base.errors import ValidationError


def to_global_id(type_name: str, value: uuid.UUID) -> str:
    raw = f"{type_name}:{value}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_global_id(global_id: str, *, field: str = "id", expected: str = "global") -> tuple[str, uuid.UUID]:
    """The type name and uuid of a global id of any type; malformed: a validation error."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        return type_name, uuid.UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(f"{global_id!r} is not a valid {expected} id", field=field, code="BAD_ID") from None


def from_global_id(global_id: str, expected: str, *, field: str = "id") -> uuid.UUID:
    """Decode a global id of the expected type; a malformed id or one of another type is a
    validation error naming the field."""
    type_name, value = decode_global_id(global_id, field=field, expected=expected)
    if type_name != expected:
        raise ValidationError(f"{global_id!r} is a {type_name} id, expected a {expected} id", field=field, code="BAD_ID")
    return value
