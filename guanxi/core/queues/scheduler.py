"""The scheduler worker: runs due ``scheduled_jobs`` rows, once per slot across processes.

Claiming is the queue machinery's (:mod:`guanxi.core.queues.queue`): one statement moves due rows
to ``running`` with a lease (``SKIP LOCKED`` on PostgreSQL), so two workers never run the same
run. The kind's handler runs outside any transaction of ours, bounded by
``queues.job_timeout_s``; the outcome is recorded after it:

* success: a one-off job is ``done``; a cron job gets its next slot, the first after *now* (missed
  slots after downtime collapse into the run that just happened), or with ``catch_up`` the first
  after the slot it ran (each missed slot runs);
* error: retried with backoff until ``max_attempts``, then a one-off job is ``failed`` with the
  error kept, and a cron job keeps the error and moves on to its next slot;
* a worker killed mid-run leaves the row ``running``; when its lease runs out another worker runs
  it again, once, with the same ``idempotency_key`` (``<job id>:<slot>``).

Why not a library: APScheduler 3 (the stable line) keeps jobs in a store that one scheduler process
may use at a time, and APScheduler 4, whose async data stores coordinate several schedulers, is
still a pre-release (4.0.0a6) whose author warns against production use. The inbox's claim,
lease and backoff already give what is needed here, on SQLite and PostgreSQL alike; cron
expressions are evaluated by ``cronsim`` (the maintained parser of healthchecks.io).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import traceback
import uuid

from sqlalchemy.exc import IntegrityError

from guanxi.core.domain.contracts import JobKind, JobRun
from guanxi.core.domain.models import ScheduledJob, utcnow
from guanxi.core.queues.queue import QueueWorker, backoff, claim
from guanxi.core.queues.queue import depth as queue_depth
from guanxi.core.runtime import Runtime
from guanxi.core.services.reminders import CORE_JOB_KINDS, schedule_deployment_jobs
from guanxi.core.services.schedule import next_slot, tenant_zone

log = logging.getLogger("guanxi.scheduler")
#: how often a scheduler worker checks that the deployment's jobs (the file sweep, the count
#: fold) are scheduled and carried by an active tenant, seconds
DEPLOYMENT_CHECK_S = 300.0


def job_kinds(runtime: Runtime) -> dict[str, tuple[str, JobKind]]:
    """Every job kind by name, with its owner (``core`` or the plugin's name)."""
    return runtime.job_kinds(CORE_JOB_KINDS)


def handler_for(runtime: Runtime, tenant_id: uuid.UUID, job: ScheduledJob) -> JobKind:
    """The kind that runs a job: the one place a job is dispatched, so the one place to refuse
    a kind (e.g. of a plugin the tenant has not enabled: check ``owner`` here)."""
    found = job_kinds(runtime).get(job.kind)
    if found is None:
        raise LookupError(f"no job kind {job.kind!r} (is the plugin that offers it enabled?)")
    _owner, kind = found
    return kind


def _error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]


async def run_job(runtime: Runtime, tenant_id: uuid.UUID, job_id: uuid.UUID, *, timeout_s: float = 60.0) -> None:
    """Run one claimed job and record the outcome (see the module docstring)."""
    async with runtime.session(tenant_id) as session:
        row = await session.get(ScheduledJob, (tenant_id, job_id))
        if row is None or row.status != "running":
            return
        slot = row.slot_at
        run = JobRun(
            runtime=runtime,
            tenant_id=tenant_id,
            job_id=row.id,
            kind=row.kind,
            key=row.key,
            payload=dict(row.payload),
            slot_at=slot,
            attempt=row.attempts,
            idempotency_key=f"{row.id}:{slot.isoformat()}",
        )
        error: BaseException | None = None
        permanent = False
        try:
            kind = handler_for(runtime, tenant_id, row)
        except LookupError as exc:
            error, permanent = exc, True
    if error is None:
        try:
            await asyncio.wait_for(kind.run(run), timeout=timeout_s)
        except TimeoutError:
            error = TimeoutError(f"the run took longer than {timeout_s} s")
        except Exception as exc:
            error = exc
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(ScheduledJob, (tenant_id, job_id), populate_existing=True)
        if row is None or row.status != "running" or row.slot_at != slot:
            return  # cancelled or rescheduled while it ran: leave the new state alone
        now = utcnow()
        row.locked_until = None
        if error is None:
            row.runs, row.last_run_at, row.last_error = row.runs + 1, now, None
        else:
            row.last_error = _error_text(error)
            if not permanent and row.attempts < row.max_attempts:
                delay = backoff(row.attempts)
                row.status, row.next_attempt_at = "scheduled", now + dt.timedelta(seconds=delay)
                log.warning("job %s (%s) failed (attempt %d), retry in %.1f s: %s", row.id, row.kind, row.attempts, delay, row.last_error)
                return
            log.error("job %s (%s) failed for good after %d attempts: %s", row.id, row.kind, row.attempts, row.last_error)
        if row.cron is None:
            row.status = "done" if error is None else "failed"
            return
        after = slot if row.catch_up else max(now, slot)
        following = next_slot(row.cron, after, await tenant_zone(session))
        row.status, row.slot_at, row.next_attempt_at, row.attempts = "scheduled", following, following, 0


