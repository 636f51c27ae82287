"""How errors reach API callers: typed `errors` on mutation payloads for bad input, GraphQL
errors with ``extensions.code`` for everything else, never a stack trace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from guanxi.core.base.errors import GuanxiError
from guanxi.graphql.enums import ErrorCode, error_code
from guanxi.graphql.ids import client_ids


@strawberry.type(description="Why a mutation did not do what was asked.")
class UserError:
    field: str | None = strawberry.field(description="the input field at fault (camelCase), if any")
    code: ErrorCode = strawberry.field(description="what kind of failure (VALIDATION, NOT_FOUND, CONFLICT, BAD_ID …)")
    message: str
    detail: str | None = strawberry.field(
        default=None, description="a more precise code when `code` is only its kind: a provider's own (WECOM_41054) or a plugin's"
    )


def user_error(exc: GuanxiError) -> UserError:
    message = client_ids(str(exc.args[0])) if exc.args else exc.code
    code, detail = error_code(exc.code, provider=exc.provider)
    return UserError(field=getattr(exc, "field", None), code=code, message=message, detail=detail)


T = TypeVar("T")


async def as_payload(run: Callable[[], Awaitable[T]], payload: Callable[..., T]) -> T:
    """Run a mutation body; expected failures become ``payload(errors=[...])``."""
    try:
        return await run()
    except GuanxiError as exc:  # every error Guanxi raises on purpose is the caller's to fix
        return payload(errors=[user_error(exc)])
