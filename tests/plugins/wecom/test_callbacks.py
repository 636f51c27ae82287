"""The callback URL end to end: wechatpy encrypts every ChangeType as WeCom would; the events
land as the right customers, identities, follow relations, interactions and tags; a replayed
callback changes nothing; a tampered one is refused and stores nothing."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from guanxi import Runtime, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.events import ContactArrived, ContactLeft
from guanxi.core.domain.models import Customer, Identity, InboxEvent, Interaction
from guanxi.core.services import users
from guanxi.plugins.wecom.models import WecomChat, WecomEvent, WecomFollow, WecomTag
from tests.plugins.wecom.conftest import AES_KEY, SECRET, TOKEN, Sender, corp_event_xml, event_xml, settle
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

pytestmark = pytest.mark.plugins("wecom", "recorder")


class Recorder:
    def __init__(self) -> None:
        self.arrived: list[ContactArrived] = []
        self.left: list[ContactLeft] = []

    @hookimpl
    def guanxi_contact_arrived(self, event: ContactArrived) -> None:
        self.arrived.append(event)

    @hookimpl
    def guanxi_contact_left(self, event: ContactLeft) -> None:
        self.left.append(event)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def extra_plugins(recorder: Recorder) -> dict[str, object]:
    return {"recorder": recorder}


async def count(runtime: Runtime, tenant_id: uuid.UUID, model: Any) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def follows(runtime: Runtime, tenant_id: uuid.UUID) -> list[WecomFollow]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(WecomFollow).order_by(WecomFollow.userid))).scalars())


async def kinds(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
    async with runtime.session(tenant_id) as s:
        rows = await s.execute(
            select(Interaction.kind, Interaction.payload).where(Interaction.channel == "wecom").order_by(Interaction.occurred_at)
        )
        return [(kind, payload.get("change_type")) for kind, payload in rows]


def profile(name: str = "李雷", tags: list[dict[str, Any]] | None = None, **follow: Any) -> dict[str, Any]:
    return {
        "errcode": 0,
        "errmsg": "ok",
        "external_contact": {"external_userid": "wmEXT001", "name": name, "avatar": "https://img.example/a.png", "type": 1, "gender": 1},
        "follow_user": [
            {
                "userid": "zhangsan",
                "remark": "展会客户",
                "description": "wants a demo",
                "createtime": 1700000000,
                "add_way": 1,
                "state": "spring-fair",
                "remark_mobiles": ["13800000000"],
                "tags": tags or [],
                **follow,
            }
        ],
    }


# -- URL verification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plugin_config",
    [
        {
            "wecom": {
                "corps": [
                    {
                        "key": "vendor",
                        "corp_id": "wx5823bf96d3bd56c7",
                        "token": "QDG6eK",
                        "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                    }
                ]
            }
        }
    ],
)
async def test_url_verification_answers_the_decrypted_echostr_as_the_raw_body(client: httpx.AsyncClient) -> None:
    """The vendor's known-answer vector, URL-encoded as WeCom sends it (echostr has + / =)."""
    query = {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
    }
    started = time.perf_counter()
    response = await client.get(f"/wecom/callback/vendor?{urlencode(query)}")
    assert time.perf_counter() - started < 1.0
    assert (response.status_code, response.content) == (200, b"1616140317555161061")
    query["msg_signature"] = "0" * 40
    assert (await client.get(f"/wecom/callback/vendor?{urlencode(query)}")).status_code == 401


async def test_an_unknown_corp_key_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/wecom/callback/nobody?msg_signature=x&timestamp=1&nonce=1&echostr=x")).status_code == 404


# -- events ------------------------------------------------------------------------------------------


