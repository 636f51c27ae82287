"""Durable scheduled jobs: scheduling, rescheduling and cancelling them.

A job is a ``scheduled_jobs`` row: a kind (``guanxi_job_kinds``), a payload, and either a time
(``run_at``) or a cron expression evaluated in the tenant's time zone. The scheduler worker
(:mod:`guanxi.core.queues.scheduler`) claims due rows like the inbox and runs them; this module
only writes rows, in the caller's transaction, so a job is scheduled exactly when the change that
asked for it commits (a task and its reminder).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from sqlalchemy import select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import ScheduledJob, Tenant, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import TenantSession

KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
FINISHED = ("done", "failed", "cancelled")


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """An IANA time zone; an unknown name falls back (a bad value in the database must not stop
    a worker)."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


async def tenant_zone(session: TenantSession) -> ZoneInfo:
    """The tenant's time zone (cron schedules, "due today")."""
    name = (await session.execute(select(Tenant.time_zone).where(Tenant.id == session.tenant_id))).scalar_one_or_none()
    return zone(name)


def check_cron(expression: str) -> str:
    """A normalised five-field cron expression, or a ValidationError saying what is wrong."""
    cron = " ".join(expression.split())
    if len(cron.split(" ")) != 5:
        raise ValidationError(f"cron {expression!r} must have five fields (minute hour day month weekday)", field="cron")
    try:
        CronSim(cron, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        raise ValidationError(f"cron {expression!r}: {exc}", field="cron") from None
    return cron


def next_slot(cron: str, after: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The first time strictly after ``after`` that ``cron`` matches in ``tz`` (DST handled by
    cronsim), in UTC."""
    return next(CronSim(cron, after.astimezone(tz))).astimezone(dt.UTC)


async def schedule_job(
    tx: Tx,
    kind: str,
    key: str,
    *,
    run_at: dt.datetime | None = None,
    cron: str | None = None,
    payload: dict[str, Any] | None = None,
    catch_up: bool = False,
    max_attempts: int = 5,
) -> ScheduledJob:
    """Schedule a job of ``kind`` under ``key`` (unique per tenant), to run at ``run_at`` or on the
    ``cron`` schedule (tenant's time zone). Scheduling a key again replaces its job: new time,
    payload and attempts, status ``scheduled`` (a finished job runs again). ``catch_up``: after
    downtime, run every missed cron slot instead of one run for all of them."""
    if not KIND.match(kind) or len(kind) > 100:
        raise ValidationError(f"job kind {kind!r} must be <owner>.<name> in lower case", field="kind")
    key = key.strip()
    if not 0 < len(key) <= 200:
        raise ValidationError("job key must be 1 to 200 characters", field="key")
    if (run_at is None) == (cron is None):
        raise ValidationError("give a job either run_at or cron", field="runAt")
    if not 1 <= max_attempts <= 100:
        raise ValidationError("max_attempts must be 1 to 100", field="maxAttempts")
    if run_at is not None and run_at.tzinfo is None:
        raise ValidationError("run_at must carry a time zone", field="runAt")
    if cron is not None:
        cron = check_cron(cron)
        slot = next_slot(cron, utcnow(), await tenant_zone(tx.session))
    else:
        assert run_at is not None
        slot = run_at.astimezone(dt.UTC)
    job = (await tx.session.execute(select(ScheduledJob).where(ScheduledJob.key == key))).scalar_one_or_none()
    if job is None:
        job = ScheduledJob(id=new_id(), key=key, created_at=utcnow(), created_by=tx.ctx.actor.name, runs=0)
        tx.session.add(job)
    job.kind, job.payload, job.cron, job.catch_up, job.max_attempts = kind, dict(payload or {}), cron, catch_up, max_attempts
    job.status, job.slot_at, job.next_attempt_at, job.attempts, job.locked_until, job.last_error = "scheduled", slot, slot, 0, None, None
    await tx.session.flush()
    worker = tx.runtime.state.get("scheduler_worker")
    if worker is not None:
        tx.after_commit(worker.wake)
    return job


async def get_job(session: TenantSession, job_id: uuid.UUID) -> ScheduledJob:
    job = await session.get(ScheduledJob, (session.tenant_id, job_id))
    if job is None:
        raise NotFoundError(f"scheduled job {job_id} not found")
    return job


async def cancel_job(tx: Tx, job_id: uuid.UUID) -> ScheduledJob:
    """Cancel a job that has not finished (a running run completes, but nothing is scheduled
    after it). Audited."""
    job = await get_job(tx.session, job_id)
    if job.status in FINISHED:
        raise ValidationError(f"the job is already {job.status}", field="id")
    job.status, job.locked_until = "cancelled", None
    audit(tx, "job.cancel", "scheduledJob", job.id, {"kind": job.kind, "key": job.key})
    return job


async def cancel_key(tx: Tx, key: str) -> bool:
    """Cancel the pending job under ``key``, if any (not audited: the change that makes it moot is)."""
    job = (await tx.session.execute(select(ScheduledJob).where(ScheduledJob.key == key))).scalar_one_or_none()
    if job is None or job.status in FINISHED:
        return False
    job.status, job.locked_until = "cancelled", None
    return True
