"""Staff notifications: in-app rows, de-duplication, the staff delivery queue (retries, failures,
unreachable users), preferences (channels, muted kinds, quiet hours, digests), GraphQL and the
subscription, the user's data export and erasure, and core's task reminders."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from guanxi import hookimpl
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.channels import (
    DeliveryResult,
    PermanentDeliveryError,
    StaffChannel,
    StaffNotice,
    TransientDeliveryError,
)
from guanxi.core.domain.models import Notification, NotificationDelivery, ScheduledJob, Task, User, utcnow
from guanxi.core.queues import scheduler, staff
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, notifications, privacy, reminders, tasks, users
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import api_key


class Pager(StaffChannel):
    """A staff channel whose outcomes each test scripts; it reaches users in ``addresses``."""

    name = "pager"
    max_text_length: ClassVar[int | None] = 200

    def __init__(self) -> None:
        self.addresses: dict[uuid.UUID, str] = {}
        self.outcomes: list[str] = []  # "ok", "transient", "permanent"
        self.sent: list[StaffNotice] = []

    async def recipient(self, session: TenantSession, user_id: uuid.UUID) -> str | None:
        return self.addresses.get(user_id)

    async def send(self, notice: StaffNotice) -> DeliveryResult:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "transient":
            raise TransientDeliveryError("pager gateway busy")
        if outcome == "permanent":
            raise PermanentDeliveryError("pager number disconnected")
        self.sent.append(notice)
        return DeliveryResult(provider_message_id=f"p-{len(self.sent)}")


class PagerPlugin:
    def __init__(self) -> None:
        self.pager = Pager()

    @hookimpl
    def guanxi_staff_channels(self) -> list[StaffChannel]:
        return [self.pager]


@pytest.fixture
def plugin() -> PagerPlugin:
    return PagerPlugin()


@pytest.fixture
def extra_plugins(plugin: PagerPlugin) -> dict[str, object]:
    return {"pagerplugin": plugin}


pytestmark = pytest.mark.plugins("pagerplugin")


@pytest.fixture
def pager(plugin: PagerPlugin) -> Pager:
    return plugin.pager


@pytest.fixture
async def user_id(runtime: Runtime, tenant_id: uuid.UUID, pager: Pager) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        user = await users.create_user(tx, email="li.lei@acme.example", name="Li Lei")
    pager.addresses[user.id] = "pager-li"
    return user.id


def note(user_id: uuid.UUID, key: str = "k1", kind: str = "test.ping", **extra: Any) -> notifications.NotificationInput:
    return notifications.NotificationInput(user_id=user_id, kind=kind, title=extra.pop("title", "Ping"), dedupe_key=key, **extra)


async def _notify(runtime: Runtime, tenant_id: uuid.UUID, data: notifications.NotificationInput) -> tuple[Notification, bool]:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return await notifications.notify(tx, data)


async def _deliveries(runtime: Runtime, tenant_id: uuid.UUID) -> list[NotificationDelivery]:
    async with runtime.session(tenant_id) as s:
        return list((await s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.created_at))).all())


async def _due_now(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(NotificationDelivery).where(NotificationDelivery.status == "queued").values(next_attempt_at=utcnow()))


# -- recording and delivering ---------------------------------------------------------------


async def test_a_notification_is_stored_once_per_dedupe_key_and_delivered_once(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    first, created = await _notify(runtime, tenant_id, note(user_id, body="Call Wang back", link_type="task", link_id=uuid.uuid4()))
    again, created_again = await _notify(runtime, tenant_id, note(user_id, title="Different"))
    assert created and not created_again and again.id == first.id
    assert await staff.run_once(runtime, tenant_id=tenant_id) == 1
    assert await staff.run_once(runtime, tenant_id=tenant_id) == 0
    assert [(n.recipient, n.text, n.kind) for n in pager.sent] == [("pager-li", "Ping\nCall Wang back", "test.ping")]
    assert pager.sent[0].idempotency_key == f"notification-delivery:{pager.sent[0].id}"
    [row] = await _deliveries(runtime, tenant_id)
    assert (row.status, row.provider_message_id, row.attempts) == ("sent", "p-1", 1)


async def test_a_failing_channel_is_retried_then_failed_with_the_error_and_the_in_app_notification_stays(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    pager.outcomes = ["transient"] * 10
    runtime.settings.queues  # noqa: B018 - the deliverer below takes max_attempts explicitly
    deliverer = staff.StaffDeliverer(runtime, max_attempts=3)
    await _notify(runtime, tenant_id, note(user_id))
    for attempt in (1, 2, 3):
        assert await staff.run_once(runtime, deliverer, tenant_id=tenant_id) == 1
        [row] = await _deliveries(runtime, tenant_id)
        assert row.attempts == attempt and "pager gateway busy" in (row.last_error or "")
        await _due_now(runtime, tenant_id)
    assert row.status == "failed" and row.last_error == "TransientDeliveryError: pager gateway busy"
    assert await staff.run_once(runtime, deliverer, tenant_id=tenant_id) == 0
    async with runtime.session(tenant_id) as s:
        assert await notifications.unread_count(s, user_id) == 1


async def test_a_permanent_channel_error_fails_at_once(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager) -> None:
    pager.outcomes = ["permanent"]
    await _notify(runtime, tenant_id, note(user_id))
    await staff.run_once(runtime, tenant_id=tenant_id)
    [row] = await _deliveries(runtime, tenant_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "PermanentDeliveryError: pager number disconnected")
    assert await staff.retry(runtime, tenant_id, row.id)
    await staff.run_once(runtime, tenant_id=tenant_id)
    assert (await _deliveries(runtime, tenant_id))[0].status == "sent"


async def test_a_user_no_channel_reaches_still_has_the_in_app_notification(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    pager.addresses.clear()
    _, created = await _notify(runtime, tenant_id, note(user_id))
    assert created and await _deliveries(runtime, tenant_id) == []
    async with runtime.session(tenant_id) as s:
        assert [n.title for n in await notifications.list_notifications(s, user_id, first=10)] == ["Ping"]


async def test_a_muted_kind_stays_in_app_and_a_kind_can_choose_no_channel(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        kinds = {"test.muted": {"muted": True}, "test.quiet": {"channels": []}}
        await notifications.update_settings(tx, user_id, notifications.SettingsInput(kinds=kinds))
    await _notify(runtime, tenant_id, note(user_id, "a", kind="test.muted"))
    await _notify(runtime, tenant_id, note(user_id, "b", kind="test.quiet"))
    await _notify(runtime, tenant_id, note(user_id, "c", kind="test.loud"))
    assert [d.channel for d in await _deliveries(runtime, tenant_id)] == ["pager"]
    async with runtime.session(tenant_id) as s:
        assert await notifications.unread_count(s, user_id) == 3


async def test_digest_items_wait_for_the_digest_time_and_leave_as_one_message(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await notifications.update_settings(
            tx, user_id, notifications.SettingsInput(kinds={"test.digest": {"digest": True}}, digest_at="07:30")
        )
    for i in range(3):
        await _notify(runtime, tenant_id, note(user_id, f"d{i}", kind="test.digest", title=f"Item {i}"))
    rows = await _deliveries(runtime, tenant_id)
    assert all(r.digest and r.next_attempt_at > utcnow() for r in rows)
    local = rows[0].next_attempt_at.astimezone(ZoneInfo("Asia/Shanghai"))  # the tenant's zone (the user has none)
    assert (local.hour, local.minute) == (7, 30)
    assert await staff.run_once(runtime, tenant_id=tenant_id) == 0  # not yet
    await _due_now(runtime, tenant_id)
    assert await staff.run_once(runtime, staff.StaffDeliverer(runtime), limit=1, tenant_id=tenant_id) == 1
    assert len(pager.sent) == 1
    assert pager.sent[0].text == "3 notifications\n- Item 0\n- Item 1\n- Item 2" and len(pager.sent[0].items) == 3
    assert {r.status for r in await _deliveries(runtime, tenant_id)} == {"sent"}
    assert await staff.run_once(runtime, tenant_id=tenant_id) == 0


async def test_deliveries_in_quiet_hours_wait_for_their_end_in_the_users_time_zone(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(User).where(User.id == user_id).values(time_zone="Europe/Berlin"))
    now = utcnow().astimezone(ZoneInfo("Europe/Berlin"))
    start = (now - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (now + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await notifications.update_settings(tx, user_id, notifications.SettingsInput(quiet_start=start, quiet_end=end.strftime("%H:%M")))
    await _notify(runtime, tenant_id, note(user_id))
    [row] = await _deliveries(runtime, tenant_id)
    assert row.next_attempt_at == end.astimezone(dt.UTC)


def test_quiet_hours_and_digest_times_across_midnight_and_daylight_saving() -> None:
    tz = ZoneInfo("Europe/Berlin")
    at = dt.datetime(2026, 3, 28, 23, 30, tzinfo=tz)  # the night before clocks go forward
    assert notifications.after_quiet_hours(at, "22:00", "07:00", tz) == dt.datetime(2026, 3, 29, 7, 0, tzinfo=tz)
    assert notifications.after_quiet_hours(at, "22:00", "07:00", tz) == dt.datetime(2026, 3, 29, 5, 0, tzinfo=dt.UTC)  # summer time
    assert notifications.after_quiet_hours(at.replace(hour=21), "22:00", "07:00", tz) == at.replace(hour=21)
    assert notifications.after_quiet_hours(at.replace(hour=12), "12:00", "13:00", tz) == at.replace(hour=13, minute=0)
    assert notifications.after_quiet_hours(at, None, None, tz) == at
    assert notifications.next_digest(at, "09:00", tz) == dt.datetime(2026, 3, 29, 9, 0, tzinfo=tz)
    assert notifications.next_digest(at.replace(hour=8), "09:00", tz) == at.replace(hour=9, minute=0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (notifications.SettingsInput(channels=["fax"]), "unknown staff channel"),
        (notifications.SettingsInput(quiet_start="25:00", quiet_end="07:00"), "quiet_start must be a time"),
        (notifications.SettingsInput(quiet_start="22:00"), "set both quiet_start and quiet_end"),
        (notifications.SettingsInput(kinds={"task.due_soon": {"loud": True}}), "takes only channels, digest, muted"),
        (notifications.SettingsInput(kinds={"task.due_soon": {"digest": "yes"}}), "must be true or false"),
    ],
)
async def test_bad_preferences_are_refused_naming_the_problem(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, data: notifications.SettingsInput, message: str
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        with pytest.raises(ValidationError, match=message):
            await notifications.update_settings(tx, user_id, data)


# -- task reminders ---------------------------------------------------------------------------


async def _task(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, due_in: dt.timedelta) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        customer = await customers.create_customer(tx, customers.CustomerInput(display_name="Wang Fang", owner_id=user_id))
        task = await tasks.create_task(tx, tasks.TaskInput(customer_id=customer.id, title="Send the quote", due_at=utcnow() + due_in))
    return task.id


async def test_a_task_due_soon_reminds_its_assignee_then_overdue_once_each(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    task_id = await _task(runtime, tenant_id, user_id, dt.timedelta(minutes=1))
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1  # due soon: now; overdue: in a minute
    async with runtime.write_session(tenant_id) as s:  # a minute passes
        await s.execute(update(ScheduledJob).where(ScheduledJob.kind == reminders.OVERDUE).values(next_attempt_at=utcnow()))
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    while await staff.run_once(runtime, tenant_id=tenant_id):
        pass
    async with runtime.session(tenant_id) as s:
        rows = await notifications.list_notifications(s, user_id, first=10)
    assert sorted(n.kind for n in rows) == ["task.due_soon", "task.overdue"]
    assert all(n.link_type == "task" and n.link_id == task_id and n.body == "客户:Wang Fang" for n in rows)
    assert any(n.title.startswith("任务即将到期") and n.title.endswith("Send the quote") for n in rows)
    assert sorted(n.kind for n in pager.sent) == ["task.due_soon", "task.overdue"]


async def test_completing_a_task_cancels_its_reminders(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    task_id = await _task(runtime, tenant_id, user_id, dt.timedelta(hours=3))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await tasks.complete_task(tx, task_id)
    async with runtime.session(tenant_id) as s:
        assert sorted((await s.execute(select(ScheduledJob.kind, ScheduledJob.status))).all()) == [
            (reminders.DUE_SOON, "cancelled"),
            (reminders.OVERDUE, "cancelled"),
        ]


async def test_a_reminder_run_twice_notifies_once(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A run repeated after a crash (same slot) finds the notification's dedupe key taken."""
    await _task(runtime, tenant_id, user_id, dt.timedelta(minutes=1))
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(ScheduledJob).where(ScheduledJob.kind == reminders.DUE_SOON).values(status="scheduled"))
    assert await scheduler.run_once(runtime, tenant_id=tenant_id) == 1
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(Notification))).scalar_one() == 1


