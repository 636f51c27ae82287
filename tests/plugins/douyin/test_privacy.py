"""Raw events kept in ``douyin_events`` (issue 18 follow-up 1): a customer's export and erasure
cover the ignored events about them (by open_id, and by union_id across channels), and ignored
events past their retention are purged by the daily job scheduled when an account connects."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from guanxi import Runtime
from guanxi.core.domain.models import Identity, ScheduledJob, utcnow
from guanxi.core.queues import scheduler
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.douyin.models import DouyinEvent
from guanxi.plugins.douyin.privacy import PURGE_JOB
from tests.plugins.douyin.conftest import deliver, envelope, im_content, settle

pytestmark = pytest.mark.plugins("douyin")

EXPORT = "query($id: ID!) { exportCustomerData(id: $id) }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { erased errors { code message } } }"


async def kept(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, DouyinEvent]:
    async with runtime.session(tenant_id) as s:
        return {r.dedupe_key: r for r in (await s.execute(select(DouyinEvent))).scalars()}


async def customer_of(runtime: Runtime, tenant_id: uuid.UUID, open_id: str) -> uuid.UUID:
    async with runtime.session(tenant_id) as s:
        return (await s.execute(select(Identity.customer_id).where(Identity.external_id == open_id))).scalar_one()


async def test_export_and_erasure_cover_the_ignored_events_about_the_customer_by_open_id_and_union_id(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any
) -> None:
    msg = im_content("你好", "cust-p")
    msg["user_infos"][0]["union_id"] = "UNION-P"
    assert (await deliver(anonymous_client, envelope("im_receive_msg", msg, from_user="cust-p", to_user=business))).status_code == 200
    await settle(runtime, tenant_id)
    # events of a type the plugin ignores, holding what people wrote
    mine = envelope("im_group_receive_msg", {"text": "我的电话 13800000000"}, from_user="cust-p", to_user=business)
    other_app = {"text": "from the same person through another app", "user_infos": [{"open_id": "cust-p2", "union_id": "UNION-P"}]}
    by_union = envelope("im_group_receive_msg", other_app, from_user="cust-p2", to_user=business, as_string=False)
    someone_else = envelope("im_group_receive_msg", {"text": "not them"}, from_user="cust-q", to_user=business)
    for n, body in enumerate((mine, by_union, someone_else)):
        assert (await deliver(anonymous_client, body, msg_id=f"IGN-{n}")).status_code == 200
    rows = await kept(runtime, tenant_id)
    assert rows["msg:IGN-0"].user_open_id == "cust-p" and rows["msg:IGN-1"].user_union_id == "UNION-P"
    customer = to_global_id("Customer", await customer_of(runtime, tenant_id, "cust-p"))

    section = (await graphql(EXPORT, {"id": customer}))["data"]["exportCustomerData"]["plugins"]["douyin"]
    texts = sorted(e["body"]["content"]["text"] for e in section["events"])
    assert texts == ["from the same person through another app", "我的电话 13800000000"]

    erased = (await graphql(ERASE, {"id": customer}))["data"]["eraseCustomer"]
    assert erased["errors"] == [] and erased["erased"]["douyin.events"] == 2
    rows = await kept(runtime, tenant_id)
    for key in ("msg:IGN-0", "msg:IGN-1"):  # the row stays (a late retry is still a duplicate), the content goes
        assert (rows[key].body, rows[key].user_open_id, rows[key].user_union_id) == ({}, None, None)
    assert rows["msg:IGN-2"].body["content"] == {"text": "not them"}
    again = (await graphql(ERASE, {"id": customer}))["data"]["eraseCustomer"]["erased"]
    assert "douyin.events" not in again
    assert (await deliver(anonymous_client, mine, msg_id="IGN-0")).status_code == 200  # a retry stores nothing again
    assert (await kept(runtime, tenant_id))["msg:IGN-0"].body == {}


async def test_connecting_an_account_schedules_the_daily_purge_which_deletes_only_old_ignored_events(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    async with runtime.session(tenant_id) as s:
        (job,) = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB))).scalars()
    assert job.cron is not None and job.status == "scheduled"
    for n in range(2):
        body = envelope("im_group_receive_msg", {"text": f"ignored {n}"}, from_user="cust-r", to_user=business)
        assert (await deliver(anonymous_client, body, msg_id=f"OLD-{n}")).status_code == 200
    authorize = envelope("authorize", {"scopes": ["user_info"]}, from_user=business, to_user=business)
    assert (await deliver(anonymous_client, authorize, msg_id="AUTH-1")).status_code == 200
    now = utcnow()
    async with runtime.write_session(tenant_id) as s:
        old = now - dt.timedelta(days=31)
        await s.execute(update(DouyinEvent).where(DouyinEvent.dedupe_key.in_(["msg:OLD-0", "msg:AUTH-1"])).values(received_at=old))
        await s.execute(update(DouyinEvent).where(DouyinEvent.dedupe_key == "msg:OLD-1").values(received_at=now - dt.timedelta(days=29)))
        await s.execute(update(ScheduledJob).where(ScheduledJob.id == job.id).values(slot_at=now, next_attempt_at=now))
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    rows = await kept(runtime, tenant_id)
    assert sorted(rows) == ["msg:AUTH-1", "msg:OLD-1"]  # applied account events are not what the retention is about
    async with runtime.session(tenant_id) as s:
        done = await s.get(ScheduledJob, (tenant_id, job.id))
    assert done is not None and done.runs == 1 and done.status == "scheduled" and done.slot_at > now


def test_a_negative_retention_is_a_configuration_problem() -> None:
    from guanxi.plugins.douyin.settings import DouyinSettings

    assert DouyinSettings(ignored_event_retention_days=0).problems() == []
    assert DouyinSettings(ignored_event_retention_days=-1).problems() == [
        "`$.plugins.douyin.ignored_event_retention_days` must be >= 0 (0 keeps ignored events)"
    ]


async def test_douyin_0003_schedules_the_purge_for_a_tenant_connected_before_the_job_existed(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    """A tenant whose account was connected before the purge job existed had no job, so its
    ignored events were kept for ever; douyin_0003 schedules it (once: a tenant that has it keeps
    its one job), and it purges like a job the plugin scheduled."""
    from sqlalchemy import delete

    from guanxi.core.migrate import migrate_to

    body = envelope("im_group_receive_msg", {"text": "kept too long"}, from_user="cust-s", to_user=business)
    assert (await deliver(anonymous_client, body, msg_id="LEGACY-0")).status_code == 200
    try:
        await migrate_to(runtime, "douyin", "douyin_0002")
        async with runtime.write_session(tenant_id) as s:  # as a tenant connected before douyin_0002
            await s.execute(delete(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB))
            await s.execute(update(DouyinEvent).values(received_at=utcnow() - dt.timedelta(days=31)))
    finally:
        await migrate_to(runtime, "douyin", "heads")
    async with runtime.session(tenant_id) as s:
        (job,) = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB))).scalars()
    assert (job.key, job.cron, job.status, job.runs) == (PURGE_JOB, "23 3 * * *", "scheduled", 0)
    assert job.next_attempt_at <= utcnow()  # due at once, daily after that

    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    assert "msg:LEGACY-0" not in await kept(runtime, tenant_id)
    await migrate_to(runtime, "douyin", "douyin_0002")
    await migrate_to(runtime, "douyin", "heads")
    async with runtime.session(tenant_id) as s:
        jobs = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == PURGE_JOB))).scalars().all()
    assert [j.id for j in jobs] == [job.id]
