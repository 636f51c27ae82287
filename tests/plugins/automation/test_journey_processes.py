"""Journey runs across real processes: a worker killed with SIGKILL in the middle of a batch has
committed nothing, and after its lease the steps complete exactly once (one outbox message, one
action effect); several worker processes on one database never take a step twice. Run on
PostgreSQL (SKIP LOCKED) with ``GUANXI_TEST_DATABASE_URL``, and on SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import ActionRun, JourneyAction, hookimpl
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers
from guanxi.models import utcnow
from guanxi.plugins.automation.journeys.models import AutomationJourneyStep
from tests.plugins.automation.journey_kit import JChatPlugin, activate, definition, drain, enter, make_customers, runs

REPO = Path(__file__).resolve().parents[3]
WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from guanxi import JourneyAction, hookimpl
    from guanxi.core.domain.channels import Capabilities, Channel, DeliveryResult
    from guanxi.core.runtime import Runtime
    from guanxi.plugins.automation.journeys import engine

    url, tenant, log, hang = sys.argv[1], uuid.UUID(sys.argv[2]), sys.argv[3], sys.argv[4] == "hang"

    class JChat(Channel):
        name = "jchat"
        capabilities = Capabilities(send_text=True)
        async def send(self, message):
            return DeliveryResult(provider_message_id="x")

    async def count(action):
        with open(log, "a") as f:
            f.write(f"{action.customer_id} {action.idempotency_key} {os.getpid()}\\n")
        if hang:
            await asyncio.sleep(600)  # killed in here, mid-step, the batch's transaction open
        from guanxi.core.services import customers
        c = await customers.get_customer(action.tx.session, action.customer_id)
        hits = int(c.attributes.get("hits", 0)) + 1
        await customers.update_customer(action.tx, action.customer_id, customers.CustomerPatch(attributes={"hits": hits}))
        return None

    class Plugins:
        @hookimpl
        def guanxi_channels(self):
            return [JChat()]
        @hookimpl
        def guanxi_journey_actions(self):
            return [JourneyAction(name="crash.count", run=count)]

    async def main():
        rt = Runtime.from_config(
            environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "automation,crash"}, extra_plugins={"crash": Plugins()}
        )
        await rt.tenant_plugins(tenant)
        print("started", flush=True)
        while True:
            if not await engine.advance(rt, tenant_id=tenant, limit=20, lease_s=1.0):
                await asyncio.sleep(0.02)

    asyncio.run(main())
    """
)


class Crash:
    """The test process's side: the jchat channel and the same action, without the hang."""

    def __init__(self, log: Path) -> None:
        self.log, self.chat = log, JChatPlugin().chat

    async def count(self, action: ActionRun) -> str | None:
        with self.log.open("a") as f:
            f.write(f"{action.customer_id} {action.idempotency_key} {os.getpid()}\n")
        c = await customers.get_customer(action.tx.session, action.customer_id)
        hits = int(c.attributes.get("hits", 0)) + 1
        await customers.update_customer(action.tx, action.customer_id, customers.CustomerPatch(attributes={"hits": hits}))
        return None

    @hookimpl
    def guanxi_channels(self) -> list[Any]:
        return [self.chat]

    @hookimpl
    def guanxi_journey_actions(self) -> list[JourneyAction]:
        return [JourneyAction(name="crash.count", run=self.count)]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "steps.log"


@pytest.fixture
def extra_plugins(log: Path) -> dict[str, object]:
    return {"crash": Crash(log)}


pytestmark = pytest.mark.plugins("automation", "crash")
STEPS = [
    {"id": "hello", "type": "send", "channel": "jchat", "text": "Hello"},
    {"id": "count", "type": "action", "action": "crash.count"},
]


def _start(tmp_path: Path, database_url: str, tenant_id: uuid.UUID, log: Path, mode: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "journey_worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), database_url, str(tenant_id), str(log), mode], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
    return proc


def _lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


async def _wait(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _counts(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[int, int, dict[uuid.UUID, int]]:
    async with runtime.session(tenant_id) as s:
        messages = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        steps = (await s.execute(select(func.count()).select_from(AutomationJourneyStep))).scalar_one()
    hits = {}
    async with runtime.session(tenant_id) as s:
        for run in await runs(runtime, tenant_id):
            hits[run.customer_id] = int((await customers.get_customer(s, run.customer_id)).attributes.get("hits", 0))
    return int(messages), int(steps), hits


async def test_a_worker_killed_mid_step_leaves_the_steps_to_complete_exactly_once(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path, log: Path
) -> None:
    await activate(runtime, tenant_id, definition(STEPS))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    proc = _start(tmp_path, database_url, tenant_id, log, "hang")
    try:
        await _wait(lambda: len(_lines(log)) == 1)  # the send is done (uncommitted), the action started
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert await _counts(runtime, tenant_id) == (0, 0, {a: 0})  # nothing of the batch committed
    (run,) = await runs(runtime, tenant_id)
    assert run.status == "running" and run.locked_until is not None
    assert await drain(runtime, tenant_id) == 0  # the dead worker's lease still holds
    await asyncio.sleep(max(0.0, (run.locked_until - utcnow()).total_seconds()) + 0.2)
    assert await drain(runtime, tenant_id) == 1
    assert await _counts(runtime, tenant_id) == (1, 2, {a: 1})  # one message, each step once
    lines = _lines(log)
    assert len(lines) == 2 and lines[0][1] == lines[1][1]  # the action re-ran with the same idempotency key
    assert lines[1][2] == str(os.getpid())
    (run,) = await runs(runtime, tenant_id)
    assert run.status == "done"


async def test_several_worker_processes_never_take_a_step_twice(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path, log: Path
) -> None:
    n = 150
    await activate(runtime, tenant_id, definition(STEPS))
    ids = await make_customers(runtime, tenant_id, n)
    procs = [_start(tmp_path, database_url, tenant_id, log, "run") for _ in range(3)]
    try:
        await enter(runtime, tenant_id, "welcome", ids)
        await _wait(lambda: len(_lines(log)) >= n, seconds=120)
        await asyncio.sleep(0.5)  # time for a duplicate, if there were one, to show
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    lines = _lines(log)
    assert sorted(line[0] for line in lines) == sorted(str(i) for i in ids)  # each customer's action once
    print(f"steps per process: {[sum(1 for line in lines if line[2] == str(p.pid)) for p in procs]}")
    messages, steps, hits = await _counts(runtime, tenant_id)
    assert (messages, steps) == (n, 2 * n) and set(hits.values()) == {1}