# -- GraphQL ----------------------------------------------------------------------------------


@pytest.fixture
async def me(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, client: Any) -> Any:
    key = await api_key(runtime, tenant_id, "sales", user_id=user_id)

    async def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    return call


MY = "{ myNotifications { unreadCount items { id kind title body linkType linkId readAt } } }"


async def test_my_notifications_lists_unread_first_and_marks_them_read(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, me: Any
) -> None:
    task = uuid.uuid4()
    for i in range(3):
        await _notify(runtime, tenant_id, note(user_id, f"k{i}", title=f"N{i}", link_type="task", link_id=task))
    body = await me(MY)
    items = body["data"]["myNotifications"]["items"]
    assert body["data"]["myNotifications"]["unreadCount"] == 3
    assert [n["title"] for n in items] == ["N2", "N1", "N0"]
    assert items[0]["linkId"] == to_global_id("Task", task)
    marked = await me("mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { count errors { code } } }", {"ids": [items[0]["id"]]})
    assert marked["data"]["markNotificationsRead"] == {"count": 1, "errors": []}
    items = (await me(MY))["data"]["myNotifications"]["items"]
    assert [n["title"] for n in items] == ["N1", "N0", "N2"] and items[2]["readAt"] is not None
    everything = await me("mutation { markNotificationsRead(all: true) { count } }")
    assert everything["data"]["markNotificationsRead"]["count"] == 2
    assert (await me(MY))["data"]["myNotifications"]["unreadCount"] == 0