async def run_once(
    runtime: Runtime, *, limit: int = 10, lease_s: float = 120.0, timeout_s: float = 60.0, tenant_id: uuid.UUID | None = None
) -> int:
    """Claim the due jobs (up to ``limit``) and run them concurrently; return how many were
    claimed. The lease outlasts the longest allowed run, so no other worker claims a run that is
    still going."""
    lease_s = max(lease_s, timeout_s * 1.5)
    claimed = await claim(
        runtime.engine, ScheduledJob, due_status="scheduled", busy_status="running", limit=limit, lease_s=lease_s, tenant_id=tenant_id
    )

    async def one(row_tenant: uuid.UUID, job_id: uuid.UUID) -> None:
        try:
            await run_job(runtime, row_tenant, job_id, timeout_s=timeout_s)
        except Exception:
            log.exception("job %s failed unexpectedly; it runs again after its lease", job_id)

    await asyncio.gather(*(one(t, j) for t, j in claimed))
    return len(claimed)


async def depth(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> dict[str, int | float | None]:
    """Scheduler metrics: ``waiting`` (scheduled, future ones included), ``working`` (running),
    ``finished`` (done), ``failed``, and the age of the oldest unfinished job."""
    return await queue_depth(
        runtime.engine,
        ScheduledJob,
        waiting="scheduled",
        working="running",
        finished="done",
        since_column="created_at",
        tenant_id=tenant_id,
    )


class SchedulerWorker(QueueWorker):
    """Runs due jobs in the background of a process; it polls at most every ``poll_s`` and is
    woken when a job is scheduled in this process."""

    name = "scheduler"

    def __init__(self, runtime: Runtime, *, poll_s: float = 1.0, batch: int = 10, lease_s: float = 120.0, timeout_s: float = 60.0) -> None:
        super().__init__(poll_s=poll_s, batch=batch, lease_s=lease_s)
        self.runtime, self.timeout_s = runtime, timeout_s
        #: when (monotonic) to check the deployment's jobs next; 0: at the first batch
        self.deployment_check_at = 0.0

    async def run_batch(self) -> int:
        if time.monotonic() >= self.deployment_check_at:
            await self.check_deployment_jobs()
        return await run_once(self.runtime, limit=self.batch, lease_s=self.lease_s, timeout_s=self.timeout_s)

    async def check_deployment_jobs(self) -> None:
        """Schedule a deployment job that is missing, was cancelled or whose tenant was suspended
        (:func:`~guanxi.core.services.reminders.schedule_deployment_jobs`): at the worker's first
        batch, then every :data:`DEPLOYMENT_CHECK_S`; a minute after a check that failed or found
        no active tenant (the first one may come any moment)."""
        try:
            ok = await schedule_deployment_jobs(self.runtime, replace=False)
        except IntegrityError:
            # another process scheduled the same job at the same moment (its key is unique per
            # tenant): nothing is wrong, the next check finds it there
            log.info("another process scheduled the deployment's jobs meanwhile; checking again in a minute")
            ok = False
        except Exception:
            log.exception("checking the deployment's jobs failed; trying again in a minute")
            ok = False
        self.deployment_check_at = time.monotonic() + (DEPLOYMENT_CHECK_S if ok else 60)
