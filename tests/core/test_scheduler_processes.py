"""The scheduler across real processes: two worker processes racing on one database never run a
job twice, and a worker killed with SIGKILL mid-run leaves the run to be done again, once, with
the same idempotency key. Run on PostgreSQL with ``make test-pg`` (SKIP LOCKED), and on SQLite."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from guanxi import hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import JobKind, JobRun
from guanxi.core.domain.models import ScheduledJob, utcnow
from guanxi.core.queues import scheduler
from guanxi.core.runtime import Runtime
from guanxi.core.services import schedule

REPO = Path(__file__).resolve().parents[2]
WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from guanxi import hookimpl
    from guanxi.core.domain.contracts import JobKind
    from guanxi.core.queues import scheduler
    from guanxi.core.runtime import Runtime

    url, tenant, log, timeout = sys.argv[1], uuid.UUID(sys.argv[2]), sys.argv[3], float(sys.argv[4])

    async def append(job):
        with open(log, "a") as f:
            f.write(f"{job.key} {job.idempotency_key} {job.attempt} {os.getpid()}\\n")
        if job.payload.get("hang") and job.attempt == 1:
            await asyncio.sleep(600)  # killed in here

    class Race:
        @hookimpl
        def guanxi_job_kinds(self):
            return [JobKind(name="race.append", run=append)]

    async def main():
        rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "race"}, extra_plugins={"race": Race()})
        print("started", flush=True)
        while True:
            if not await scheduler.run_once(rt, limit=5, lease_s=1.0, timeout_s=timeout, tenant_id=tenant):
                await asyncio.sleep(0.02)

    asyncio.run(main())
    """
)


class Race:
    """The same job kind in the test's own runtime (the run after the crash happens here)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    async def append(self, job: JobRun) -> None:
        with self.log.open("a") as f:
            f.write(f"{job.key} {job.idempotency_key} {job.attempt} {os.getpid()}\n")

    @hookimpl
    def guanxi_job_kinds(self) -> list[JobKind]:
        return [JobKind(name="race.append", run=self.append)]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def extra_plugins(log: Path) -> dict[str, object]:
    return {"race": Race(log)}


pytestmark = pytest.mark.plugins("race")


def _start(tmp_path: Path, database_url: str, tenant_id: uuid.UUID, log: Path, timeout_s: float) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), database_url, str(tenant_id), str(log), str(timeout_s)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
    return proc


def _runs(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


async def _wait(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_two_worker_processes_never_run_a_job_twice(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path, log: Path
) -> None:
    n = 120
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for i in range(n):
            await schedule.schedule_job(tx, "race.append", f"job-{i}", run_at=utcnow() - dt.timedelta(seconds=1))
    procs = [_start(tmp_path, database_url, tenant_id, log, 30.0) for _ in range(2)]
    try:
        await _wait(lambda: len(_runs(log)) >= n)
        await asyncio.sleep(0.5)  # time for a duplicate run, if there were one, to show
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    runs = _runs(log)
    keys = [r[0] for r in runs]
    assert sorted(keys) == sorted(f"job-{i}" for i in range(n))  # each job exactly once
    print(f"runs per process: {[sum(1 for r in runs if r[3] == str(p.pid)) for p in procs]}")
    async with runtime.session(tenant_id) as s:
        statuses = dict((await s.execute(select(ScheduledJob.status, func.count()).group_by(ScheduledJob.status))).all())
    assert statuses == {"done": n}


async def test_a_job_whose_worker_is_killed_mid_run_runs_again_once_with_the_same_idempotency_key(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path, log: Path
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        job = await schedule.schedule_job(tx, "race.append", "hangs", run_at=utcnow() - dt.timedelta(seconds=1), payload={"hang": True})
    proc = _start(tmp_path, database_url, tenant_id, log, 4.0)  # lease: 1.5 x the run timeout = 6 s
    try:
        await _wait(lambda: len(_runs(log)) == 1)
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: the run started and never finished
        proc.wait(10)
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 0  # the dead worker's lease still holds
    async with runtime.session(tenant_id) as s:
        row = await s.get(ScheduledJob, (tenant_id, job.id))
        assert row is not None and row.status == "running"
        locked_until = row.locked_until
    assert locked_until is not None
    await asyncio.sleep(max(0.0, (locked_until - utcnow()).total_seconds()) + 0.2)
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 0
    runs = _runs(log)
    assert [(r[0], r[2]) for r in runs] == [("hangs", "1"), ("hangs", "2")]  # killed run, then the one re-run
    assert runs[0][1] == runs[1][1] == f"{job.id}:{job.slot_at.isoformat()}"
    assert runs[1][3] == str(os.getpid())
    async with runtime.session(tenant_id) as s:
        row = await s.get(ScheduledJob, (tenant_id, job.id))
        assert row is not None and row.status == "done" and row.runs == 1
