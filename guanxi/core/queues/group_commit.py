"""Group commit of inbox rows: webhook acks that arrive together share one write transaction
and one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING id``.

On SQLite a process runs its write transactions one at a time (:func:`~guanxi.core.storage.db.sqlite_writer`),
so a burst of webhooks queues behind the inbox worker's batch and then behind each other, each
paying a transaction of its own (BEGIN IMMEDIATE, the insert and the commit: three thread hops
through aiosqlite). On PostgreSQL each ack paid a pool checkout, three round trips and a WAL
flush of its own; at a steady 400 acks/s on 2 cores that was more than the web process had
beside its inbox worker, and acks queued for seconds (``bench/ingest.py``'s paced part). Here the
rows that are waiting when the previous group has committed go in together: a row's ack still
comes only after the commit that made it durable. The ids of the rows are made in Python, so
``RETURNING id`` tells which rows were new and which were duplicates (a duplicate inside one
group is a conflict like any other). A group's rows are inserted in key order, so two processes
storing the same retried events take their locks in the same order (no deadlock); a stable sort,
so of two deliveries of one event in a group the first to arrive is the one stored. When the
shared insert fails, each row is tried again in a transaction of its own, so one bad row fails
only its own request.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from guanxi.core.domain.models import InboxEvent
from guanxi.core.storage.db import background_writes, write_transaction

#: at most this many rows per statement (SQLite and asyncpg bind at most 32,766 / 32,767 parameters; a row has ~10)
MAX_GROUP = 500


@functools.cache
def _statement(dialect: str) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id``, built once per dialect. Executed with a
    list of rows, SQLAlchemy sends them as one multi-row ``VALUES`` ("insertmanyvalues") from a
    statement compiled once: a ``.values(rows)`` statement was compiled again for every group
    (about a sixth of the CPU of an ack)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(InboxEvent).on_conflict_do_nothing().returning(InboxEvent.id)


def _key(values: dict[str, Any]) -> tuple[str, str, str]:
    """The inbox's unique key (tenant, channel, provider event id): the order rows are inserted in."""
    return (str(values["tenant_id"]), values["channel"], values["provider_event_id"])


class _Group:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self.task: asyncio.Task[None] | None = None

    async def flush(self, engine: AsyncEngine) -> None:
        background_writes.set(False)  # acks, even when a background task ingests: requests go first
        try:
            while self.pending:
                await self._write(engine)
        finally:
            self.task = None

    async def _write(self, engine: AsyncEngine) -> None:
        taken: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        try:
            async with write_transaction(engine) as conn:
                # the rows that queued while this waited for the write slot go in with it
                taken, self.pending = self.pending[:MAX_GROUP], self.pending[MAX_GROUP:]
                rows = sorted((v for v, _ in taken), key=_key)
                new = set((await conn.execute(_statement(engine.dialect.name), rows)).scalars())
        except Exception as exc:
            if not taken:  # no write slot: the waiting requests get the error (busy)
                taken, self.pending = self.pending, []
                for _, fut in taken:
                    if not fut.done():
                        fut.set_exception(exc)
                return
        else:
            for values, fut in taken:
                if not fut.done():
                    fut.set_result(values["id"] in new)
            return
        for values, fut in taken:  # one by one: only the failing row's request fails
            try:
                async with write_transaction(engine) as conn:
                    inserted = (await conn.execute(_statement(engine.dialect.name), values)).scalar_one_or_none()
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if not fut.done():
                fut.set_result(inserted is not None)


_groups: WeakKeyDictionary[Any, _Group] = WeakKeyDictionary()


async def insert_inbox_row(engine: AsyncEngine, values: dict[str, Any]) -> uuid.UUID | None:
    """Store one inbox row (``values`` with its ``id``) in the next group commit of this engine;
    the row's id, or None when (tenant, channel, provider event id) was stored
    before. Returns once the row's transaction has committed."""
    loop = asyncio.get_running_loop()
    group = _groups.get(engine.sync_engine)
    if group is None or group.loop is not loop:
        group = _groups[engine.sync_engine] = _Group(loop)
    fut: asyncio.Future[bool] = loop.create_future()
    group.pending.append((values, fut))
    if group.task is None:
        group.task = loop.create_task(group.flush(engine))
    inserted = await asyncio.shield(fut)
    return values["id"] if inserted else None
