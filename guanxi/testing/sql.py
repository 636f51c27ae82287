"""Counting the SQL statements a piece of code sends (N+1 guards in tests, bench figures)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from guanxi.core.storage.db import BOOKKEEPING

#: Transaction control, not work: left out of the count.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Collect every statement the engine sends inside the block, except transaction control and
    per-process bookkeeping whose timing depends on the clock (a refresh of the tenant's cached
    plugin choices, an API key's cache miss or ``last_used_at`` write): those happen beside a
    request whenever a cache expires, so a count that included them would depend on the
    machine's speed."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _executemany: bool) -> None:
        if context is not None and context.execution_options.get(BOOKKEEPING):
            return
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
