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


def decode_cursor(cursor: str, order: str, field: str = "after") -> tuple[Any, uuid.UUID]:
    """The (sort value, id) a cursor holds; ``field`` names the argument (``after``, ``before``)."""
    bad = ValidationError(f"`{field}` is not a cursor returned by this API", field=field, code="BAD_CURSOR")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.msgpack.decode(raw, type=_Cursor)
    except (ValueError, msgspec.DecodeError):
        raise bad from None
    if decoded.order != order:
        raise ValidationError(
            f"`{field}` is a cursor of another ordering; keep orderBy the same while paging", field=field, code="BAD_CURSOR"
        )
    value: Any = decoded.value
    if decoded.kind == "t":
        try:
            value = dt.datetime.fromisoformat(decoded.value)
        except ValueError:
            raise bad from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    elif decoded.kind == "n":
        value = None
    elif decoded.kind == "f":
        try:
            value = float(decoded.value)
        except ValueError:
            raise bad from None
    return value, decoded.id


def check_page_size(first: int | None, default: int, maximum: int, field: str = "first") -> int:
    """The page size asked (``first``, or ``last`` when ``field`` says so), or the default."""
    if first is None:
        return default
    if first < 0:
        raise ValidationError(f"`{field}` must not be negative", field=field, code="BAD_PAGE_SIZE")
    if first > maximum:
        raise ValidationError(f"`{field}` is {first}; the largest page is {maximum}", field=field, code="BAD_PAGE_SIZE")
    return first


class Window(msgspec.Struct, frozen=True):
    """Which page of a connection was asked: ``size`` rows after ``cursor`` (forward, ``first``
    and ``after``) or before it (``backward``: ``last`` and ``before``), as (sort value, id)."""

    size: int
    cursor: tuple[Any, uuid.UUID] | None
    backward: bool
    given_cursor: bool


def page_window(
    first: int | None, after: str | None, last: int | None, before: str | None, order: str, default: int, maximum: int
) -> Window:
    """Relay's arguments of a connection: ``first``/``after`` page forward, ``last``/``before``
    backward (``last`` alone: the end of the list). Mixing the two directions is refused."""
    if last is None and before is None:
        return Window(check_page_size(first, default, maximum), decode_cursor(after, order) if after else None, False, after is not None)
    if first is not None or after is not None:
        raise ValidationError(
            "page forward (first, after) or backward (last, before), not both at once",
            field="last" if last is not None else "before",
            code="BAD_PAGE_SIZE",
        )
    cursor = decode_cursor(before, order, "before") if before else None
    return Window(check_page_size(last, default, maximum, "last"), cursor, True, before is not None)


def page_info(cursors: list[str], more: bool, window: Window) -> PageInfo:
    """pageInfo of a page (``cursors`` in list order); ``more``: rows beyond the page in the
    direction of paging."""
    return PageInfo(
        has_next_page=window.given_cursor if window.backward else more,
        has_previous_page=more if window.backward else window.given_cursor,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
