"""The deployment's own jobs (the file sweep, the count fold): one of each, carried by an active
tenant whatever order the database and its tenants were set up in.

Each test has a database of its own (``own_database_url``): the jobs are looked for across every
tenant, so tenants and jobs other tests left in the session database would be in the way."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from sqlalchemy import select, update

from guanxi.core.domain.models import ScheduledJob, Tenant
from guanxi.core.migrate import upgrade
from guanxi.core.queues.scheduler import DEPLOYMENT_CHECK_S, SchedulerWorker
from guanxi.core.runtime import Runtime
from guanxi.core.services import reminders
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.storage.tenancy import unscoped
from guanxi.testing.plugin import TEST_SECRET

JOBS = [("core.counts_fold", "* * * * *"), ("core.files_sweep", "17 3 * * *")]


@pytest.fixture
async def rt(own_database_url: str) -> AsyncIterator[Runtime]:
    runtime = Runtime.from_config(
        environ={"GUANXI_DATABASE_URL": own_database_url, "GUANXI_PLUGINS": "", "GUANXI__AUTH__SECRET": TEST_SECRET}
    )
    runtime.settings = msgspec.structs.replace(runtime.settings, tenant="main")
    await upgrade(runtime)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def tenant(runtime: Runtime, slug: str) -> uuid.UUID:
    async with runtime.session(None) as s, s.begin():
        return await create_tenant(s, slug, slug.title())


async def carried(runtime: Runtime) -> list[tuple[str, str, str | None, str]]:
    """(tenant slug, job key, cron, status) of every deployment job, across tenants."""
    async with runtime.session(None) as s, unscoped(s):
        stmt = (
            select(Tenant.slug, ScheduledJob.key, ScheduledJob.cron, ScheduledJob.status)
            .join(Tenant, Tenant.id == ScheduledJob.tenant_id)
            .where(ScheduledJob.key.in_(list(reminders.DEPLOYMENT_JOBS)))
            .order_by(ScheduledJob.key, Tenant.slug)
        )
        return [tuple(r) for r in (await s.execute(stmt)).all()]  # type: ignore[misc]


async def test_db_upgrade_schedules_each_job_once_in_the_configured_tenant(rt: Runtime) -> None:
    await tenant(rt, "older")
    await tenant(rt, "main")
    assert await reminders.schedule_deployment_jobs(rt)
    assert await reminders.schedule_deployment_jobs(rt)  # again (the next upgrade): the same jobs
    assert await carried(rt) == [("main", key, cron, "scheduled") for key, cron in JOBS]


async def test_the_scheduler_worker_schedules_them_once_the_first_tenant_exists(rt: Runtime) -> None:
    """``make run``: the upgrade ran on an empty database, the demo created its tenant after."""
    worker = SchedulerWorker(rt)
    assert not await reminders.schedule_deployment_jobs(rt)  # no tenant at all: nothing to carry them
    await worker.run_batch()
    assert await carried(rt) == []
    assert worker.deployment_check_at <= time.monotonic() + 60  # looks again within a minute
    await tenant(rt, "demo")  # not the configured tenant ("main"), which does not exist
    await worker.check_deployment_jobs()
    assert await carried(rt) == [("demo", key, cron, "scheduled") for key, cron in JOBS]
    assert worker.deployment_check_at > time.monotonic() + DEPLOYMENT_CHECK_S - 60
    first = worker.deployment_check_at
    await worker.run_batch()  # not checked again at every poll
    assert worker.deployment_check_at == first


async def test_jobs_move_off_a_suspended_tenant_and_its_copy_is_deleted(rt: Runtime) -> None:
    """The scheduler skips a suspended tenant's rows: its deployment jobs would stop for all."""
    demo = await tenant(rt, "demo")
    assert await reminders.schedule_deployment_jobs(rt)
    await tenant(rt, "second")
    async with rt.session(None) as s, unscoped(s), s.begin():
        await s.execute(update(Tenant).where(Tenant.id == demo).values(status="suspended"))
    await SchedulerWorker(rt).check_deployment_jobs()
    assert await carried(rt) == [("second", key, cron, "scheduled") for key, cron in JOBS]


async def test_the_periodic_check_leaves_a_job_that_exists_alone(rt: Runtime) -> None:
    """Without ``replace`` a running job is not scheduled again (it would run twice)."""
    await tenant(rt, "main")
    assert await reminders.schedule_deployment_jobs(rt)
    async with rt.session(None) as s, unscoped(s), s.begin():
        await s.execute(update(ScheduledJob).where(ScheduledJob.key == "core.counts_fold").values(status="running"))
    await SchedulerWorker(rt).check_deployment_jobs()
    assert await carried(rt) == [
        ("main", "core.counts_fold", "* * * * *", "running"),
        ("main", "core.files_sweep", "17 3 * * *", "scheduled"),
    ]
    assert await reminders.schedule_deployment_jobs(rt)  # the upgrade's replace schedules it again
    assert await carried(rt) == [("main", key, cron, "scheduled") for key, cron in JOBS]


async def test_the_periodic_check_schedules_a_cancelled_job_again(rt: Runtime) -> None:
    """An admin of the carrying tenant can cancel its jobs (``cancelScheduledJob``); the
    deployment's jobs come back at the next check."""
    await tenant(rt, "main")
    assert await reminders.schedule_deployment_jobs(rt)
    async with rt.session(None) as s, unscoped(s), s.begin():
        await s.execute(update(ScheduledJob).where(ScheduledJob.key == "core.files_sweep").values(status="cancelled"))
    await SchedulerWorker(rt).check_deployment_jobs()
    assert await carried(rt) == [("main", key, cron, "scheduled") for key, cron in JOBS]


async def test_two_workers_starting_together_leave_one_job_of_each(rt: Runtime) -> None:
    """Several processes start their scheduler at once: whichever schedules a job first, the
    others find it or lose the race on its unique key, and none of them fails."""
    await tenant(rt, "main")
    workers = [SchedulerWorker(rt) for _ in range(4)]
    await asyncio.gather(*(w.check_deployment_jobs() for w in workers))
    assert await carried(rt) == [("main", key, cron, "scheduled") for key, cron in JOBS]
    assert all(w.deployment_check_at > time.monotonic() for w in workers)
