"""Relay-style connections: opaque cursors and page-size limits."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import msgspec
import strawberry

from guanxi.core.base.errors import ValidationError


@strawberry.type(description="Relay page information.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


class _Cursor(msgspec.Struct, array_like=True):
    order: str
    kind: str  # "t" timestamp, "s" string, "f" number, "n" null
    value: str
    id: uuid.UUID


def encode_cursor(order: str, value: Any, id_: uuid.UUID) -> str:
    if isinstance(value, dt.datetime):
        cur = _Cursor(order, "t", value.isoformat(), id_)
    elif value is None:
        cur = _Cursor(order, "n", "", id_)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        cur = _Cursor(order, "f", repr(float(value)), id_)
    else:
        cur = _Cursor(order, "s", str(value), id_)
    raw = msgspec.msgpack.encode(cur)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, order: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.msgpack.decode(raw, type=_Cursor)
    except (ValueError, msgspec.DecodeError):
        raise ValidationError("`after` is not a cursor returned by this API", field="after", code="BAD_CURSOR") from None
    if decoded.order != order:
        raise ValidationError(
            "`after` is a cursor of another ordering; keep orderBy the same while paging", field="after", code="BAD_CURSOR"
        )
    value: Any = decoded.value
    if decoded.kind == "t":
        try:
            value = dt.datetime.fromisoformat(decoded.value)
        except ValueError:
            raise ValidationError("`after` is not a cursor returned by this API", field="after", code="BAD_CURSOR") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    elif decoded.kind == "n":
        value = None
    elif decoded.kind == "f":
        try:
            value = float(decoded.value)
        except ValueError:
            raise ValidationError("`after` is not a cursor returned by this API", field="after", code="BAD_CURSOR") from None
    return value, decoded.id


def check_page_size(first: int | None, default: int, maximum: int) -> int:
    if first is None:
        return default
    if first < 0:
        raise ValidationError("`first` must not be negative", field="first", code="BAD_PAGE_SIZE")
    if first > maximum:
        raise ValidationError(f"`first` is {first}; the largest page is {maximum}", field="first", code="BAD_PAGE_SIZE")
    return first
