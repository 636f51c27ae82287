"""Opaque, stable global ids: ``base64url("<Type>:<uuid>")`` without padding."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from guanxi.core.base.errors import ValidationError

#: the global ids the current operation decoded, by the uuid they name (see :func:`client_ids`)
_sent: ContextVar[dict[str, str] | None] = ContextVar("guanxi_sent_ids", default=None)
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
#: the word before an id the caller did not send -> the type of its global id
_NOUNS = {
    "customer": "Customer",
    "into": "Customer",
    "user": "User",
    "owner": "User",
    "assignee": "User",
    "inviter": "User",
    "task": "Task",
}
_WORD_BEFORE = re.compile(r"(\w+)\W*$")


def to_global_id(type_name: str, value: uuid.UUID) -> str:
    raw = f"{type_name}:{value}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_global_id(global_id: str, *, field: str = "id", expected: str = "global") -> tuple[str, uuid.UUID]:
    """The type name and uuid of a global id of any type; malformed: a validation error."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = uuid.UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(f"{global_id!r} is not a valid {expected} id", field=field, code="BAD_ID") from None
    sent = _sent.get()
    if sent is not None:
        sent.setdefault(str(value), global_id)
    return type_name, value


def from_global_id(global_id: str, expected: str, *, field: str = "id") -> uuid.UUID:
    """Decode a global id of the expected type; a malformed id or one of another type is a
    validation error naming the field."""
    type_name, value = decode_global_id(global_id, field=field, expected=expected)
    if type_name != expected:
        raise ValidationError(f"{global_id!r} is a {type_name} id, expected a {expected} id", field=field, code="BAD_ID")
    return value


@contextmanager
def remembering_sent_ids() -> Iterator[None]:
    """Within this block (one GraphQL operation), remember the global ids the caller sent, so
    that :func:`client_ids` can quote them back."""
    token = _sent.set({})
    try:
        yield
    finally:
        _sent.reset(token)


def client_ids(message: str) -> str:
    """An error message for an API caller: every internal uuid it quotes becomes a global id,
    the very one the caller sent when it sent one, else the id of the type the word before it
    names (``customer <uuid>``, ``owner <uuid>``). Services word their errors with uuids; this
    is the one place that turns them into the API's ids."""
    if "-" not in message:
        return message
    sent = _sent.get() or {}

    def replace(match: re.Match[str]) -> str:
        raw = match.group(0).lower()
        if raw in sent:
            return sent[raw]
        word = _WORD_BEFORE.search(message[: match.start()])
        type_name = _NOUNS.get(word.group(1).lower()) if word else None
        return to_global_id(type_name, uuid.UUID(raw)) if type_name else match.group(0)

    return _UUID.sub(replace, message)
