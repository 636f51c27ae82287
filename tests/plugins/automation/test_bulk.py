"""Bulk sends (群发) through GraphQL and the scheduler: recipients frozen from a segment, queued
once each through the outbox (consent and channel policy checked, the message on the timeline),
throttled, resumable after a crash, approval when the tenant requires it, and per-send figures."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import Interaction, OutboxMessage, ScheduledJob
from guanxi.core.queues import outbox, scheduler
from guanxi.core.services import consent, identities, interactions, tenant_plugins
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.automation.bulk import service as bulk
from guanxi.plugins.automation.bulk.models import AutomationBulkRecipient
from tests.plugins.automation.channels import ChannelsPlugin
from tests.plugins.automation.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("automation", "chans")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": ChannelsPlugin()}


@pytest.fixture
def chans(runtime: Runtime) -> ChannelsPlugin:
    return runtime.pm.get_plugin("chans")  # type: ignore[no-any-return]


CREATE_SEGMENT = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) { segment { id } errors { code } } }"""
CREATE = """mutation($input: CreateBulkSendInput!) { createBulkSend(input: $input) {
  bulkSend { id status ratePerMinute } errors { code field message } } }"""
FIGURES = """query($id: ID!) { bulkSend(id: $id) { status figures { targeted pending queued skipped sent delivered read failed
  opened clicked replied optedOut skippedByReason { code count } } } }"""


async def customer_on(runtime: Runtime, tenant_id: uuid.UUID, name: str, *channels: str) -> uuid.UUID:
    cid = await new_customer(runtime, tenant_id, name)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for ch in channels:
            await identities.attach_identity(tx, cid, identities.IdentityInput(channel=ch, external_id=f"{ch}-{name}"))
    return cid


async def static_segment(team: Team, key: str, ids: list[uuid.UUID]) -> str:
    body = await team.call["admin"](
        CREATE_SEGMENT, {"input": {"key": key, "name": key, "kind": "STATIC", "customerIds": [to_global_id("Customer", c) for c in ids]}}
    )
    return str(body["data"]["createSegment"]["segment"]["id"])


async def run_jobs(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    return await scheduler.run_once(runtime, tenant_id=tenant_id)


async def outbox_rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[OutboxMessage]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(OutboxMessage).order_by(OutboxMessage.created_at))).scalars())


async def figures(team: Team, send: str) -> dict[str, Any]:
    body = await team.call["admin"](FIGURES, {"id": send})
    return dict(body["data"]["bulkSend"]["figures"])


