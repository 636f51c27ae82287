"""A score's parts: the lines of its explanation, kept as one JSON array on the score's row.

Each part is one rule or fact of a component (``engagement`` / ``message_in@wecom``, ``purchase``
/ ``recency``, ``social`` / ``followers@douyin``, ``profile`` / ``company``, or another plugin's
``<plugin>.<part>``) with the events it counted and its points. The batch recompute builds the
array in SQL (:func:`aggregate`), in the same statement that writes the total, so a customer's
score costs one row written, not one per part: on PostgreSQL the rows of ``scoring_parts`` (about
six per customer, each with its index entry and foreign-key check) were two thirds of a recompute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import JSON, func
from sqlalchemy.sql.elements import ColumnElement

#: the fields of one part, in the order of the stored JSON array of each part (positional: an
#: array is cheaper than an object for the database to build and smaller to store)
KEYS = ("component", "item", "count", "skipped", "value", "measure", "first_at", "last_at", "reasons")


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a score's explanation."""

    component: str
    item: str = ""
    count: int = 0
    skipped: int = 0
    value: float = 0.0
    measure: float | None = None
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    reasons: list[str] = msgspec.field(default_factory=list)


def _at(value: Any) -> dt.datetime | None:
    """A timestamp as either database writes it into JSON (PostgreSQL ``2026-11-20T12:00:00+00:00``,
    SQLite the stored text ``2026-11-20 12:00:00.000000``), as an aware UTC datetime."""
    if value is None or isinstance(value, dt.datetime):
        return value
    at = dt.datetime.fromisoformat(str(value))
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def decode(raw: Iterable[list[Any]] | None) -> list[Part]:
    """The stored JSON array (one array of :data:`KEYS` per part) as parts, ordered by component
    and item."""
    parts = []
    for row in raw or ():
        component, item, count, skipped, value, measure, first_at, last_at, reasons = row
        parts.append(
            Part(
                component=str(component),
                item=str(item or ""),
                count=int(count or 0),
                skipped=int(skipped or 0),
                value=float(value or 0.0),
                measure=None if measure is None else float(measure),
                first_at=_at(first_at),
                last_at=_at(last_at),
                reasons=[str(r) for r in (reasons or [])],
            )
        )
    return sorted(parts, key=lambda p: (p.component, p.item))


def encode(parts: Iterable[Part]) -> list[list[Any]]:
    """Parts as the JSON array stored on the score (timestamps as ISO 8601 text)."""
    out = []
    for p in parts:
        row = msgspec.to_builtins(p)
        out.append([row.get(k) for k in KEYS])
    return out


def aggregate(dialect: str, columns: Any) -> ColumnElement[Any]:
    """The JSON array of a group's part rows (``columns``: a subquery's ``.c`` with :data:`KEYS`),
    built by the database: ``json_agg(json_build_array(…))`` on PostgreSQL,
    ``json_group_array(json_array(…))`` on SQLite (whose ``reasons`` is JSON text to embed)."""
    if dialect == "postgresql":
        return func.json_agg(func.json_build_array(*[columns[k] for k in KEYS]), type_=JSON)
    values = [func.json(columns[k]) if k == "reasons" else columns[k] for k in KEYS]
    return func.json_group_array(func.json_array(*values), type_=JSON)
