"""The durable scheduler: jobs at a time or on a cron schedule in the tenant's time zone, run once
per slot, retried with backoff, missed runs collapsed, plugin job kinds through a hook."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from guanxi import hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import PluginError, ValidationError
from guanxi.core.domain.contracts import JobKind, JobRun
from guanxi.core.domain.models import ScheduledJob, Tenant, utcnow
from guanxi.core.queues import scheduler
from guanxi.core.runtime import Runtime
from guanxi.core.services import schedule


class Jobs:
    """A plugin offering job kinds that record their runs (and fail when told to)."""

    def __init__(self) -> None:
        self.runs: list[JobRun] = []
        self.fail_times = 0

    async def record(self, job: JobRun) -> None:
        self.runs.append(job)

    async def flaky(self, job: JobRun) -> None:
        self.runs.append(job)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("the report server is down")

    @hookimpl
    def guanxi_job_kinds(self) -> list[JobKind]:
        return [
            JobKind(name="jobs.record", run=self.record, description="records its runs"),
            JobKind(name="jobs.flaky", run=self.flaky, max_attempts=2),
        ]


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture
def extra_plugins(jobs: Jobs) -> dict[str, object]:
    return {"jobs": jobs}


pytestmark = pytest.mark.plugins("jobs")


async def _schedule(runtime: Runtime, tenant_id: uuid.UUID, kind: str, key: str, **kwargs: Any) -> ScheduledJob:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return await schedule.schedule_job(tx, kind, key, **kwargs)


async def _job(runtime: Runtime, tenant_id: uuid.UUID, job_id: uuid.UUID) -> ScheduledJob:
    async with runtime.session(tenant_id) as s:
        found = await s.get(ScheduledJob, (tenant_id, job_id))
        assert found is not None
        return found


async def _drain(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    total = 0
    while n := await scheduler.run_once(runtime, tenant_id=tenant_id):
        total += n
    return total


async def _set(runtime: Runtime, tenant_id: uuid.UUID, job_id: uuid.UUID, **values: Any) -> None:
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(ScheduledJob).where(ScheduledJob.id == job_id).values(**values))


async def test_a_job_runs_once_at_its_time_with_its_payload_and_an_idempotency_key(
    runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs
) -> None:
    later = await _schedule(runtime, tenant_id, "jobs.record", "later", run_at=utcnow() + dt.timedelta(hours=1))
    now = await _schedule(runtime, tenant_id, "jobs.record", "now", run_at=utcnow() - dt.timedelta(seconds=1), payload={"n": 1})
    assert await _drain(runtime, tenant_id) == 1
    assert [(r.key, r.payload, r.attempt, r.idempotency_key) for r in jobs.runs] == [
        ("now", {"n": 1}, 1, f"{now.id}:{now.slot_at.isoformat()}")
    ]
    assert (await _job(runtime, tenant_id, now.id)).status == "done"
    assert (await _job(runtime, tenant_id, later.id)).status == "scheduled"
    assert await _drain(runtime, tenant_id) == 0  # done: never again


async def test_scheduling_a_key_again_replaces_the_pending_job(runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs) -> None:
    first = await _schedule(runtime, tenant_id, "jobs.record", "k", run_at=utcnow() + dt.timedelta(hours=1), payload={"v": 1})
    second = await _schedule(runtime, tenant_id, "jobs.record", "k", run_at=utcnow() - dt.timedelta(seconds=1), payload={"v": 2})
    assert first.id == second.id
    await _drain(runtime, tenant_id)
    assert [r.payload for r in jobs.runs] == [{"v": 2}]


async def test_a_cron_schedule_is_read_in_the_tenants_time_zone(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with runtime.write_session(None) as s:
        await s.execute(update(Tenant).where(Tenant.id == tenant_id).values(time_zone="Asia/Shanghai"))
    job = await _schedule(runtime, tenant_id, "jobs.record", "daily", cron="0 9 * * *")
    local = job.slot_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert (local.hour, local.minute) == (9, 0)
    assert job.slot_at.hour == 1  # 09:00 in Shanghai is 01:00 UTC
    assert job.slot_at > utcnow()


async def test_missed_cron_runs_after_downtime_run_once_unless_the_job_catches_up(
    runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs
) -> None:
    hour_ago = utcnow().replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    once = await _schedule(runtime, tenant_id, "jobs.record", "once", cron="*/10 * * * *")
    each = await _schedule(runtime, tenant_id, "jobs.record", "each", cron="*/10 * * * *", catch_up=True)
    for job in (once, each):  # the process was down for an hour: the slot an hour ago is still pending
        slot = hour_ago.replace(minute=hour_ago.minute - hour_ago.minute % 10)
        await _set(runtime, tenant_id, job.id, slot_at=slot, next_attempt_at=slot)
    await _drain(runtime, tenant_id)
    by_key: dict[str, list[JobRun]] = {}
    for run in jobs.runs:
        by_key.setdefault(run.key, []).append(run)
    assert len(by_key["once"]) == 1
    assert len(by_key["each"]) in (6, 7)  # every 10-minute slot of the hour (7 when the hour started on a slot)
    assert len({r.idempotency_key for r in by_key["each"]}) == len(by_key["each"])
    for job in (once, each):
        row = await _job(runtime, tenant_id, job.id)
        assert row.status == "scheduled" and row.next_attempt_at > utcnow() - dt.timedelta(minutes=1)
        assert row.runs == len(by_key[row.key])


async def test_a_failing_job_is_retried_with_backoff_then_failed_with_its_error(runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs) -> None:
    jobs.fail_times = 5
    job = await _schedule(runtime, tenant_id, "jobs.flaky", "flaky", run_at=utcnow() - dt.timedelta(seconds=1), max_attempts=2)
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    row = await _job(runtime, tenant_id, job.id)
    assert row.status == "scheduled" and row.attempts == 1 and "report server is down" in (row.last_error or "")
    await _set(runtime, tenant_id, job.id, next_attempt_at=utcnow() - dt.timedelta(seconds=1))  # the backoff has passed
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    row = await _job(runtime, tenant_id, job.id)
    assert row.status == "failed" and row.attempts == 2 and "RuntimeError: the report server is down" in (row.last_error or "")
    assert [r.attempt for r in jobs.runs] == [1, 2]
    assert len({r.idempotency_key for r in jobs.runs}) == 1  # a retry is the same run


async def test_a_failing_cron_run_gives_up_and_the_schedule_goes_on(runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs) -> None:
    jobs.fail_times = 1
    job = await _schedule(runtime, tenant_id, "jobs.flaky", "nightly", cron="0 3 * * *", max_attempts=1)
    await _set(runtime, tenant_id, job.id, next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    await _drain(runtime, tenant_id)
    row = await _job(runtime, tenant_id, job.id)
    assert row.status == "scheduled" and row.attempts == 0 and row.runs == 0 and row.last_error
    assert row.next_attempt_at > utcnow()


async def test_a_job_of_an_unknown_kind_fails_with_a_clear_error(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    job = await _schedule(runtime, tenant_id, "gone.plugin_job", "x", run_at=utcnow())
    await _drain(runtime, tenant_id)
    row = await _job(runtime, tenant_id, job.id)
    assert row.status == "failed" and "no job kind 'gone.plugin_job'" in (row.last_error or "")


async def test_a_cancelled_job_does_not_run(runtime: Runtime, tenant_id: uuid.UUID, jobs: Jobs) -> None:
    job = await _schedule(runtime, tenant_id, "jobs.record", "c", run_at=utcnow())
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await schedule.cancel_job(tx, job.id)
    assert await _drain(runtime, tenant_id) == 0
    assert jobs.runs == []
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        with pytest.raises(ValidationError, match="already cancelled"):
            await schedule.cancel_job(tx, job.id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "Bad minute"),
        ({"cron": "* * *"}, "five fields"),
        ({}, "either run_at or cron"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "time zone"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_problem(
    runtime: Runtime, tenant_id: uuid.UUID, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        await _schedule(runtime, tenant_id, "jobs.record", "bad", **kwargs)
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(ScheduledJob))).first() is None


async def test_two_plugins_offering_the_same_job_kind_fail_with_both_named(runtime: Runtime) -> None:
    class Copy:
        @hookimpl
        def guanxi_job_kinds(self) -> list[JobKind]:
            return [JobKind(name="jobs.record", run=Jobs().record)]

    runtime.pm.register(Copy(), name="copy")
    runtime._job_kinds = None
    with pytest.raises(PluginError, match=r"'jobs\.record' is offered by both"):
        scheduler.job_kinds(runtime)