async def test_add_external_contact_makes_customer_identity_follow_interaction_and_reports_the_arrival(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, recorder: Recorder
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        staff = await users.create_user(tx, email="zhangsan@acme.example", name="张三")
    fake_wecom.responses["/externalcontact/get"] = profile(
        tags=[{"group_name": "行业", "tag_name": "教育", "tag_id": "et-edu", "type": 1}, {"group_name": "", "tag_name": "mine", "type": 2}]
    )
    response = await sender.send(event_xml("add_external_contact", State="spring-fair", WelcomeCode="WELCOME-CODE-1"))
    assert (response.status_code, response.content) == (200, b"")
    await settle(runtime, tenant_id)

    async with runtime.session(tenant_id) as s:
        identity = (await s.execute(select(Identity).where(Identity.channel == "wecom"))).scalar_one()
        customer = await s.get(Customer, (tenant_id, identity.customer_id))
    assert identity.external_id == "wmEXT001"
    assert identity.profile["state"] == "spring-fair" and identity.profile["corp_id"] == CORP_ID
    assert customer is not None and (customer.display_name, customer.source) == ("李雷", "wecom")
    (follow,) = await follows(runtime, tenant_id)
    assert (follow.userid, follow.status, follow.state, follow.remark, follow.add_way, follow.tag_ids) == (
        "zhangsan",
        "active",
        "spring-fair",
        "展会客户",
        1,
        ["et-edu"],
    )
    # the welcome message is on the timeline too, after the arrival (an outbound interaction)
    assert await kinds(runtime, tenant_id) == [("contact_added", "add_external_contact"), ("welcome_message", None)]
    async with runtime.session(tenant_id) as s:
        welcome = (await s.execute(select(Interaction).where(Interaction.kind == "welcome_message"))).scalar_one()
    assert (welcome.direction, welcome.text, welcome.customer_id) == ("out", "欢迎来到春季展会!", customer.id)
    (arrived,) = recorder.arrived
    assert (arrived.state, arrived.staff_user_id, arrived.new_customer, arrived.channel, arrived.external_id) == (
        "spring-fair",
        staff.id,
        True,
        "wecom",
        "wmEXT001",
    )
    # the welcome message went out with the template of the state, from the callback itself
    assert fake_wecom.called("/externalcontact/send_welcome_msg") == [
        {"welcome_code": "WELCOME-CODE-1", "text": {"content": "欢迎来到春季展会!"}}
    ]
    from guanxi.core.domain.models import CustomerTag, Tag
    from guanxi.core.services.tags import tag_label

    async with runtime.session(tenant_id) as s:
        labels = [tag_label(t) for t in (await s.execute(select(Tag).join(CustomerTag, CustomerTag.tag_id == Tag.id))).scalars()]
    assert labels == ["行业/教育"]  # corp tags only; the member's personal tag is not synced


async def test_one_customer_followed_by_two_staff_then_removed_by_each_side(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, recorder: Recorder
) -> None:
    await sender.send(event_xml("add_external_contact", userid="zhangsan", State="s1"))
    await sender.send(event_xml("add_half_external_contact", userid="lisi", State="s2", create_time=int(time.time()) + 1))
    await settle(runtime, tenant_id)
    assert [(f.userid, f.status, f.state) for f in await follows(runtime, tenant_id)] == [
        ("lisi", "half", "s2"),
        ("zhangsan", "active", "s1"),
    ]
    assert await count(runtime, tenant_id, Customer) == 1
    assert [a.new_customer for a in recorder.arrived] == [True, False]

    await sender.send(event_xml("del_follow_user", userid="zhangsan", create_time=int(time.time()) + 2))
    await sender.send(event_xml("del_external_contact", userid="lisi", create_time=int(time.time()) + 3, Source="DELETE_BY_TRANSFER"))
    await settle(runtime, tenant_id)
    assert [(f.userid, f.status) for f in await follows(runtime, tenant_id)] == [
        ("lisi", "removed_by_staff"),
        ("zhangsan", "removed_staff"),
    ]
    assert [(e.reason, e.external_id) for e in recorder.left] == [("removed_staff", "wmEXT001"), ("removed_by_staff", "wmEXT001")]
    assert [k for k, _ in await kinds(runtime, tenant_id)] == ["contact_added", "contact_added", "contact_removed", "contact_removed"]


async def test_edit_refreshes_remark_and_corp_tags_and_transfer_fail_is_recorded(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom
) -> None:
    fake_wecom.responses["/externalcontact/get"] = profile(tags=[{"group_name": "级别", "tag_name": "A", "tag_id": "et-a", "type": 1}])
    await sender.send(event_xml("add_external_contact"))
    await settle(runtime, tenant_id)
    fake_wecom.responses["/externalcontact/get"] = profile(
        remark="老客户", tags=[{"group_name": "级别", "tag_name": "B", "tag_id": "et-b", "type": 1}]
    )
    await sender.send(event_xml("edit_external_contact", create_time=int(time.time()) + 1))
    await sender.send(event_xml("transfer_fail", userid="wangwu", create_time=int(time.time()) + 2, FailReason="customer_refused"))
    await settle(runtime, tenant_id)
    (follow,) = await follows(runtime, tenant_id)  # transfer_fail changes no relation
    assert (follow.remark, follow.tag_ids) == ("老客户", ["et-b"])
    from guanxi.core.domain.models import CustomerTag, Tag
    from guanxi.core.services.tags import tag_label

    async with runtime.session(tenant_id) as s:
        labels = sorted(tag_label(t) for t in (await s.execute(select(Tag).join(CustomerTag, CustomerTag.tag_id == Tag.id))).scalars())
    assert labels == ["级别/B"]
    assert [k for k, _ in await kinds(runtime, tenant_id)] == ["contact_added", "contact_edited", "transfer_failed"]


async def test_tag_and_customer_group_events_are_kept_once_and_applied(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom
) -> None:
    fake_wecom.responses["/externalcontact/get_corp_tag_list"] = {
        "errcode": 0,
        "errmsg": "ok",
        "tag_group": [
            {"group_id": "g1", "group_name": "行业", "tag": [{"id": "et-edu", "name": "教育"}, {"id": "et-fin", "name": "金融"}]}
        ],
    }
    await sender.send(corp_event_xml("change_external_tag", "create", Id="et-fin", TagType="tag"))
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        assert sorted((t.tag_id, t.name, t.deleted) for t in (await s.execute(select(WecomTag))).scalars()) == [
            ("et-edu", "教育", False),
            ("et-fin", "金融", False),
        ]
    delete = corp_event_xml("change_external_tag", "delete", Id="et-fin", TagType="tag")
    for _ in range(2):  # a retry of the same event
        assert (await sender.send(delete)).status_code == 200
    chat = corp_event_xml("change_external_chat", "update", ChatId="wrOgQhDgAA", UpdateDetail="add_member", JoinScene="1", MemChangeCnt="2")
    await sender.send(chat)
    await sender.send(chat)
    async with runtime.session(tenant_id) as s:
        assert (await s.get(WecomTag, (tenant_id, CORP_ID, "et-fin"))).deleted is True  # type: ignore[union-attr]
        group = await s.get(WecomChat, (tenant_id, CORP_ID, "wrOgQhDgAA"))
        assert group is not None and (group.status, group.last_change, group.member_changes) == ("active", "add_member", 2)
    assert await count(runtime, tenant_id, WecomEvent) == 3
    assert await count(runtime, tenant_id, InboxEvent) == 0


# -- replay and tampering ---------------------------------------------------------------------------


async def test_a_replayed_callback_changes_nothing(runtime: Runtime, tenant_id: uuid.UUID, sender: Sender) -> None:
    query, body = sender.envelope(event_xml("add_external_contact", State="x"))
    assert (await sender.post(query, body)).status_code == 200
    await settle(runtime, tenant_id)
    before = [await count(runtime, tenant_id, m) for m in (InboxEvent, Customer, Interaction, WecomFollow)]
    assert (await sender.post(query, body)).status_code == 200  # the very same request (nonce cache)
    assert (await sender.send(event_xml("add_external_contact", State="x", create_time=int(query["timestamp"])))).status_code == 200
    await settle(runtime, tenant_id)
    assert [await count(runtime, tenant_id, m) for m in (InboxEvent, Customer, Interaction, WecomFollow)] == before == [1, 1, 1, 1]


async def test_tampered_stale_misaddressed_or_malformed_callbacks_are_refused_and_store_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inner = event_xml("add_external_contact")
    query, body = sender.envelope(inner)
    tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A")
    assert (await sender.post(query, tampered)).status_code == 401
    assert (await sender.post({**query, "msg_signature": "f" * 40}, body)).status_code == 401
    assert (await sender.post({k: v for k, v in query.items() if k != "msg_signature"}, body)).status_code == 401
    assert (await sender.send(inner, timestamp=int(time.time()) - 3600)).status_code == 401
    other_corp = Sender(client, corp_id="wwSOMEOTHERCORP")
    assert (await other_corp.send(inner)).status_code == 401
    other_key = Sender(client, key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
    assert (await other_key.send(inner)).status_code in (400, 401)  # signed right, decrypts to garbage
    for bad in (b"not xml", b"<xml><Encrypt>", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'):
        assert (await sender.post(query, bad)).status_code in (400, 401)
    unknown = sender.envelope(event_xml("poke_external_contact"))
    assert (await sender.post(*unknown)).status_code == 400
    assert [await count(runtime, tenant_id, m) for m in (InboxEvent, Customer, WecomEvent)] == [0, 0, 0]
    logged = caplog.text
    for secret in (TOKEN, AES_KEY, SECRET):
        assert secret not in logged


async def test_an_add_for_a_customer_known_from_the_initial_sync_is_not_a_new_customer(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, recorder: Recorder
) -> None:
    from guanxi.plugins.wecom.service import initial_sync

    fake_wecom.responses["/externalcontact/get_follow_user_list"] = {"errcode": 0, "follow_user": ["lisi"]}
    fake_wecom.responses["/externalcontact/batch/get_by_user"] = {
        "errcode": 0,
        "external_contact_list": [{"external_contact": {"external_userid": "wmEXT001", "name": "李雷"}, "follow_info": {"userid": "lisi"}}],
        "next_cursor": "",
    }
    assert (await initial_sync(runtime, tenant_id, None)).created == 1
    await sender.send(event_xml("add_external_contact", userid="zhangsan", State="spring-fair"))
    await settle(runtime, tenant_id)
    (arrived,) = recorder.arrived
    assert (arrived.new_customer, arrived.state) == (False, "spring-fair")
    assert await count(runtime, tenant_id, Customer) == 1


async def test_the_ack_does_not_wait_for_a_slow_welcome_api_and_a_stale_code_is_logged_not_retried(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom, caplog: pytest.LogCaptureFixture
) -> None:
    fake_wecom.delay_s["/externalcontact/send_welcome_msg"] = 1.5
    started = time.perf_counter()
    response = await sender.send(event_xml("add_external_contact", State="unknown-state", WelcomeCode="WC-1"))
    assert response.status_code == 200 and time.perf_counter() - started < 1.0
    await settle(runtime, tenant_id)
    assert fake_wecom.called("/externalcontact/send_welcome_msg") == [
        {"welcome_code": "WC-1", "text": {"content": "Welcome!"}}
    ]  # the "*" text
    fake_wecom.fail("/externalcontact/send_welcome_msg", 41050)
    await sender.send(event_xml("add_external_contact", external="wmEXT002", WelcomeCode="WC-2"))
    await settle(runtime, tenant_id)
    assert len(fake_wecom.called("/externalcontact/send_welcome_msg")) == 2
    assert "errcode 41050" in caplog.text and "WC-2" not in caplog.text


async def test_half_then_mutual_add_is_one_arrival_and_a_late_delete_does_not_undo_a_re_add(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, recorder: Recorder
) -> None:
    t = int(time.time())
    await sender.send(event_xml("add_half_external_contact", State="fair", create_time=t))
    await sender.send(event_xml("add_external_contact", State="fair", create_time=t + 1))
    await settle(runtime, tenant_id)
    assert [(f.status, f.state) for f in await follows(runtime, tenant_id)] == [("active", "fair")]
    assert len(recorder.arrived) == 1
    await sender.send(event_xml("del_follow_user", create_time=t + 2))
    await sender.send(event_xml("add_external_contact", State="again", create_time=t + 4))
    await settle(runtime, tenant_id)
    await sender.send(event_xml("del_external_contact", create_time=t + 3))  # older than the re-add, delivered late
    await settle(runtime, tenant_id)
    (follow,) = await follows(runtime, tenant_id)
    assert (follow.status, follow.state, follow.removed_at) == ("active", "again", None)
    assert [a.state for a in recorder.arrived] == ["fair", "again"]
    assert [e.reason for e in recorder.left] == ["removed_staff"]


async def test_a_failure_in_the_follow_bookkeeping_undoes_the_event_and_the_inbox_retries_it(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follow relation is written in the inbox's transaction (guanxi_inbound_applied): when it
    fails, neither the customer nor the interaction nor the arrival is kept, the inbox row waits
    for a retry with the error, and the retry applies everything once."""
    from guanxi.core.queues import inbox
    from guanxi.plugins.wecom import events

    real = events.apply_contact_change

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("follow table unavailable")

    monkeypatch.setattr(events, "apply_contact_change", broken)
    await sender.send(event_xml("add_external_contact", State="s1"))
    await inbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(InboxEvent))).scalar_one()
    assert (row.status, row.attempts) == ("pending", 1) and "follow table unavailable" in (row.last_error or "")
    assert await count(runtime, tenant_id, Customer) == 0 and await count(runtime, tenant_id, Interaction) == 0
    assert await follows(runtime, tenant_id) == [] and recorder.arrived == []

    monkeypatch.setattr(events, "apply_contact_change", real)
    await inbox.process_one(runtime, tenant_id, row.id)
    assert [(f.status, f.state) for f in await follows(runtime, tenant_id)] == [("active", "s1")]
    assert await count(runtime, tenant_id, Interaction) == 1 and [a.state for a in recorder.arrived] == ["s1"]


async def test_a_profile_refresh_older_than_a_removal_does_not_revive_the_follow_but_a_later_re_add_does(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom
) -> None:
    """The add's profile refresh is still in flight when del_follow_user is applied: its answer
    (the relation that began at the add) must not set the follow back to active nor clear
    removed_at. A refresh listing a relation that began after the removal (a re-add) does."""
    import datetime as dt

    from guanxi.core.queues import inbox

    t = int(time.time())
    fake_wecom.responses["/externalcontact/get"] = profile(createtime=t)
    gate = fake_wecom.hold("/externalcontact/get")
    await sender.send(event_xml("add_external_contact", State="fair", create_time=t))
    assert await inbox.run_once(runtime, tenant_id=tenant_id)  # the add; its profile refresh now waits on WeCom
    await sender.send(event_xml("del_follow_user", create_time=t + 1))
    assert await inbox.run_once(runtime, tenant_id=tenant_id)
    gate.set()
    await settle(runtime, tenant_id)
    assert len(fake_wecom.called("/externalcontact/get")) == 1
    (follow,) = await follows(runtime, tenant_id)
    removed = dt.datetime.fromtimestamp(t + 1, dt.UTC)
    assert (follow.status, follow.removed_at, follow.remark) == ("removed_staff", removed, None)

    del fake_wecom.holds["/externalcontact/get"]
    fake_wecom.responses["/externalcontact/get"] = profile(createtime=t + 5)
    await sender.send(event_xml("edit_external_contact", create_time=t + 6))
    await settle(runtime, tenant_id)
    (follow,) = await follows(runtime, tenant_id)
    assert (follow.status, follow.removed_at, follow.remark) == ("active", None, "展会客户")


async def test_a_suspended_tenants_corp_events_are_stored_and_applied_only_once_it_resumes(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender
) -> None:
    """Like its inbox rows, a suspended tenant's tag and customer-group events wait: stored (the
    ack is 200, a retry stays one row), applied by the held-events job when the operator resumes
    the tenant (the scheduler holds a suspended tenant's jobs)."""
    from sqlalchemy import func

    from guanxi.core.domain.models import Tenant
    from guanxi.core.queues import scheduler
    from guanxi.core.services.tenants import set_suspended

    async with runtime.session(None) as s:
        slug = (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one()
    await set_suspended(runtime, slug, True)
    chat = corp_event_xml("change_external_chat", "update", ChatId="wrHeld", UpdateDetail="add_member", JoinScene="1", MemChangeCnt="3")
    for _ in range(2):
        assert (await sender.send(chat)).status_code == 200
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        assert await s.get(WecomChat, (tenant_id, CORP_ID, "wrHeld")) is None  # not applied while suspended
        held = (await s.execute(select(func.count()).select_from(WecomEvent).where(WecomEvent.applied_at.is_(None)))).scalar_one()
    assert held == 1
    await set_suspended(runtime, slug, False)
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        group = await s.get(WecomChat, (tenant_id, CORP_ID, "wrHeld"))
        assert group is not None and (group.last_change, group.member_changes) == ("add_member", 3)
        assert (await s.execute(select(WecomEvent.applied_at))).scalar_one() is not None