async def test_another_users_notifications_are_neither_listed_nor_marked(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, me: Any
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        other = await users.create_user(tx, email="han.meimei@acme.example", name="Han Meimei")
    theirs, _ = await _notify(runtime, tenant_id, note(other.id, "theirs", title="Private"))
    assert (await me(MY))["data"]["myNotifications"] == {"unreadCount": 0, "items": []}
    marked = await me(
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { count } }", {"ids": [to_global_id("Notification", theirs.id)]}
    )
    assert marked["data"]["markNotificationsRead"]["count"] == 0
    async with runtime.session(tenant_id) as s:
        assert await notifications.unread_count(s, other.id) == 1


async def test_preferences_are_read_and_changed_through_graphql(me: Any) -> None:
    body = await me(
        'mutation { updateMyNotificationPreferences(input: {quietStart: "22:00", quietEnd: "07:30",'
        ' kinds: {task_overdue: {digest: true}}, channels: ["pager"]})'
        " { preferences { quietStart quietEnd digestAt channels kinds availableChannels } errors { code field message } } }"
    )
    assert body["data"]["updateMyNotificationPreferences"]["errors"] == []
    read = await me("{ myNotificationPreferences { quietStart quietEnd digestAt channels kinds availableChannels } }")
    assert read["data"]["myNotificationPreferences"] == {
        "quietStart": "22:00",
        "quietEnd": "07:30",
        "digestAt": "09:00",
        "channels": ["pager"],
        "kinds": {"task_overdue": {"digest": True}},
        "availableChannels": ["pager"],
    }
    bad = await me('mutation { updateMyNotificationPreferences(input: {digestAt: "9am"}) { errors { code field message } } }')
    [error] = bad["data"]["updateMyNotificationPreferences"]["errors"]
    assert error["code"] == "VALIDATION" and "digest_at must be a time HH:MM" in error["message"]


