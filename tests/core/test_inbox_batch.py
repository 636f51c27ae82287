"""Group commit in the inbox worker: one failing event does not undo or block the others."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import hookimpl
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import Customer, InboxEvent, Interaction
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.testing.sql import count_statements


class PickyResolver:
    def __init__(self) -> None:
        self.created: list[str] = []

    @hookimpl
    def guanxi_resolve_customer(self, identity: Any) -> None:
        if identity.external_id == "bad":
            raise RuntimeError("cannot resolve 'bad'")

    @hookimpl
    def guanxi_customer_created(self, event: Any) -> None:
        self.created.append(event.customer.display_name)


class CountingApplier:
    """An in-transaction hook with an effect outside the transaction (``calls``) and one queued
    through it (``committed``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[str] = []

    @hookimpl
    def guanxi_inbound_applied(self, tx: Any, event: InboundEvent, applied: Any) -> None:
        self.calls.append(event.provider_event_id)
        if event.identity.external_id == "bad":
            raise RuntimeError("cannot apply 'bad'")
        tx.after_commit(lambda: self.committed.append(event.provider_event_id))


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"picky": PickyResolver(), "applier": CountingApplier()}


@pytest.mark.plugins("picky")
async def test_a_failing_event_in_a_batch_is_rolled_back_alone_with_its_events(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    t0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for n, who in enumerate(["good-1", "bad", "good-2"]):
        await inbox.ingest(
            runtime,
            tenant_id,
            InboundEvent(
                channel="web",
                provider_event_id=f"b-{n}",
                occurred_at=t0,
                identity=ProfileInput(external_id=who, nickname=who),
                kind="visit",
            ),
        )
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 3
    async with runtime.session(tenant_id) as s:
        rows = {r.provider_event_id: r for r in (await s.execute(select(InboxEvent))).scalars()}
    assert {k: r.status for k, r in rows.items()} == {"b-0": "done", "b-1": "pending", "b-2": "done"}
    assert "cannot resolve 'bad'" in (rows["b-1"].last_error or "")
    plugin = runtime.pm.get_plugin("picky")
    assert plugin.created == ["good-1", "good-2"]  # the failed event's customer_created never fired


@pytest.mark.plugins("applier")
async def test_a_failure_mid_batch_calls_earlier_hooks_again_but_their_queued_work_happens_once(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """As docs/plugins/hooks.md says of guanxi_inbound_applied: the events before a failing one
    are applied again (one savepoint each), so the hook runs twice for them, while what it
    queued through ``tx`` (after_commit here) runs once, after the commit."""
    t0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for n, who in enumerate(["good-1", "bad", "good-2"]):
        event = InboundEvent(
            channel="web", provider_event_id=f"a-{n}", occurred_at=t0, identity=ProfileInput(external_id=who), kind="visit"
        )
        await inbox.ingest(runtime, tenant_id, event)
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 3
    plugin = runtime.pm.get_plugin("applier")
    assert plugin.calls == ["a-0", "a-1", "a-0", "a-1", "a-2"]
    assert plugin.committed == ["a-0", "a-2"]
    async with runtime.session(tenant_id) as s:
        statuses = {r.provider_event_id: r.status for r in (await s.execute(select(InboxEvent))).scalars()}
    assert statuses == {"a-0": "done", "a-1": "pending", "a-2": "done"}


async def _ingest(runtime: Runtime, tenant_id: uuid.UUID, prefix: str, people: list[str]) -> None:
    t0 = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
    for n, who in enumerate(people):
        await inbox.ingest(
            runtime,
            tenant_id,
            InboundEvent(
                channel="web",
                provider_event_id=f"{prefix}-{n}",
                occurred_at=t0 + dt.timedelta(seconds=n),
                identity=ProfileInput(external_id=who, nickname=who),
                kind="message_in",
                direction="in",
                text="hello",
            ),
        )


async def _statements_of_one_batch(runtime: Runtime, tenant_id: uuid.UUID, expected: int) -> int:
    with count_statements(runtime.engine) as seen:
        assert await inbox.run_once(runtime, tenant_id=tenant_id, limit=100) == expected
    # the tenant's settings are cached (re-read when the cache expires): not work per event
    return len([s for s in seen if not s.lstrip().startswith(("SELECT tenants.", "SELECT tenant_plugins."))])


async def test_the_worker_applies_a_batch_in_a_fixed_number_of_statements_per_event(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """N+1 guard for ingest: a batch costs the same statements whatever the number of its events,
    new people included. Per batch: the claim, one read of the batch's rows, one lookup of the
    accounts they name (and one of those accounts' customers, when some are known), one of their
    dedupe keys, one multi-row INSERT of the interactions, one executemany of the customers' last
    interaction times and one marking the rows done; with new people, the arrival pipeline and
    stage (read once per batch) and one multi-row INSERT each of their customers, identities,
    stage history and audit rows (was: 8 statements per new person, the ORM's flushes of
    create_customer and of the identity, one person at a time)."""
    counts = {}
    for n in (4, 8):
        await _ingest(runtime, tenant_id, f"new{n}", [f"new-{n}-{i}" for i in range(n)])
        counts[n] = await _statements_of_one_batch(runtime, tenant_id, n)
    # claim, rows, accounts, dedupe keys, pipeline, stage, customers, audit rows, identities,
    # stage history, interactions, last interaction times, done marks
    assert counts[8] == counts[4] == 13
    known = {}
    for n in (4, 8):
        await _ingest(runtime, tenant_id, f"known{n}", [f"new-8-{i}" for i in range(n)])
        known[n] = await _statements_of_one_batch(runtime, tenant_id, n)
    # claim, rows, accounts, customers, dedupe keys, interactions, done marks (these events are
    # not newer than the customers' last interactions: no update of the last times)
    assert known[8] == known[4] == 7


async def test_a_new_person_writing_twice_in_one_batch_becomes_one_customer_with_two_interactions(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """The batch's account lookup learns the identity its first event attached: the second event
    of the same new person finds it (no second customer, no unique-key clash)."""
    await _ingest(runtime, tenant_id, "twice", ["alice", "bob", "alice"])
    assert await inbox.run_once(runtime, tenant_id=tenant_id, limit=10) == 3
    async with runtime.session(tenant_id) as s:
        people = (await s.execute(select(Customer.display_name).order_by(Customer.display_name))).scalars().all()
        timeline = (await s.execute(select(Interaction.customer_id))).scalars().all()
        states = set((await s.execute(select(InboxEvent.status))).scalars())
    assert people == ["alice", "bob"] and len(timeline) == 3 and len(set(timeline)) == 2 and states == {"done"}


async def test_the_worker_claims_bigger_batches_while_a_backlog_lasts_and_small_ones_after(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """``InboxWorker.size``: doubled after a full batch (up to ``MAX_BATCH``), back to
    ``queues.batch`` after one that was not full."""
    await _ingest(runtime, tenant_id, "backlog", [f"p-{i}" for i in range(7)])
    worker = inbox.InboxWorker(runtime, batch=2)
    sizes = []
    while await worker.run_batch():
        sizes.append(worker.size)
    # 2 of 7 (full): next 4; 4 (full): next 8; the last 1: back to 2. (The worker serves every
    # tenant of the session's shared database: an earlier test's retry falling due may make
    # one more batch after these.)
    assert sizes[:3] == [4, 8, 2], sizes
