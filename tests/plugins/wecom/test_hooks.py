"""The cross-plugin hooks (entry points, export, erase, permissions) and ``guanxi wecom sync``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from guanxi import Runtime
from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import EntryPoint, EntryPointRequest
from guanxi.core.domain.models import Customer, CustomerTag, Identity, Tenant
from guanxi.core.hooks import manager as plugins
from guanxi.core.services import users
from guanxi.core.storage.tenancy import unscoped
from guanxi.plugins.wecom.models import WecomContactWay, WecomFollow
from guanxi.plugins.wecom.service import initial_sync
from guanxi.testing.plugin import use_tenant
from guanxi.testing.sql import count_statements
from tests.plugins.wecom.conftest import Sender, event_xml, settle
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

pytestmark = pytest.mark.plugins("wecom")


async def test_entry_points_make_a_contact_way_qr_for_the_mapped_staff_member(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        staff = await users.create_user(tx, email="zhangsan@acme.example", name="张三")
        unmapped = await users.create_user(tx, email="nobody@acme.example", name="Nobody")
    request = EntryPointRequest(token="ref_AbC123", campaign_id=uuid.uuid4(), campaign_name="Invite 3", staff_user_id=staff.id)
    async with runtime.write_session(tenant_id) as session:
        answers = await plugins.collect(runtime.pm.hook.guanxi_entry_points, runtime=runtime, session=session, request=request)
    assert answers == [("wecom", [EntryPoint(channel="wecom", kind="qr", url="https://wework.qpic.cn/wwpic/qr-1.png", reference="cfg-1")])]
    (call,) = fake_wecom.called("/externalcontact/add_contact_way")
    assert (call["type"], call["scene"], call["user"], call["state"]) == (1, 2, ["zhangsan"], "ref_AbC123")
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(WecomContactWay.state, WecomContactWay.userid))).all() == [("ref_AbC123", "zhangsan")]
    other = EntryPointRequest(token="ref_2", campaign_id=uuid.uuid4(), campaign_name="x", staff_user_id=unmapped.id)
    async with runtime.write_session(tenant_id) as session:
        assert await plugins.collect(runtime.pm.hook.guanxi_entry_points, runtime=runtime, session=session, request=other) == []


async def test_export_gives_the_follows_and_erase_blanks_them_but_keeps_the_count(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender, fake_wecom: FakeWecom
) -> None:
    fake_wecom.responses["/externalcontact/get"] = {
        "errcode": 0,
        "external_contact": {"external_userid": "wmEXT001", "name": "李雷"},
        "follow_user": [{"userid": "zhangsan", "remark": "展会客户", "description": "VIP", "remark_mobiles": ["13800000000"]}],
    }
    await sender.send(event_xml("add_external_contact", State="fair"))
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        cid = (await s.execute(select(Identity.customer_id))).scalar_one()
    async with runtime.session(tenant_id) as session:
        ((_, exported),) = await plugins.collect(
            runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=session, customer_id=cid
        )
    (follow,) = exported["follows"]
    assert (follow["external_userid"], follow["remark"], follow["remark_mobiles"], follow["state"]) == (
        "wmEXT001",
        "展会客户",
        ["13800000000"],
        "fair",
    )
    async with runtime.write_session(tenant_id) as session:
        erased = await plugins.collect(runtime.pm.hook.guanxi_erase_customer, runtime=runtime, session=session, customer_id=cid)
    assert erased == [("wecom", {"follows": 1})]
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(WecomFollow))).scalar_one()
    assert row.external_userid.startswith("erased:") and (row.remark, row.description, row.remark_mobiles) == (None, None, [])
    assert (row.status, row.state) == ("active", "fair")  # counts and acquisition stats still add up


def test_permissions_guard_every_mutation_with_the_agreed_roles(runtime: Runtime) -> None:
    declared = {p.name: p for ps in runtime.pm.hook.guanxi_permissions() for p in ps if p.name.startswith("wecom.")}
    assert {n: (p.roles, p.fields) for n, p in declared.items()} == {
        "wecom.massSend": (("admin", "manager", "marketing"), ("Mutation.wecomMassSend", "Query.wecomMassSendResult")),
        "wecom.contactWays": (("admin", "manager", "marketing", "sales"), ("Mutation.createWecomContactWay",)),
        "wecom.tagSync": (("admin", "manager"), ("Mutation.syncWecomTags",)),
    }


def pages(n_customers: int, page_size: int) -> Any:
    everyone = [f"wm{n:04d}" for n in range(n_customers)]

    def batch(query: dict[str, str], body: Any) -> dict[str, Any]:
        start = int(body["cursor"] or 0)
        chunk = everyone[start : start + page_size]
        items = [
            {
                "external_contact": {"external_userid": e, "name": f"客户{e}"},
                "follow_info": {"userid": u, "remark": e, "state": "sync", "tag_id": ["et-edu"], "createtime": 1700000000},
            }
            for e in chunk
            for u in ("zhangsan", "lisi")
        ]
        nxt = start + page_size
        return {"errcode": 0, "external_contact_list": items, "next_cursor": str(nxt) if nxt < len(everyone) else ""}

    return batch


async def test_initial_sync_pages_through_everything_and_is_idempotent(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom
) -> None:
    fake_wecom.responses["/externalcontact/get_follow_user_list"] = {"errcode": 0, "follow_user": ["zhangsan", "lisi"]}
    fake_wecom.responses["/externalcontact/get_corp_tag_list"] = {
        "errcode": 0,
        "tag_group": [{"group_id": "g", "group_name": "行业", "tag": [{"id": "et-edu", "name": "教育"}]}],
    }
    fake_wecom.responses["/externalcontact/batch/get_by_user"] = pages(25, 10)
    fake_wecom.fail("/externalcontact/batch/get_by_user", 45009)  # a rate limit on the way is waited out
    await use_tenant(runtime, tenant_id)  # the corp feeds the configured tenant: make it this test's
    seen: list[int] = []
    first = await initial_sync(runtime, tenant_id, None, progress=seen.append)
    assert (first.staff, first.customers, first.created) == (2, 25, 25) and sum(seen) == 50
    fake_wecom.expire_tokens()  # and an expired token mid-run
    with count_statements(runtime.engine) as statements:
        second = await initial_sync(runtime, tenant_id, None)
    assert (second.customers, second.created) == (25, 0)
    async with runtime.session(tenant_id) as s:
        counts = [
            (await s.execute(select(func.count()).select_from(m))).scalar_one() for m in (Customer, Identity, WecomFollow, CustomerTag)
        ]
    assert counts == [25, 25, 50, 25]
    # re-applying an unchanged customer with two followers: about 7 statements (177 measured for 25)
    assert len(statements) <= 8 * 25


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    from tests.plugins.wecom.conftest import corp_config

    return {"wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 2, "corps": [corp_config()]}}


async def test_the_sync_command_prints_what_it_pulled(
    runtime: Runtime, tenant_id: uuid.UUID, fake_wecom: FakeWecom, tmp_path: Path
) -> None:
    fake_wecom.responses["/externalcontact/get_follow_user_list"] = {"errcode": 0, "follow_user": ["zhangsan"]}
    fake_wecom.responses["/externalcontact/batch/get_by_user"] = pages(3, 10)
    async with runtime.session(None) as s, unscoped(s):
        slug = (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one()
    import msgspec

    runtime.settings = msgspec.structs.replace(runtime.settings, tenant=slug)
    cli_runtime = Runtime(runtime.settings, runtime.pm, {"wecom": runtime.plugin_settings("wecom")})
    import asyncio

    result = await asyncio.to_thread(CliRunner().invoke, build_cli(cli_runtime), ["wecom", "sync", "--corp", "acme"], obj=cli_runtime)
    assert result.exit_code == 0, result.output
    assert "staff: 1, customers: 3, new: 3" in result.output
    result = await asyncio.to_thread(CliRunner().invoke, build_cli(cli_runtime), ["wecom", "sync", "--corp", "nope"], obj=cli_runtime)
    assert result.exit_code != 0 and "no WeCom corp 'nope'" in result.output


async def test_start_up_refuses_a_bad_corp_configuration_without_showing_secrets(tmp_path: Path) -> None:
    from guanxi.core.base.errors import ConfigError
    from guanxi.testing.plugin import write_config

    bad_key = "tooshort-SECRET"
    corps = [
        {"key": "a", "corp_id": "ww1", "token": "TOKEN-SECRET", "encoding_aes_key": bad_key},
        {"key": "a", "corp_id": "ww2", "token": "only-token"},
    ]
    config = write_config(tmp_path / "c.toml", {"wecom": {"corps": corps}})
    rt = Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "GUANXI_PLUGINS": "wecom"})
    with pytest.raises(ConfigError) as raised:
        await rt.start()
    await rt.engine.dispose()
    message = str(raised.value)
    assert "`$.plugins.wecom.corps[0].encoding_aes_key`: EncodingAESKey must be 43 characters" in message
    assert "`$.plugins.wecom.corps[1].key` repeats 'a'" in message and "`$.plugins.wecom.corps[1]`: set both" in message
    assert bad_key not in message and "TOKEN-SECRET" not in message


async def test_score_components_weigh_relations_as_of_a_date_in_one_query(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    import datetime as dt

    from guanxi.core.domain.contracts import ScoreComponent
    from guanxi.core.services import customers

    day = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        a = await customers.create_customer(tx, customers.CustomerInput(display_name="A"))
        b = await customers.create_customer(tx, customers.CustomerInput(display_name="B"))
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="C"))
        rows = [
            (a.id, "wa", "u1", "active", day, None),
            (a.id, "wa", "u2", "half", day, None),
            (a.id, "wa", "u3", "active", day + dt.timedelta(days=30), None),  # after as_of
            (b.id, "wb", "u1", "removed_staff", day, day + dt.timedelta(days=1)),
        ]
        for cid, ext, userid, status, followed, removed in rows:
            tx.session.add(
                WecomFollow(
                    corp_id=CORP_ID,
                    external_userid=ext,
                    userid=userid,
                    customer_id=cid,
                    status=status,
                    followed_at=followed,
                    removed_at=removed,
                    remark_mobiles=[],
                    tag_ids=[],
                )
            )
    as_of = day + dt.timedelta(days=7)
    async with runtime.session(tenant_id) as session:
        with count_statements(runtime.engine) as statements:
            answers = await plugins.collect(
                runtime.pm.hook.guanxi_score_components, runtime=runtime, session=session, customer_ids=[a.id, b.id, c.id], as_of=as_of
            )
    ((_, components),) = answers
    assert sorted(components, key=lambda x: x.value) == [
        ScoreComponent(customer_id=b.id, name="wecom.relation", value=-5.0, reasons=["1 staff removed by the customer x -5"]),
        ScoreComponent(customer_id=a.id, name="wecom.relation", value=15.0, reasons=["1 staff following x 10", "1 half-added staff x 5"]),
    ]
    assert len(statements) == 1