async def test_credentials_without_a_user_get_a_clear_error(graphql: Any) -> None:
    body = await graphql(MY, ok=False)
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "act for no staff user" in body["errors"][0]["message"]


async def test_the_subscription_delivers_the_callers_notifications_only(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    from guanxi.graphql.context import GraphQLContext
    from guanxi.graphql.schema import build_schema

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        other = await users.create_user(tx, email="han.meimei@acme.example", name="Han Meimei")
    schema = build_schema(runtime)
    caller = RequestContext(tenant_id=tenant_id, actor=Actor(kind="user", user_id=user_id, name="li", roles=("sales",)))
    stream = await schema.subscribe(
        "subscription { notificationReceived { title kind } }", context_value=GraphQLContext(runtime=runtime, request_context=caller)
    )
    receive = asyncio.ensure_future(stream.__anext__())  # type: ignore[union-attr]
    await asyncio.sleep(0.05)
    await _notify(runtime, tenant_id, note(other.id, "not-mine", title="Not mine"))
    await _notify(runtime, tenant_id, note(user_id, "mine", title="Mine"))
    result = await asyncio.wait_for(receive, 5)
    assert result.data == {"notificationReceived": {"title": "Mine", "kind": "test.ping"}}
    with contextlib.suppress(Exception):
        await stream.aclose()  # type: ignore[union-attr]


async def test_scheduled_jobs_are_visible_and_cancellable_by_admins(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, graphql: Any
) -> None:
    await _task(runtime, tenant_id, user_id, dt.timedelta(hours=2))
    jobs = (await graphql("{ scheduledJobs { id kind status nextRunAt payload } }"))["data"]["scheduledJobs"]
    assert [j["kind"] for j in jobs] == [reminders.DUE_SOON, reminders.OVERDUE] and {j["status"] for j in jobs} == {"SCHEDULED"}
    cancelled = await graphql(
        "mutation($id: ID!) { cancelScheduledJob(id: $id) { job { status } errors { code } } }", {"id": jobs[0]["id"]}
    )
    assert cancelled["data"]["cancelScheduledJob"] == {"job": {"status": "CANCELLED"}, "errors": []}
    again = await graphql(
        "mutation($id: ID!) { cancelScheduledJob(id: $id) { job { status } errors { code message } } }", {"id": jobs[0]["id"]}
    )
    assert again["data"]["cancelScheduledJob"]["errors"][0]["code"] == "VALIDATION"
    depth = (await graphql("{ queues { scheduler { waiting } staff { waiting } } }"))["data"]["queues"]
    assert depth == {"scheduler": {"waiting": 1}, "staff": {"waiting": 0}}


# -- the user's data ----------------------------------------------------------------------------


async def test_a_users_notifications_are_exported_and_erased_with_their_data(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, graphql: Any
) -> None:
    await _notify(runtime, tenant_id, note(user_id, title="Wang Fang wants a call"))
    await staff.run_once(runtime, tenant_id=tenant_id)
    gid = to_global_id("User", user_id)
    export = (await graphql("query($id: ID!) { exportUserData(id: $id) }", {"id": gid}))["data"]["exportUserData"]
    assert export["user"]["email"] == "li.lei@acme.example"
    assert [n["title"] for n in export["notifications"]] == ["Wang Fang wants a call"]
    assert [d["recipient"] for d in export["notificationDeliveries"]] == ["pager-li"]
    erased = await graphql("mutation($id: ID!) { eraseUserData(id: $id) { erased errors { code } } }", {"id": gid})
    assert erased["data"]["eraseUserData"]["erased"] == {
        "notification_deliveries": 1,
        "notifications": 1,
        "notification_settings": 0,
        "users": 1,
    }
    async with runtime.session(tenant_id) as s:
        export = await privacy.export_user_data(s, user_id)
    assert export["notifications"] == [] and export["notificationDeliveries"] == []
    assert export["user"]["name"] == privacy.ERASED and not export["user"]["active"] and "li.lei" not in export["user"]["email"]


async def test_erasing_a_customer_blanks_the_staff_notifications_that_name_them(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    task_id = await _task(runtime, tenant_id, user_id, dt.timedelta(minutes=1))
    await scheduler.run_once(runtime, tenant_id=tenant_id)  # the due-soon reminder names the customer
    await _notify(runtime, tenant_id, note(user_id, "other", title="Team meeting"))
    async with runtime.session(tenant_id) as s:
        task = await s.get(Task, (tenant_id, task_id))
        assert task is not None
        customer_id = task.customer_id
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        counts = await privacy.erase_customer(tx, customer_id)
    assert counts["notifications"] == 1
    async with runtime.session(tenant_id) as s:
        rows = {n.dedupe_key.split(":")[0]: (n.title, n.body) for n in await notifications.list_notifications(s, user_id, first=10)}
    assert rows == {"task.due_soon": (privacy.ERASED, None), "other": ("Team meeting", None)}


async def test_reading_notifications_and_sending_a_digest_cost_the_same_statements_for_few_or_many(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, me: Any, pager: Pager
) -> None:
    from guanxi.testing.sql import count_statements

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await notifications.update_settings(tx, user_id, notifications.SettingsInput(kinds={"test.digest": {"digest": True}}))
    counts = []
    for batch, n in (("a", 2), ("b", 12)):
        for i in range(n):
            await _notify(runtime, tenant_id, note(user_id, f"{batch}{i}", kind="test.digest", title=f"{batch}{i}"))
        await me(MY)  # warm the caller's key cache
        await runtime.drain()  # its last-used bookkeeping runs beside the request: let it finish first
        with count_statements(runtime.engine) as listing:
            body = await me(MY)
        await _due_now(runtime, tenant_id)
        with count_statements(runtime.engine) as sending:
            assert await staff.run_once(runtime, limit=1, tenant_id=tenant_id) == 1
        counts.append((len(listing), len(sending)))
        assert len(pager.sent[-1].items) == n and len(body["data"]["myNotifications"]["items"]) >= n
    assert counts[0] == counts[1], counts


async def test_a_retry_that_would_fall_in_quiet_hours_waits_for_their_end(
    runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID, pager: Pager
) -> None:
    await _notify(runtime, tenant_id, note(user_id))  # queued before the quiet hours were set
    tz = ZoneInfo("Asia/Shanghai")  # the tenant's zone; the user has none
    now = utcnow().astimezone(tz)
    end = (now + dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        quiet = notifications.SettingsInput(quiet_start=(now - dt.timedelta(hours=1)).strftime("%H:%M"), quiet_end=end.strftime("%H:%M"))
        await notifications.update_settings(tx, user_id, quiet)
    pager.outcomes = ["transient"]
    await staff.run_once(runtime, tenant_id=tenant_id)
    [row] = await _deliveries(runtime, tenant_id)
    assert row.status == "queued" and row.next_attempt_at == end.astimezone(dt.UTC)
