"""A worker process killed with SIGKILL mid-way loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from sqlalchemy import func, select

from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import InboxEvent, Interaction
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
WORKER = textwrap.dedent(
    """
    import asyncio, sys, time, uuid
    from guanxi import hookimpl
    from guanxi.core.queues import inbox
    from guanxi.core.runtime import Runtime

    class Slow:
        @hookimpl
        async def guanxi_interaction_recorded(self):
            await asyncio.sleep(0.02)  # make each event take a while, so the kill lands mid-way

    async def main(url, tenant):
        rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "slow"}, extra_plugins={"slow": Slow()})
        print("started", flush=True)
        while True:
            await inbox.run_once(rt, limit=5, lease_s=1.0, tenant_id=uuid.UUID(tenant))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_events_pending_when_a_worker_is_killed_are_processed_exactly_once_after_restart(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path
) -> None:
    n = 60
    t0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    for i in range(n):
        event = InboundEvent(
            channel="web",
            provider_event_id=f"crash-{i}",
            occurred_at=t0 + dt.timedelta(seconds=i),
            identity=ProfileInput(external_id=f"visitor-{i % 7}"),
            kind="visit",
            text=f"visit {i}",
        )
        await inbox.ingest(runtime, tenant_id, event)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), database_url, str(tenant_id)], stdout=subprocess.PIPE, env=env)  # noqa: ASYNC220
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
        async with runtime.session(tenant_id) as s:
            for _ in range(200):  # wait until some, but not all, events are done
                done = (await s.execute(select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "done"))).scalar_one()
                await s.rollback()
                if done >= 5:
                    break
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    async with runtime.session(tenant_id) as s:
        done_at_kill = (await s.execute(select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "done"))).scalar_one()
    assert 0 < done_at_kill < n, f"the kill should land mid-way ({done_at_kill} of {n} done)"
    await asyncio.sleep(1.1)  # the dead worker's leases run out
    for _ in range(50):
        if await inbox.run_once(runtime, limit=100, lease_s=30, tenant_id=tenant_id) == 0:
            break
    async with runtime.session(tenant_id) as s:
        statuses = dict((await s.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status))).all())
        texts = (await s.execute(select(Interaction.text))).scalars().all()
    assert statuses == {"done": n}
    assert sorted(texts) == sorted(f"visit {i}" for i in range(n))  # each exactly once