@pytest.fixture
async def audience(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Ann and Bo on the broadcast channel, Cy on it but opted out, Di on no channel."""
    people = {
        "Ann": await customer_on(runtime, tenant_id, "Ann", "broadcast"),
        "Bo": await customer_on(runtime, tenant_id, "Bo", "broadcast"),
        "Cy": await customer_on(runtime, tenant_id, "Cy", "broadcast"),
        "Di": await customer_on(runtime, tenant_id, "Di"),
    }
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, people["Cy"], "broadcast", "opted_out")
    return people


async def test_a_bulk_send_queues_each_member_once_through_the_outbox_onto_the_timeline(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID], chans: ChannelsPlugin
) -> None:
    segment = await static_segment(team, "all", list(audience.values()))
    body = await team.call["admin"](
        CREATE, {"input": {"name": "Spring sale", "segmentId": segment, "channel": "broadcast", "text": "20% off"}}
    )
    created = body["data"]["createBulkSend"]["bulkSend"]
    assert created["status"] == "SENDING"
    assert await run_jobs(runtime, tenant_id) == 1
    await outbox.run_once(runtime, tenant_id=tenant_id)
    assert sorted(m.recipient for m in chans.broadcast.sent) == ["broadcast-Ann", "broadcast-Bo"]
    got = await figures(team, created["id"])
    assert got == {
        "targeted": 4, "pending": 0, "queued": 2, "skipped": 2, "sent": 2, "delivered": 0, "read": 0, "failed": 0,
        "opened": 0, "clicked": 0, "replied": 0, "optedOut": 0,
        "skippedByReason": [{"code": "NO_CONSENT", "count": 1}, {"code": "VALIDATION", "count": 1}],
    }  # fmt: skip
    async with runtime.session(tenant_id) as s:
        timeline = (await s.execute(select(Interaction.customer_id).where(Interaction.direction == "out"))).scalars().all()
    assert sorted(timeline) == sorted([audience["Ann"], audience["Bo"]])
    status = await team.call["admin"](FIGURES, {"id": created["id"]})
    assert status["data"]["bulkSend"]["status"] == "DONE"


async def test_figures_count_replies_clicks_and_opt_outs_after_the_send(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID]
) -> None:
    segment = await static_segment(team, "two", [audience["Ann"], audience["Bo"]])
    body = await team.call["admin"](CREATE, {"input": {"name": "News", "segmentId": segment, "channel": "broadcast", "text": "hi"}})
    send = body["data"]["createBulkSend"]["bulkSend"]["id"]
    await run_jobs(runtime, tenant_id)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for kind, channel, who in (
            ("message_in", "broadcast", "Ann"),
            ("click", "web", "Ann"),
            ("click", "web", "Ann"),
            ("click", "web", "Bo"),
        ):
            data = interactions.InteractionInput(customer_id=audience[who], channel=channel, kind=kind, occurred_at=later)
            await interactions.record_interaction(tx, data)
        await consent.set_consent(tx, audience["Bo"], "broadcast", "opted_out")
    got = await figures(team, send)
    assert (got["replied"], got["clicked"], got["optedOut"], got["queued"]) == (1, 2, 1, 2)


async def test_a_send_is_throttled_to_its_rate_a_minute(runtime: Runtime, tenant_id: uuid.UUID, team: Team) -> None:
    people = [await customer_on(runtime, tenant_id, f"P{i}", "broadcast") for i in range(5)]
    segment = await static_segment(team, "five", people)
    body = await team.call["admin"](
        CREATE, {"input": {"name": "Slow", "segmentId": segment, "channel": "broadcast", "text": "hi", "ratePerMinute": 2}}
    )
    send = body["data"]["createBulkSend"]["bulkSend"]["id"]
    before = dt.datetime.now(dt.UTC)
    await run_jobs(runtime, tenant_id)
    assert (await figures(team, send))["queued"] == 2
    async with runtime.session(tenant_id) as s:
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == bulk.JOB))).scalar_one()
    assert job.status == "scheduled" and job.next_attempt_at >= before + dt.timedelta(seconds=60)
    assert await run_jobs(runtime, tenant_id) == 0  # not due yet


async def test_a_crash_mid_batch_sends_nothing_twice_when_the_job_runs_again(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, monkeypatch: pytest.MonkeyPatch, chans: ChannelsPlugin
) -> None:
    people = [await customer_on(runtime, tenant_id, f"P{i}", "broadcast") for i in range(4)]
    segment = await static_segment(team, "four", people)
    body = await team.call["admin"](CREATE, {"input": {"name": "Crash", "segmentId": segment, "channel": "broadcast", "text": "hi"}})
    send_id = from_global_id(body["data"]["createBulkSend"]["bulkSend"]["id"], "BulkSend")
    calls = {"n": 0}
    real = bulk.send_message

    async def dies_on_the_third(tx: Any, request: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return await real(tx, request)

    monkeypatch.setattr(bulk, "send_message", dies_on_the_third)
    with pytest.raises(RuntimeError):
        await bulk.run_batch(runtime, tenant_id, send_id)
    assert await outbox_rows(runtime, tenant_id) == []  # the batch's transaction left nothing
    monkeypatch.setattr(bulk, "send_message", real)
    assert await bulk.run_batch(runtime, tenant_id, send_id) == 4
    assert await bulk.run_batch(runtime, tenant_id, send_id) == 0  # done: a late rerun does nothing
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # a lost row update: the key still holds
        await tx.session.execute(AutomationBulkRecipient.__table__.update().values(status="pending"))
        (await bulk.get_send(tx.session, send_id)).status = "sending"
    await bulk.run_batch(runtime, tenant_id, send_id)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    rows = await outbox_rows(runtime, tenant_id)
    assert sorted(r.customer_id for r in rows) == sorted(people)
    assert len(chans.broadcast.sent) == 4
    assert body["data"]["createBulkSend"]["errors"] == []


async def test_a_tenant_requiring_approval_holds_the_send_until_an_admin_approves(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID]
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await tenant_plugins.set_plugin_settings(tx, "automation", {"bulk_requires_approval": True})
    segment = await static_segment(team, "all", list(audience.values()))
    body = await team.call["mia"](CREATE, {"input": {"name": "Held", "segmentId": segment, "channel": "broadcast", "text": "hi"}})
    send = body["data"]["createBulkSend"]["bulkSend"]
    assert send["status"] == "PENDING_APPROVAL"
    assert await run_jobs(runtime, tenant_id) == 0 and await outbox_rows(runtime, tenant_id) == []
    approve = 'mutation($id: ID!) { approveBulkSend(id: $id, note: "ok") { bulkSend { status } errors { code } } }'
    denied = await team.call["mia"](approve, {"id": send["id"]})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    ok = await team.call["admin"](approve, {"id": send["id"]})
    assert ok["data"]["approveBulkSend"] == {"bulkSend": {"status": "SENDING"}, "errors": []}
    again = await team.call["admin"](approve, {"id": send["id"]})
    assert again["data"]["approveBulkSend"]["errors"] == [{"code": "CONFLICT"}]
    await run_jobs(runtime, tenant_id)
    assert len(await outbox_rows(runtime, tenant_id)) == 2


async def test_the_channels_own_policy_comes_from_its_adapter(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID]
) -> None:
    """A channel that cannot broadcast, an unknown channel and a text too long are refused; a
    channel with a messaging window skips customers outside it (Douyin's reply window)."""
    segment = await static_segment(team, "all", list(audience.values()))
    for channel, text, code, field in (
        ("onetoone", "hi", "CHANNEL_CAPABILITY", "channel"),
        ("nowhere", "hi", "CHANNEL_CAPABILITY", "channel"),
        ("broadcast", "x" * 201, "VALIDATION", "text"),
    ):
        body = await team.call["admin"](CREATE, {"input": {"name": "N", "segmentId": segment, "channel": channel, "text": text}})
        (error,) = body["data"]["createBulkSend"]["errors"]
        assert (error["code"], error["field"]) == (code, field)
    windowed = [await customer_on(runtime, tenant_id, n, "windowed") for n in ("Wen", "Xi")]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        data = interactions.InteractionInput(customer_id=windowed[0], channel="windowed", kind="message_in")
        await interactions.record_interaction(tx, data)
    segment = await static_segment(team, "win", windowed)
    body = await team.call["admin"](CREATE, {"input": {"name": "W", "segmentId": segment, "channel": "windowed", "text": "hi"}})
    await run_jobs(runtime, tenant_id)
    got = await figures(team, body["data"]["createBulkSend"]["bulkSend"]["id"])
    assert (got["queued"], got["skippedByReason"]) == (1, [{"code": "CHANNEL_CAPABILITY", "count": 1}])


async def test_cancelling_stops_recipients_not_yet_queued(runtime: Runtime, tenant_id: uuid.UUID, team: Team) -> None:
    people = [await customer_on(runtime, tenant_id, f"P{i}", "broadcast") for i in range(3)]
    segment = await static_segment(team, "three", people)
    body = await team.call["admin"](
        CREATE, {"input": {"name": "C", "segmentId": segment, "channel": "broadcast", "text": "hi", "ratePerMinute": 1}}
    )
    send = body["data"]["createBulkSend"]["bulkSend"]["id"]
    await run_jobs(runtime, tenant_id)
    cancel = await team.call["admin"](
        "mutation($id: ID!) { cancelBulkSend(id: $id) { bulkSend { status } errors { code } } }", {"id": send}
    )
    assert cancel["data"]["cancelBulkSend"] == {"bulkSend": {"status": "CANCELLED"}, "errors": []}
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 1
    got = await figures(team, send)
    assert (got["queued"], got["pending"]) == (1, 2)


async def test_figures_take_four_statements_whatever_the_sends_size(runtime: Runtime, tenant_id: uuid.UUID, team: Team) -> None:
    from guanxi.testing.sql import count_statements

    counts = []
    for size in (2, 6):
        people = [await customer_on(runtime, tenant_id, f"S{size}-{i}", "broadcast") for i in range(size)]
        segment = await static_segment(team, f"size-{size}", people)
        body = await team.call["admin"](CREATE, {"input": {"name": "F", "segmentId": segment, "channel": "broadcast", "text": "hi"}})
        await run_jobs(runtime, tenant_id)
        send_id = from_global_id(body["data"]["createBulkSend"]["bulkSend"]["id"], "BulkSend")
        async with runtime.session(tenant_id) as s:
            send = await bulk.get_send(s, send_id)
            with count_statements(runtime.engine) as seen:
                got = await bulk.figures(s, send)
        assert got.queued == size
        counts.append(len(seen))
    assert counts == [4, 4]


async def test_a_customers_export_names_their_segments_and_sends_and_erasure_clears_the_reasons(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID]
) -> None:
    from guanxi.core.services import privacy

    segment = await static_segment(team, "all", list(audience.values()))
    await team.call["admin"](CREATE, {"input": {"name": "Spring sale", "segmentId": segment, "channel": "broadcast", "text": "20% off"}})
    await run_jobs(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        data = await privacy.export_customer_data(runtime, s, audience["Cy"])
    mine = data["plugins"]["automation"]
    assert mine["segments"] == ["all"]
    (sent,) = mine["bulk_sends"]
    assert (sent["send"], sent["status"], sent["code"]) == ("Spring sale", "skipped", "NO_CONSENT")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        counts = await privacy.erase_customer(tx, audience["Cy"])
    assert counts["automation.bulk_recipients"] == 1
    async with runtime.session(tenant_id) as s:
        reasons = (
            (await s.execute(select(AutomationBulkRecipient.reason).where(AutomationBulkRecipient.customer_id == audience["Cy"])))
            .scalars()
            .all()
        )
    assert reasons == [None]


async def test_figures_by_day_add_up_to_the_totals_and_count_replies_and_clicks_on_their_day(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, audience: dict[str, uuid.UUID]
) -> None:
    """The send over time (issue 22 item 4): queued, skipped and sent by the day they happened, and
    a reply two days later on that day (in the tenant's time zone); the days add up to the send's totals."""
    segment = await static_segment(team, "all", list(audience.values()))
    body = await team.call["admin"](CREATE, {"input": {"name": "Days", "segmentId": segment, "channel": "broadcast", "text": "hi"}})
    send = body["data"]["createBulkSend"]["bulkSend"]["id"]
    await run_jobs(runtime, tenant_id)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for kind, channel in (("message_in", "broadcast"), ("click", "web")):
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=audience["Ann"], channel=channel, kind=kind, occurred_at=later)
            )
    query = (
        "query($id: ID!) { bulkSend(id: $id) { figuresByDay { day queued skipped sent replied clicked } figures { queued skipped sent } } }"
    )
    got = (await team.call["admin"](query, {"id": send}))["data"]["bulkSend"]
    days = got["figuresByDay"]
    assert [d["day"] for d in days] == sorted(d["day"] for d in days) and len(days) >= 2
    for field in ("queued", "skipped", "sent"):
        assert sum(d[field] for d in days) == got["figures"][field], field
    local = later.astimezone(ZoneInfo("Asia/Shanghai"))  # the test tenant's time zone: days are the tenant's
    assert days[-1] == {"day": local.date().isoformat(), "queued": 0, "skipped": 0, "sent": 0, "replied": 1, "clicked": 1}
