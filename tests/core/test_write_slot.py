"""SQLite's write slot of a process: requests (webhook acks) before the inbox worker's next batch,
and the worker's batches cut to a time budget while acks wait behind them."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import hookimpl
from guanxi.core.base.errors import BusyError
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import InboxEvent
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.core.storage.db import WriteSlot, background_writes, sqlite_writer, write_slot, write_transaction

T0 = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


def event(n: int) -> InboundEvent:
    return InboundEvent(
        channel="wecom",
        provider_event_id=f"slot-{n}",
        occurred_at=T0 + dt.timedelta(minutes=n),
        identity=ProfileInput(external_id=f"wm-{n}"),
        kind="message_in",
        text=f"hi {n}",
    )


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (no clock involved)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never came true")


def waiting(slot: WriteSlot) -> tuple[int, int]:
    return slot.waiting


@pytest.fixture
def slot(runtime: Runtime) -> WriteSlot:
    found = write_slot(runtime.engine)
    if found is None:
        pytest.skip("the write slot is SQLite's (PostgreSQL has concurrent writers)")
    return found


async def test_an_ack_that_arrives_during_a_worker_batch_is_stored_before_the_next_batch(
    runtime: Runtime, tenant_id: uuid.UUID, slot: WriteSlot
) -> None:
    """A worker batch holds the slot, the worker's next batch queues, then a webhook ack arrives:
    when the batch commits, the ack's row is written before the next batch runs, and the slot
    counts one request that waited behind background work."""
    order: list[str] = []
    holding, finish = asyncio.Event(), asyncio.Event()
    waits_before = slot.request_waits

    async def batch(name: str, hold: bool) -> None:
        background_writes.set(True)  # what a queue worker's task does
        async with write_transaction(runtime.engine):
            order.append(f"{name} starts")
            if hold:
                holding.set()
                await finish.wait()
            order.append(f"{name} commits")

    async def ack() -> None:
        await inbox.ingest(runtime, tenant_id, event(1))
        order.append("ack answered")

    first = asyncio.create_task(batch("batch 1", hold=True))
    await holding.wait()
    second = asyncio.create_task(batch("batch 2", hold=False))
    await until(lambda: waiting(slot) == (0, 1))
    acked = asyncio.create_task(ack())
    await until(lambda: waiting(slot) == (1, 1))
    finish.set()
    await asyncio.gather(first, second, acked)
    assert order.index("ack answered") < order.index("batch 2 starts"), order
    assert order[:2] == ["batch 1 starts", "batch 1 commits"]
    assert slot.request_waits == waits_before + 1
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(InboxEvent))).scalar_one() == 1


async def test_background_writers_are_passed_over_a_bounded_number_of_times(runtime: Runtime, slot: WriteSlot) -> None:
    """Requests keep coming while a background writer waits: it gets the slot after at most
    ``max_overtakes`` requests went before it, so a stream of acks cannot starve the worker; the
    requests still go in their arrival order."""
    order: list[str] = []
    holder_in, release = asyncio.Event(), asyncio.Event()

    async def write(name: str, background: bool, gate: asyncio.Event | None = None) -> None:
        background_writes.set(background)
        async with sqlite_writer(runtime.engine):
            if gate is not None:
                holder_in.set()
                await gate.wait()
            order.append(name)

    tasks = [asyncio.create_task(write("holder", False, release))]
    await holder_in.wait()
    tasks.append(asyncio.create_task(write("worker", True)))
    await until(lambda: waiting(slot) == (0, 1))
    n = slot.max_overtakes + 2
    for i in range(n):
        tasks.append(asyncio.create_task(write(f"request {i}", False)))
    await until(lambda: waiting(slot) == (n, 1))
    release.set()
    await asyncio.gather(*tasks)
    requests_first = [f"request {i}" for i in range(slot.max_overtakes)]
    assert order == ["holder", *requests_first, "worker", *(f"request {i}" for i in range(slot.max_overtakes, n))]


async def test_a_writer_that_gives_up_waiting_leaves_the_queue_and_the_slot_keeps_working(runtime: Runtime, slot: WriteSlot) -> None:
    """A write that does not get the slot in time raises the retryable BusyError; it is no longer
    in line, and the next writer gets the slot when the holder is done."""
    holder_in, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with sqlite_writer(runtime.engine):
            holder_in.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holder_in.wait()
    with pytest.raises(BusyError):
        async with sqlite_writer(runtime.engine, timeout_s=0.01):
            pass
    assert waiting(slot) == (0, 0)
    release.set()
    await holder
    async with sqlite_writer(runtime.engine, timeout_s=1):
        assert slot.holder is False


def test_the_next_claim_fits_the_ack_budget_only_while_acks_wait() -> None:
    """``next_claim_size``: without waiting acks the claim doubles after a full batch (up to
    ``MAX_BATCH``) and goes back to ``queues.batch`` after a partial one; when acks waited behind
    a batch, the next claim holds what fits in ``ACK_BUDGET_S`` at that batch's pace, at least 1
    and never more than the doubling rule allows."""
    budget, top = inbox.ACK_BUDGET_S, inbox.MAX_BATCH
    assert inbox.next_claim_size(10, 10, 10) == 20
    assert inbox.next_claim_size(top, 10, top) == top
    assert inbox.next_claim_size(80, 10, 3) == 10
    # 200 rows held the slot 10 budgets long: 20 rows fit in one budget
    assert inbox.next_claim_size(top, 10, top, held_s=10 * budget, acks_waited=True) == 20
    # acks waited, but the batch was short: the doubling rule still bounds the claim
    assert inbox.next_claim_size(10, 10, 10, held_s=budget / 100, acks_waited=True) == 20
    # a batch of 4 that held the slot 8 budgets: one row at a time, never 0
    assert inbox.next_claim_size(4, 10, 4, held_s=8 * budget, acks_waited=True) == 1
    # the hold time without waiting acks changes nothing
    assert inbox.next_claim_size(top, 10, top, held_s=10 * budget) == top


class Gate:
    """Holds the inbox worker inside its batch's transaction (the ``guanxi_inbound_applied``
    hook runs there) until the test lets it go on."""

    def __init__(self) -> None:
        self.applying, self.go_on = asyncio.Event(), asyncio.Event()

    @hookimpl
    async def guanxi_inbound_applied(self, tx: Any, event: Any, applied: Any) -> None:
        self.applying.set()
        await self.go_on.wait()


GATE = Gate()


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    GATE.__init__()  # type: ignore[misc]  # fresh events for this test's loop
    return {"gate": GATE}


async def in_background(step: Callable[[], Awaitable[int]]) -> int:
    """Run ``step`` as a queue worker's task runs it (its writes are background writes)."""

    async def task() -> int:
        background_writes.set(True)
        return await step()

    return await asyncio.create_task(task())


@pytest.mark.plugins("gate")
async def test_the_inbox_worker_cuts_its_next_claim_when_an_ack_waited_behind_its_batch(
    runtime: Runtime, tenant_id: uuid.UUID, slot: WriteSlot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack that arrives while the worker's batch is being applied waits for it; the worker's
    next claim is then cut to the budget (here a budget too small for one row: 1), and grows
    again by doubling once no ack waits."""
    monkeypatch.setattr(inbox, "ACK_BUDGET_S", 1e-12)
    for n in range(12):
        await inbox.ingest(runtime, tenant_id, event(n))
    worker = inbox.InboxWorker(runtime, batch=4)
    worker.size = 8
    batch = asyncio.create_task(in_background(worker.run_batch))
    await GATE.applying.wait()  # the batch's transaction holds the slot
    assert slot.holder is True
    ack = asyncio.create_task(inbox.ingest(runtime, tenant_id, event(99)))
    await until(lambda: waiting(slot) == (1, 0))
    GATE.go_on.set()
    assert await batch == 8
    assert worker.size == 1
    assert not (await ack).duplicate
    assert await in_background(worker.run_batch) == 1
    assert worker.size == 2  # no ack waited behind that one: doubling again
