"""Webhook acks that arrive together share one write (group commit of the inbox on SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import func, select

from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import InboxEvent, Interaction
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.testing.sql import count_statements

T0 = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


def event(n: int) -> InboundEvent:
    return InboundEvent(
        channel="wecom",
        provider_event_id=f"grp-{n}",
        occurred_at=T0 + dt.timedelta(minutes=n),
        identity=ProfileInput(external_id=f"wm-{n % 3}"),
        kind="message_in",
        text=f"hi {n}",
    )


async def test_concurrent_acks_store_each_event_once_and_flag_repeats(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """20 deliveries at once, 5 of them repeating an event of the same burst: 15 rows, each
    repeat answered as a duplicate, and on SQLite one INSERT statement for the whole burst."""
    sent = [event(n) for n in range(15)] + [event(n) for n in range(5)]
    with count_statements(runtime.engine) as seen:
        results = await asyncio.gather(*(inbox.ingest(runtime, tenant_id, e) for e in sent))
    # each event is stored by exactly one of its deliveries (on PostgreSQL, where each ack has its
    # own transaction, either delivery of a repeated event may be the one that lands first)
    stored_by = {}
    for n, r in enumerate(results):
        key = n % 15
        assert (r.inbox_id is None) == r.duplicate
        if not r.duplicate:
            assert key not in stored_by, f"event {key} stored twice"
            stored_by[key] = r.inbox_id
    assert sorted(stored_by) == list(range(15)) and sum(r.duplicate for r in results) == 5
    if runtime.engine.dialect.name == "sqlite":  # one group, in arrival order: the first delivery wins
        assert [r.duplicate for r in results] == [False] * 15 + [True] * 5
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    if runtime.engine.dialect.name == "sqlite":
        assert len(inserts) == 1
    else:
        assert len(inserts) == 20
    async with runtime.session(tenant_id) as s:
        stored = (await s.execute(select(InboxEvent.provider_event_id, InboxEvent.id))).all()
    assert {p: i for p, i in stored} == {f"grp-{n}": stored_by[n] for n in range(15)}
    while await inbox.run_once(runtime, tenant_id=tenant_id):
        pass
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(Interaction))).scalar_one() == 15


async def test_a_bad_row_in_a_burst_fails_only_its_own_delivery(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """When the shared insert fails (here a trigger refuses one row of the burst), each row is
    stored on its own: the others are acknowledged and stored, only the bad one's delivery fails."""
    if runtime.engine.dialect.name != "sqlite":
        return  # the group commit is SQLite's; PostgreSQL stores each row in its own transaction
    async with runtime.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TRIGGER refuse_grp_200 BEFORE INSERT ON inbox_events WHEN NEW.provider_event_id = 'grp-200' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    try:
        good = [inbox.ingest(runtime, tenant_id, event(100 + n)) for n in range(4)]
        bad = inbox.ingest(runtime, tenant_id, event(200))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
    finally:
        async with runtime.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TRIGGER refuse_grp_200")
    assert [isinstance(r, Exception) for r in results] == [False, False, False, False, True]
    assert "refused" in str(results[4])
    async with runtime.session(tenant_id) as s:
        stored = set((await s.execute(select(InboxEvent.provider_event_id))).scalars())
    assert stored == {f"grp-{100 + n}" for n in range(4)}
