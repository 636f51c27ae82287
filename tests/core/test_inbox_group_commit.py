"""Webhook acks that arrive together share one write (group commit of the inbox)."""

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
    repeat answered as a duplicate (the first delivery of an event is the one stored), and one
    INSERT statement for the whole burst."""
    sent = [event(n) for n in range(15)] + [event(n) for n in range(5)]
    with count_statements(runtime.engine) as seen:
        results = await asyncio.gather(*(inbox.ingest(runtime, tenant_id, e) for e in sent))
    assert [r.duplicate for r in results] == [False] * 15 + [True] * 5
    assert all((r.inbox_id is None) == r.duplicate for r in results)
    stored_by = {n: r.inbox_id for n, r in enumerate(results[:15])}
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
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
    sqlite = runtime.engine.dialect.name == "sqlite"
    async with runtime.engine.begin() as conn:
        if sqlite:
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_grp_200 BEFORE INSERT ON inbox_events WHEN NEW.provider_event_id = 'grp-200' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse_grp_200() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.provider_event_id = 'grp-200' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_grp_200 BEFORE INSERT ON inbox_events FOR EACH ROW EXECUTE FUNCTION refuse_grp_200()"
            )
    try:
        good = [inbox.ingest(runtime, tenant_id, event(100 + n)) for n in range(4)]
        bad = inbox.ingest(runtime, tenant_id, event(200))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
    finally:
        async with runtime.engine.begin() as conn:
            if sqlite:
                await conn.exec_driver_sql("DROP TRIGGER refuse_grp_200")
            else:
                await conn.exec_driver_sql("DROP TRIGGER refuse_grp_200 ON inbox_events")
                await conn.exec_driver_sql("DROP FUNCTION refuse_grp_200()")
    assert [isinstance(r, Exception) for r in results] == [False, False, False, False, True]
    assert "refused" in str(results[4])
    async with runtime.session(tenant_id) as s:
        stored = set((await s.execute(select(InboxEvent.provider_event_id))).scalars())
    assert stored == {f"grp-{100 + n}" for n in range(4)}
