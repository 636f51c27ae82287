"""Journey runs: triggers let customers in, steps run once each, waits resume at the right step,
sends go through the outbox with consent checked, goals end runs as conversions."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from guanxi.core.domain.models import Interaction, OutboxMessage
from guanxi.core.runtime import Runtime
from guanxi.core.services import consent, interactions, tags
from guanxi.models import utcnow
from tests.plugins.automation.journey_kit import JChatPlugin, activate, ctx, definition, drain, enter, ledger, make_customers, runs

pytestmark = pytest.mark.plugins("automation", "jchat")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"jchat": JChatPlugin()}


THREE_STEPS = [
    {"id": "hello", "type": "send", "channel": "jchat", "text": "Welcome!"},
    {"id": "pause", "type": "wait", "seconds": 3600},
    {"id": "check", "type": "branch", "condition": {"tags_any": ["buyer"]}, "then": "thanks", "otherwise": None},
    {"id": "thanks", "type": "tag", "add": ["loyal"]},
]


async def test_a_tag_added_lets_the_customer_in_and_the_steps_run_once_across_the_wait(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await activate(runtime, tenant_id, definition(THREE_STEPS))
    a, b = await make_customers(runtime, tenant_id, 2)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await tags.change_tags(tx, a, add=["vip"])
        await tags.change_tags(tx, b, add=["vip", "buyer"])
    now = utcnow()
    assert await drain(runtime, tenant_id, at=now) == 2
    assert await drain(runtime, tenant_id, at=now) == 0  # both wait now
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 2
    assert {r.step for r in await runs(runtime, tenant_id)} == {"pause"}
    assert await drain(runtime, tenant_id, at=now + dt.timedelta(minutes=59)) == 0  # not due yet
    later = now + dt.timedelta(seconds=3601)
    assert await drain(runtime, tenant_id, at=later) == 2
    done = {r.customer_id: r for r in await runs(runtime, tenant_id)}
    assert done[a].status == done[b].status == "done"
    steps = {(s.customer_id, s.step, s.outcome) for s in await ledger(runtime, tenant_id)}
    assert steps == {
        (a, "hello", "sent"),
        (a, "pause", "waited"),
        (a, "check", "no"),
        (b, "hello", "sent"),
        (b, "pause", "waited"),
        (b, "check", "yes"),
        (b, "thanks", "done"),
    }
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 2  # still: each send once
    async with runtime.transaction(ctx(tenant_id)) as tx:  # entering again: one run per customer and version
        from guanxi.plugins.automation.journeys import service

        assert await service.enter(tx, await service.get_journey(tx.session, "welcome"), [a, b]) == 0


async def test_opt_out_between_trigger_and_send_is_skipped_with_the_reason(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await activate(runtime, tenant_id, definition([{"id": "pause", "type": "wait", "seconds": 60}, *THREE_STEPS[:1]]))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    now = utcnow()
    await drain(runtime, tenant_id, at=now)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await consent.set_consent(tx, a, "jchat", "opted_out", source="unsubscribe link")
    await drain(runtime, tenant_id, at=now + dt.timedelta(seconds=61))
    (skip,) = [s for s in await ledger(runtime, tenant_id) if s.step == "hello"]
    assert skip.outcome == "skipped" and skip.reason is not None and skip.reason.startswith("NO_CONSENT")
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 0


async def test_a_goal_ends_the_run_early_as_a_conversion(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await activate(runtime, tenant_id, definition(THREE_STEPS, goal={"interaction_kind": "purchase"}))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    await drain(runtime, tenant_id)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await interactions.record_interaction(
            tx, interactions.InteractionInput(customer_id=a, channel="jchat", kind="purchase", direction="in", dedupe_key="buy-1")
        )
    (run,) = await runs(runtime, tenant_id)
    assert run.status == "converted" and run.step is None
    assert await drain(runtime, tenant_id, at=utcnow() + dt.timedelta(hours=2)) == 0


async def test_wait_for_an_event_goes_on_when_it_comes_and_times_out_otherwise(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    steps = [
        {"id": "reply", "type": "wait_event", "kind": "message_in", "timeout_s": 600, "on_timeout": "nudge"},
        {"id": "thanks", "type": "tag", "add": ["replied"], "next": None},
        {"id": "nudge", "type": "tag", "add": ["silent"]},
    ]
    await activate(runtime, tenant_id, definition(steps))
    a, b = await make_customers(runtime, tenant_id, 2)
    await enter(runtime, tenant_id, "welcome", [a, b])
    now = utcnow()
    await drain(runtime, tenant_id, at=now)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await interactions.record_interaction(
            tx, interactions.InteractionInput(customer_id=a, channel="jchat", kind="message_in", direction="in", dedupe_key="hi-1")
        )
    assert await drain(runtime, tenant_id, at=utcnow()) == 1  # a: woken by its event
    assert await drain(runtime, tenant_id, at=now + dt.timedelta(seconds=601)) == 1  # b: timed out
    outcome = {(s.customer_id, s.step): s.outcome for s in await ledger(runtime, tenant_id)}
    assert outcome == {(a, "reply"): "event", (a, "thanks"): "done", (b, "reply"): "timeout", (b, "nudge"): "done"}
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(Interaction))).scalar_one() >= 1


async def test_a_goal_reached_while_a_worker_advances_the_run_is_not_overwritten_by_the_worker(
    runtime: Runtime, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker holds the run (its batch transaction, rows locked on PostgreSQL) when the
    customer's purchase reaches the goal: the goal's transaction waits for the worker's commit and
    then converts the run; the worker's write does not put it back to waiting."""
    import asyncio

    from guanxi.plugins.automation.journeys import engine

    await activate(runtime, tenant_id, definition(THREE_STEPS, goal={"interaction_kind": "purchase"}))
    (a,) = await make_customers(runtime, tenant_id, 1)
    await enter(runtime, tenant_id, "welcome", [a])
    inside, release = asyncio.Event(), asyncio.Event()
    original = engine.Batch.advance

    async def held(self: engine.Batch, batch_runs: list) -> None:  # type: ignore[type-arg]
        inside.set()
        await release.wait()  # the worker's transaction stays open here
        await original(self, batch_runs)

    monkeypatch.setattr(engine.Batch, "advance", held)

    async def purchase() -> None:
        async with runtime.transaction(ctx(tenant_id)) as tx:
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=a, channel="jchat", kind="purchase", direction="in", dedupe_key="buy-2")
            )

    worker = asyncio.create_task(drain(runtime, tenant_id))
    await asyncio.wait_for(inside.wait(), 30)
    goal = asyncio.create_task(purchase())
    await asyncio.sleep(0.3)  # the goal's transaction is now waiting behind the worker's
    release.set()
    await asyncio.wait_for(asyncio.gather(worker, goal), 60)
    await runtime.drain()
    (run,) = await runs(runtime, tenant_id)
    assert run.status == "converted", (run.status, run.step)
