"""How errors reach API callers: typed `errors` on mutation payloads for bad input, GraphQL
errors with ``extensions.code`` for everything else, never a stack trace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from guanxi.core.base.errors import GuanxiError
from guanxi.graphql.ids import client_ids


@strawberry.type(description="Why a mutation did not do what was asked.")
class UserError:
    field: str | None = strawberry.field(description="the input field at fault (camelCase), if any")
    code: str = strawberry.field(description="VALIDATION, NOT_FOUND, CONFLICT, BAD_ID …")
    message: str


def user_error(exc: GuanxiError) -> UserError:
    message = client_ids(str(exc.args[0])) if exc.args else exc.code
    return UserError(field=getattr(exc, "field", None), code=exc.code, message=message)


T = TypeVar("T")


async def as_payload(run: Callable[[], Awaitable[T]], payload: Callable[..., T]) -> T:
    """Run a mutation body; expected failures become ``payload(errors=[...])``."""
    try:
        return await run()
    except GuanxiError as exc:  # every error Guanxi raises on purpose is the caller's to fix
        return payload(errors=[user_error(exc)])
