"""Claiming rows of a work queue table (inbox, outbox) safely with several workers.

One statement claims a batch: ``UPDATE … SET status = 'processing', locked_until = lease
WHERE (tenant_id, id) IN (SELECT … ORDER BY next_attempt_at LIMIT n [FOR UPDATE SKIP LOCKED])
RETURNING tenant_id, id``. On PostgreSQL ``SKIP LOCKED`` keeps two workers off the same row; on
SQLite the database has one writer at a time, which gives the same guarantee. A worker that dies
leaves its rows ``processing`` with an expired lease; they are claimed again after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import uuid
from typing import Any

from sqlalchemy import and_, func, or_, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from guanxi.core.domain.models import Tenant, utcnow
from guanxi.core.storage.db import background_writes, is_busy, write_transaction

log = logging.getLogger("guanxi.queue")
#: longest pause of a worker that keeps meeting a busy database
BUSY_BACKOFF_CAP_S = 30.0


async def claim(
    engine: AsyncEngine,
    table: Any,
    *,
    due_status: str,
    busy_status: str,
    limit: int,
    lease_s: float,
    now: dt.datetime | None = None,
    tenant_id: uuid.UUID | None = None,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Claim up to ``limit`` due rows of a queue table (of one tenant, if given); return their
    (tenant_id, id)."""
    now = now or utcnow()
    t = table.__table__
    due = or_(
        and_(t.c.status == due_status, t.c.next_attempt_at <= now),
        and_(t.c.status == busy_status, t.c.locked_until < now),
    )
    # a suspended tenant's rows wait (stored, not processed) until the operator resumes it
    suspended = select(Tenant.id).where(Tenant.status == "suspended")
    # ``status IN (…)`` repeats the due condition's statuses so that a claim of one tenant's rows
    # can search an index by (tenant_id, status) instead of reading every row of the tenant
    pick = (
        select(t.c.tenant_id, t.c.id)
        .where(t.c.status.in_((due_status, busy_status)), due, t.c.tenant_id.not_in(suspended))
        .order_by(t.c.next_attempt_at)
        .limit(limit)
    )
    if tenant_id is not None:
        pick = pick.where(t.c.tenant_id == tenant_id)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(t)
        .where(tuple_(t.c.tenant_id, t.c.id).in_(pick))
        .values(status=busy_status, locked_until=now + dt.timedelta(seconds=lease_s), attempts=t.c.attempts + 1)
        .returning(t.c.tenant_id, t.c.id)
    )
    async with write_transaction(engine) as conn:
        rows = (await conn.execute(stmt)).all()
    return [(r[0], r[1]) for r in rows]


def backoff(attempt: int, *, base_s: float = 2.0, cap_s: float = 600.0) -> float:
    """Exponential backoff with full jitter: a random delay in [0, min(cap, base · 2^(attempt-1))]."""
    return random.uniform(0, min(cap_s, base_s * 2 ** max(0, attempt - 1)))


async def depth(
    engine: AsyncEngine,
    table: Any,
    *,
    waiting: str,
    working: str,
    finished: str | tuple[str, ...],
    since_column: str,
    failed: str | tuple[str, ...] = "failed",
    tenant_id: uuid.UUID | None = None,
) -> dict[str, int | float | None]:
    """Rows per state (all tenants, or one) and the age in seconds of the oldest row not yet
    finished or failed."""
    t = table.__table__
    scope = t.c.tenant_id == tenant_id if tenant_id is not None else true()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t.c.status, func.count()).where(scope).group_by(t.c.status))).all()
        counts = {str(status): int(n) for status, n in rows}
        oldest = (await conn.execute(select(func.min(t.c[since_column])).where(scope, t.c.status.in_((waiting, working))))).scalar()
    age = (utcnow() - oldest).total_seconds() if oldest is not None else None

    def total(states: str | tuple[str, ...]) -> int:
        return sum(counts.get(state, 0) for state in ((states,) if isinstance(states, str) else states))

    return {
        "waiting": counts.get(waiting, 0),
        "working": counts.get(working, 0),
        "finished": total(finished),
        "failed": total(failed),
        "oldest_waiting_age_s": age,
    }


class QueueWorker:
    """Runs one queue's batches in the background of a process (one asyncio task): a batch,
    and when nothing was due, a wait of ``poll_s`` or until :meth:`wake`."""

    name = "queue"

    def __init__(self, *, poll_s: float, batch: int, lease_s: float) -> None:
        self.poll_s, self.batch, self.lease_s = poll_s, batch, lease_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: batches that met a busy database (another process holding SQLite's write lock)
        self.busy_batches = 0

    async def run_batch(self) -> int:
        """Claim and handle one batch; return how many rows were claimed."""
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"guanxi-{self.name}-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        background_writes.set(True)  # this task's writes yield SQLite's write slot to requests
        busy_streak = 0
        while not self._stopping:
            wait = self.poll_s
            try:
                n = await self.run_batch()
            except Exception as exc:
                n = 0
                if is_busy(exc) or is_busy(exc.__cause__ or exc):
                    # another process holds SQLite's write lock (a bulk import): not a bug, back
                    # off, and say so once per spell rather than a traceback every poll
                    busy_streak += 1
                    self.busy_batches += 1
                    wait = min(BUSY_BACKOFF_CAP_S, self.poll_s * 2**busy_streak)
                    if busy_streak == 1:
                        log.warning(
                            "%s worker: the database is busy with another writer; backing off (up to %g s)", self.name, BUSY_BACKOFF_CAP_S
                        )
                else:
                    log.exception("%s worker batch failed", self.name)
            else:
                if busy_streak:
                    log.info("%s worker: the database is free again after %d busy attempts", self.name, busy_streak)
                busy_streak = 0
            if n == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
