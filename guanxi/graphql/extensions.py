"""Schema extensions: request lifecycle (close the session) and error shaping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from guanxi.core.base.errors import GuanxiError
from guanxi.graphql.ids import client_ids

log = logging.getLogger("guanxi.graphql")


def shape_error(error: GraphQLError) -> GraphQLError:
    """Expected errors keep their message and gain ``extensions.code``; anything else becomes
    "internal error" (logged here with its traceback), so no stack trace or SQL reaches a caller."""
    original = error.original_error
    if original is None:
        if error.extensions and "code" in error.extensions:
            return error
        return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path, None, {"code": "GRAPHQL_VALIDATION"})
    if isinstance(original, GuanxiError):
        ext: dict[str, Any] = {"code": original.code}
        if getattr(original, "field", None):
            ext["field"] = original.field
        message = client_ids(str(original.args[0])) if original.args else original.code
        return GraphQLError(message, error.nodes, error.source, error.positions, error.path, None, ext)
    if isinstance(original, GraphQLError):
        return shape_error(original)
    log.error("unexpected error in %s", ".".join(str(p) for p in error.path or []) or "operation", exc_info=original)
    return GraphQLError("internal error", error.nodes, error.source, error.positions, error.path, None, {"code": "INTERNAL"})


class RequestLifecycle(SchemaExtension):
    """Ends the request's database session after the operation (``GraphQLContext.end``) and shapes its errors
    (the HTTP view shapes parse and validation errors, which never reach an operation)."""

    async def on_operation(self) -> AsyncIterator[None]:
        start = getattr(self.execution_context.context, "start", None)
        if start is not None:
            start()
        try:
            yield
        finally:
            end = getattr(self.execution_context.context, "end", None)
            if end is not None:
                await end()
            result = self.execution_context.result
            if result is not None and result.errors:
                result.errors = [shape_error(e) for e in result.errors]
