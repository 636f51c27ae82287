"""Custom scalars."""

from __future__ import annotations

from typing import Any, NewType

import strawberry

JSON = strawberry.scalar(
    NewType("JSON", object),
    description="A JSON value (object, array, string, number, boolean or null).",
    serialize=lambda v: v,
    parse_value=lambda v: v,
)
JSONValue = Any
